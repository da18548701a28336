"""Every built-in study file runs end to end at a tiny budget on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli, shared_cache_dir
from optuna.trial import TrialState

import hpsearch
import hpsearch.api

STUDIES = REPO / "studies"
QUESTION_STUDIES = [
    "l2-fc-only",
    "activations",
    "batchnorm-placement",
    "batchnorm-placement-short",
    "batchnorm-two-input",
    "batchnorm-two-input-short",
    "seq2seq-dropout-l2",
    "weight-decay-vs-normalization",
    "triplet-semihard",
    "triplet-finetune",
    "batchnorm-l2",
    "question-width",
]
#: Over 5 s each at this budget on the 2-core reference machine (the triplet studies pretrain a
#: backbone: about a minute): make test runs them, make test-fast leaves them out. The fast ones
#: still cover the digits MLP and CNN, sequence, tabular and 2-D tasks.
SLOW_STUDIES = {"activations", "batchnorm-placement", "batchnorm-placement-short", "batchnorm-two-input",
                "batchnorm-two-input-short", "triplet-semihard", "triplet-finetune"}


@pytest.fixture
def cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One pretrained-backbone cache for the whole session (the triplet task writes there)."""
    path = shared_cache_dir(tmp_path_factory)
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(path))
    return path


def without_question(name: str, tmp_path: Path) -> Path:
    """The built-in study file ``name`` as a plain study (its question: block removed)."""
    data = yaml.safe_load((STUDIES / f"{name}.yaml").read_text())
    data.pop("question", None)
    path = tmp_path / f"{name}-plain.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_STUDIES else n for n in QUESTION_STUDIES])
def test_study_file_runs_at_tiny_budget(name: str, sqlite_url: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_CAP_TRIALS", "2")  # also caps each cell of a question
    study_file = hpsearch.load_study_file(STUDIES / f"{name}.yaml", max_epochs=1)
    assert study_file.config.study == name
    study = hpsearch.optimize(study_file, storage=sqlite_url)
    if study_file.config.question is not None:  # every level tuned in its own study
        from hpsearch.question.optimize import cell_runs

        runs = cell_runs(study_file)[1]
        cells = [hpsearch.api.load_study(r.study_name, sqlite_url) for r in runs]
        assert all(len(c.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 2 for c in cells)
        study = cells[0]
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(trials) == 2
    assert all(t.user_attrs["epochs"] == 1 for t in trials)
    metric = study.user_attrs["metric"]
    assert all(t.user_attrs[metric] is not None for t in trials if t.state == TrialState.COMPLETE)


@pytest.mark.slow
def test_seq2seq_study_via_cli_prints_the_seasonal_baseline(sqlite_url: str, tmp_path: Path) -> None:
    proc = run_cli(
        "optimize", str(without_question("seq2seq-dropout-l2", tmp_path)), "--trials", "2", "--max-epochs", "1", "--storage", sqlite_url
    )
    assert proc.returncode == 0, proc.stderr
    assert "for comparison: baseline_val_mse = " in proc.stdout
    study = hpsearch.api.load_study("seq2seq-dropout-l2", sqlite_url)
    assert study.user_attrs["baseline_val_mse"] > 0
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2


@pytest.mark.slow
def test_plot_boundaries_writes_one_png_per_dataset(sqlite_url: str, tmp_path: Path) -> None:
    study_file = hpsearch.load_study_file(without_question("activations", tmp_path), trials=3, max_epochs=2, study="act-tiny")
    study = hpsearch.optimize(study_file, storage=sqlite_url)
    datasets = {t.params["dataset"] for t in study.get_trials(states=(TrialState.COMPLETE,))}
    out = tmp_path / "plots"
    proc = run_cli("plot-boundaries", "act-tiny", "--out", str(out), "--storage", sqlite_url)
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(f"act-tiny-{d}.png" for d in datasets)
    assert all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # The retrained best models reproduce the stored metric (same seed, one worker).
    stored = {t.number: t.value for t in study.get_trials(states=(TrialState.COMPLETE,))}
    for line in proc.stdout.splitlines():
        if line.startswith("retrained trial #"):
            number = int(line.split("#")[1].split(":")[0])
            assert float(line.rsplit("(", 1)[1].rstrip(")")) == pytest.approx(stored[number], abs=1e-6)


@pytest.mark.slow
def test_plot_boundaries_refuses_a_study_without_2d_data(write_study, sqlite_url: str, tmp_path: Path) -> None:
    hpsearch.optimize(hpsearch.load_study_file(write_study(), trials=1, max_epochs=1), storage=sqlite_url)
    proc = run_cli("plot-boundaries", "tiny", "--out", str(tmp_path / "p"), "--storage", sqlite_url)
    assert proc.returncode == 2
    assert "toy2d-mlp" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
