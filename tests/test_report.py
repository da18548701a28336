"""`hpsearch report` on studies made through the real storage (no-op objective), `trials --csv`,
`best --format yaml` and the dashboard command's guards."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import run_cli

from hpsearch.analysis.report import build_report
from hpsearch.study.config import parse_study
from hpsearch.testing.synthetic import QUICKSTART, make_synthetic_study


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("synthetic")
    url = f"sqlite:///{tmp / 'syn.db'}"
    make_synthetic_study(url, "syn", 300)
    return url, tmp


@pytest.mark.slow
def test_report_sections_figures_and_summary(synthetic: tuple[str, Path]) -> None:
    url, tmp = synthetic
    result = build_report("syn", url, tmp / "out")
    assert result.sections == ["summary", "history", "intermediate", "importance", "params", "categorical", "pruning-bias"]
    names = sorted(p.name for p in result.pngs)
    assert names == sorted([
        "history.png", "intermediate.png", "importances.png",
        "param_keep_prob.png", "param_learning_rate.png", "param_weight_decay.png",
        "choice_batchnorm.png", "choice_l2_mode.png", "choice_l2_scope.png",
    ])
    for png in result.pngs:
        w, h = _png_size(png)
        assert w >= 400 and h >= 200
    study = optuna.load_study(study_name="syn", storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value)
    assert f"best trial #{best.number}" in result.text
    assert f"{len(complete)} complete, {300 - len(complete)} pruned" in result.text
    # the synthetic metric is driven by learning_rate: both evaluators must rank it first
    imp_lines = result.text.split("parameter importances (over ")[1].splitlines()
    assert imp_lines[0] == f"{len(complete)} complete trials):" and "unreliable" not in result.text
    assert imp_lines[3].split()[0] == "learning_rate"
    # per-choice counts add up to the complete trials
    choices = result.text.split("categorical parameters (complete trials):")[1].split("\n\n")[0]
    for param in ("batchnorm", "l2_mode", "l2_scope"):
        counts = [int(line.split()[2]) for line in choices.splitlines() if line.startswith(param + " ")]
        assert len(counts) == len(study.trials[0].distributions[param].choices)
        assert sum(counts) == len(complete), param
    html = result.html.read_text()
    assert html.count("<section ") == 7 and "plotly" in html and "<script src=" not in html


@pytest.mark.slow
def test_report_cli_prints_summary_and_handles_bad_input(synthetic: tuple[str, Path]) -> None:
    url, tmp = synthetic
    proc = run_cli("report", "syn", "--storage", url, "--out", str(tmp / "cli"), cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert "parameter importances (over " in proc.stdout and (tmp / "cli" / "report.html").exists()
    assert "report: loading the trials of syn..." in proc.stderr  # progress on stderr
    missing = run_cli("report", "nope", "--storage", url, cwd=tmp)
    assert missing.returncode == 2 and missing.stderr.startswith("error: study 'nope' not found")
    (tmp / "afile").write_text("x")
    bad_out = run_cli("report", "syn", "--storage", url, "--out", str(tmp / "afile"), cwd=tmp)
    assert bad_out.returncode == 2 and len(bad_out.stderr.splitlines()) == 1


@pytest.mark.slow
def test_importances_on_few_complete_trials_are_flagged_unreliable(tmp_path: Path) -> None:
    from hpsearch.analysis.report.importance import MIN_TRIALS_FOR_IMPORTANCE

    url = f"sqlite:///{tmp_path / 'few.db'}"
    study = make_synthetic_study(url, "few", 15)
    complete = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    assert 2 <= complete < MIN_TRIALS_FOR_IMPORTANCE
    result = build_report("few", url, tmp_path / "out")
    warning = f"importances are unreliable: they rest on {complete} complete trial(s), fewer than {MIN_TRIALS_FOR_IMPORTANCE}"
    assert warning in result.text
    assert result.text.index(warning) < result.text.index("\nparam ")  # above the table it qualifies
    html = result.html.read_text()
    assert f'<p class="warning">warning: {warning}' in html


def test_report_on_a_study_without_complete_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(storage=url, study_name="empty")
    result = build_report("empty", url, tmp_path / "out")
    assert "no completed trial yet" in result.text and "needs at least 2 complete trials" in result.text
    assert result.html.exists()


def test_trials_csv_has_one_row_per_trial(synthetic: tuple[str, Path]) -> None:
    url, tmp = synthetic
    out = tmp / "trials.csv"
    proc = run_cli("trials", "syn", "--csv", str(out), "--storage", url, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    study = optuna.load_study(study_name="syn", storage=url)
    assert len(rows) == len(study.trials) == 300
    for row, t in zip(rows, study.trials):
        assert int(row["number"]) == t.number and row["state"] == t.state.name
        assert row["value"] == ("" if t.value is None else repr(t.value))
        assert float(row["params_learning_rate"]) == t.params["learning_rate"]
        assert row["params_batchnorm"] == t.params["batchnorm"]
        assert float(row["user_attrs_train_val_gap"]) == t.user_attrs["train_val_gap"]
        assert float(row["duration_s"]) >= 0
    bad = run_cli("trials", "syn", "--csv", str(tmp / "no" / "such" / "dir.csv"), "--storage", url, cwd=tmp)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_best_yaml_pastes_into_a_study_file_and_json_contract_kept(synthetic: tuple[str, Path]) -> None:
    url, tmp = synthetic
    proc = run_cli("best", "syn", "--format", "yaml", "--storage", url, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    block = yaml.safe_load(proc.stdout)
    as_json = json.loads(run_cli("best", "syn", "--json", "--storage", url, cwd=tmp).stdout)
    assert set(as_json) == {"study", "metric", "direction", "value", "params", "trial"}
    assert block == {"fixed": as_json["params"]}
    assert proc.stdout.startswith(f"# best trial #{as_json['trial']} of study syn")
    # paste: the quickstart file with its search and fixed sections replaced by the block validates
    data = yaml.safe_load(QUICKSTART.read_text())
    data.pop("search")
    data.pop("fixed")
    text = yaml.safe_dump(data) + proc.stdout
    config = parse_study(text)
    assert config.fixed == as_json["params"] and config.search == {}


@pytest.mark.slow
def test_dashboard_guards_warn_off_loopback_and_fail_cleanly(synthetic: tuple[str, Path]) -> None:
    url, tmp = synthetic
    # 192.0.2.1 (TEST-NET-1) is never a local address: the warning comes, then a clean bind error.
    proc = run_cli("dashboard", "--storage", url, "--host", "192.0.2.1", "--port", "8080", cwd=tmp, timeout=60)
    assert "no authentication" in proc.stderr and "write endpoints" in proc.stderr
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: --host/--port: cannot listen on 192.0.2.1:8080")
    missing = run_cli("dashboard", "--storage", f"sqlite:///{tmp / 'none.db'}", cwd=tmp, timeout=60)
    assert missing.returncode == 2 and "no study database" in missing.stderr and "no authentication" not in missing.stderr


def test_report_on_trials_without_curves_or_gaps(tmp_path: Path) -> None:
    """A study like NAME:verify: log-scaled params, no intermediate values, no train_val_gap."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    study = optuna.create_study(storage=url, study_name="plain", direction="maximize")
    dist = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
            "batchnorm": optuna.distributions.CategoricalDistribution(["none", "before_activation"])}
    for i, (lr, bn) in enumerate([(1e-3, "none"), (1e-2, "before_activation"), (3e-3, "none")]):
        study.add_trial(optuna.trial.create_trial(params={"learning_rate": lr, "batchnorm": bn}, distributions=dist, value=0.9 + i / 100))
    result = build_report("plain", url, tmp_path / "out")
    assert result.sections == ["summary", "history", "intermediate", "importance", "params", "categorical", "pruning-bias"]
    assert (tmp_path / "out" / "param_learning_rate.png").exists() and "best trial #2" in result.text


@pytest.mark.slow
def test_report_draws_decision_boundaries_for_a_2d_study(tmp_path: Path) -> None:
    from test_studies import without_question

    from hpsearch.api import load_study_file, optimize

    url = f"sqlite:///{tmp_path / 'toy.db'}"
    optimize(load_study_file(without_question("activations", tmp_path), trials=2, max_epochs=1), storage=url)
    result = build_report("activations", url, tmp_path / "out")
    boundary_pngs = [p for p in result.pngs if p.name.startswith("activations-")]
    assert boundary_pngs and all(p.stat().st_size > 0 for p in boundary_pngs)
    assert 'id="boundaries"' in result.html.read_text()


def test_report_shows_pruning_bias_and_decay_shrinkage(tmp_path: Path) -> None:
    """Planted bias: every pruned trial had strong dropout (keep_prob 0.5/0.6), every completed
    one weak (0.9); the report says so per parameter, and flags a best trial whose total decay
    lr·λ·steps is too small to matter."""
    url = f"sqlite:///{tmp_path / 'bias.db'}"
    study = optuna.create_study(storage=url, study_name="bias", direction="maximize")
    dist = {"keep_prob": optuna.distributions.FloatDistribution(0.5, 1.0),
            "l2_scope": optuna.distributions.CategoricalDistribution(["all", "fc"])}
    rows = [(0.9, "fc", 0.95, 0.002), (0.9, "all", 0.94, 0.5), (0.9, "fc", 0.93, 0.05)]
    for keep, scope, value, shrink in rows:
        study.add_trial(optuna.trial.create_trial(params={"keep_prob": keep, "l2_scope": scope}, distributions=dist, value=value,
                                                  intermediate_values={0: value - 0.1}, user_attrs={"decay_shrinkage": shrink}))
    for keep in (0.5, 0.6):
        study.add_trial(optuna.trial.create_trial(params={"keep_prob": keep, "l2_scope": "all"}, distributions=dist,
                                                  state=optuna.trial.TrialState.PRUNED, intermediate_values={0: 0.5}))
    result = build_report("bias", url, tmp_path / "out")
    assert "pruning-bias" in result.sections
    assert "2 of 5 finished trials were pruned" in result.text
    assert "pruned trials: median keep_prob 0.55 vs 0.9 for completed ones" in result.text
    assert "min 0.002, median 0.05, max 0.5; best trial 0.002 (below 0.01" in result.text
    html = result.html.read_text()
    assert "share all" in html and "100% of 2" in html and "33% of 3" in html
