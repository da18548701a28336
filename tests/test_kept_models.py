"""The best model kept through Optuna's artifact store, and ``hpsearch export-model``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env, run_cli
from optuna.trial import TrialState

from hpsearch.api import load_study_file
from hpsearch.errors import ConfigError
from hpsearch.models.load import load_model
from hpsearch.run.kept_models import MODEL_ATTR, export_model
from hpsearch.run.runner import run_study
from hpsearch.run.training import evaluate
from hpsearch.study.meta import metric_key


@pytest.mark.slow
def test_exported_model_reproduces_the_stored_metric_and_superseded_models_are_removed(
    write_study, sqlite_url: str, tmp_path: Path
) -> None:
    path = write_study(trials=4, max_epochs=2, search={"learning_rate": {"low": 1e-4, "high": 3e-2, "log": True}})
    study = run_study(load_study_file(path), sqlite_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    kept = [t for t in complete if MODEL_ATTR in t.user_attrs]
    running_best = [t for i, t in enumerate(complete) if all(t.value > o.value for o in complete[:i])]
    assert [t.number for t in kept] == [t.number for t in running_best]  # every best-so-far got one
    models = tmp_path / "studies-models"  # next to studies.db
    assert sorted(p.name for p in models.iterdir()) == [study.best_trial.user_attrs[MODEL_ATTR]]  # the rest removed

    out = tmp_path / "export" / "best.pt"
    out.parent.mkdir()  # export-model creates no directory without --force
    result = run_cli("export-model", "tiny", "--storage", sqlite_url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    model, info = load_model(out)
    best = study.best_trial
    assert info["trial"] == best.number and info["settings"]["learning_rate"] == best.params["learning_rate"]
    data = load_study_file(path).task.load_data(0)
    assert evaluate(model, data.val)[metric_key("val_acc")] == best.user_attrs["val_acc"]  # exactly

    snippet = out.with_suffix(".py")
    ran = subprocess.run([sys.executable, str(snippet)], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "learning_rate" in ran.stdout

    assert kept[0].number != best.number  # with this seed the first trial is not the best
    with pytest.raises(ConfigError, match="superseded"):
        export_model(study, kept[0], tmp_path / "old.pt")


@pytest.mark.slow
def test_the_model_directory_is_configurable(write_study, sqlite_url: str, tmp_path: Path, monkeypatch) -> None:
    shared = tmp_path / "shared" / "models"
    monkeypatch.setenv("HPSEARCH_MODEL_DIR", str(shared))
    study = run_study(load_study_file(write_study(trials=1, max_epochs=1)), sqlite_url)
    assert os.listdir(shared) == [study.best_trial.user_attrs[MODEL_ATTR]]
    assert not (tmp_path / "studies-models").exists()


@pytest.mark.slow  # two real hpsearch processes, one training
def test_optimize_model_dir_option_keeps_the_models_there_and_a_bad_one_is_refused(write_study, sqlite_url: str, tmp_path: Path) -> None:
    path = write_study(trials=1, max_epochs=1, model_dir=str(tmp_path / "from-file"))
    bad = run_cli("optimize", str(path), "--model-dir", "/proc/models", "--storage", sqlite_url, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--model-dir" in bad.stderr, bad.stderr
    assert not (tmp_path / "studies.db").exists()  # refused before the database was touched
    chosen = tmp_path / "cli" / "models"
    ok = run_cli("optimize", str(path), "--model-dir", str(chosen), "--storage", sqlite_url, cwd=tmp_path,
                 HPSEARCH_MODEL_DIR=str(tmp_path / "from-env"))
    assert ok.returncode == 0, ok.stderr
    assert len(os.listdir(chosen)) == 1  # the option wins over $HPSEARCH_MODEL_DIR and the file's model_dir
    assert not (tmp_path / "from-env").exists() and not (tmp_path / "from-file").exists()
