"""`hpsearch verify`: real retraining on a tiny real study, stats recomputed from the stored
per-seed trials, re-runs that skip finished work, and proof the search never sees the test split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import split_probe
from conftest import run_cli
from optuna.trial import TrialState
from scipy import stats

from hpsearch.analysis.verify import ConfigStats, paired_test, run_verify, summarize
from hpsearch.api import load_study_file
from hpsearch.errors import ConfigError
from hpsearch.run.runner import run_study


def _stored(url: str, name: str) -> dict[int, dict[int, float]]:
    """rank -> {seed: test value} read straight from the NAME:verify study."""
    vstudy = optuna.load_study(study_name=f"{name}:verify", storage=url)
    out: dict[int, dict[int, float]] = {}
    for t in vstudy.get_trials(states=(TrialState.COMPLETE,)):
        out.setdefault(t.user_attrs["rank"], {})[t.user_attrs["seed"]] = t.value
    return out


@pytest.mark.slow
def test_verify_cli_stats_match_stored_runs_and_rerun_skips(write_study, sqlite_url: str, tmp_path: Path) -> None:
    path = write_study(trials=4, max_epochs=2)
    assert run_cli("optimize", str(path), "--storage", sqlite_url, cwd=tmp_path).returncode == 0
    proc = run_cli("verify", "tiny", "--top", "2", "--seeds", "3", "--json", "--storage", sqlite_url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ran"] == 6 and result["skipped"] == 0 and result["metric"] == "test_acc"
    assert proc.stderr.count("rank ") == 6  # progress on stderr, one line per run

    stored = _stored(sqlite_url, "tiny")
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    for cfg in result["configs"]:
        values = [stored[cfg["rank"]][s] for s in cfg["seeds"]]
        assert cfg["values"] == values and cfg["n"] == 3
        lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        assert cfg["mean"] == pytest.approx(np.mean(values))
        assert cfg["std"] == pytest.approx(np.std(values, ddof=1))
        assert (cfg["ci_low"], cfg["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
        assert study.trials[cfg["source_trial"]].params == cfg["params"]
    # ranks follow the search's validation metric
    assert result["configs"][0]["search_value"] >= result["configs"][1]["search_value"]
    vstudy = optuna.load_study(study_name="tiny:verify", storage=sqlite_url)
    assert all(t.params == result["configs"][t.user_attrs["rank"] - 1]["params"] for t in vstudy.trials)
    assert all(t.user_attrs["epochs"] == 2 for t in vstudy.trials)  # full max_epochs, no pruning

    a, b = result["configs"][0], result["configs"][1]
    if a["values"] != b["values"]:
        assert result["paired"]["p_value"] == pytest.approx(stats.ttest_rel(a["values"], b["values"]).pvalue)

    again = run_cli("verify", "tiny", "--top", "2", "--seeds", "4", "--json", "--storage", sqlite_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    more = json.loads(again.stdout)
    assert more["ran"] == 2 and more["skipped"] == 6  # only the new seed of each configuration
    assert len(optuna.load_study(study_name="tiny:verify", storage=sqlite_url).trials) == 8

    text = run_cli("verify", "tiny", "--top", "2", "--seeds", "4", "--storage", sqlite_url, cwd=tmp_path)
    assert text.returncode == 0 and "reused 8 stored runs" in text.stdout and "95% CI" in text.stdout


def test_verify_bad_input_is_one_line_exit_2(sqlite_url: str, tmp_path: Path) -> None:
    proc = run_cli("verify", "nope", "--top", "1", "--seeds", "2", "--storage", sqlite_url, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    proc = run_cli("verify", "nope", "--top", "0", "--storage", sqlite_url, cwd=tmp_path)
    assert proc.returncode == 2 and "--top" in proc.stderr


def test_search_never_sees_test_indices_and_verify_only_tests_on_them(write_study, sqlite_url: str) -> None:
    path = write_study(task="split_probe:probe", trials=3, max_epochs=2, pruner={"type": "median"})
    split_probe.SEEN.clear()
    run_study(load_study_file(path), sqlite_url)
    info = split_probe.probe_data(0).info
    train, val, test = (set(map(int, info[k])) for k in ("train_indices", "val_indices", "test_indices"))
    assert train and val and test and not (train & test) and not (val & test)
    seen_by_search = set(split_probe.SEEN)
    assert seen_by_search == train | val  # every train/val sample, and nothing else
    assert not seen_by_search & test

    split_probe.SEEN.clear()
    result = run_verify("tiny", sqlite_url, top=1, seeds=2)
    assert result.ran == 2 and result.configs[0].n == 2
    assert test <= split_probe.SEEN  # verification scored the test split
    assert split_probe.SEEN <= train | val | test


def test_summarize_and_paired_test_edge_cases() -> None:
    assert summarize([]) == (None, None, None, None)
    assert summarize([0.5])[:2] == (0.5, None)
    mean, std, lo, hi = summarize([0.9, 0.92, 0.94])
    assert mean == pytest.approx(0.92) and std == pytest.approx(0.02) and lo < mean < hi

    def cfg(rank: int, values: list[float]) -> ConfigStats:
        return ConfigStats(rank, rank, 0.0, {}, [10, 11, 12, 13], values, len(values), *summarize(values))

    clear = paired_test(cfg(1, [0.95, 0.96, 0.97, 0.96]), cfg(2, [0.90, 0.905, 0.92, 0.9]), maximize=True)
    assert clear.best_beats_runner_up and clear.p_value < 0.05 and clear.mean_difference > 0
    assert not paired_test(cfg(1, [0.9, 0.9, 0.9, 0.9]), cfg(2, [0.9, 0.9, 0.9, 0.9]), maximize=True).best_beats_runner_up
    worse = paired_test(cfg(1, [0.90, 0.905, 0.92, 0.9]), cfg(2, [0.95, 0.96, 0.97, 0.96]), maximize=True)
    assert not worse.best_beats_runner_up and "runner-up" in worse.verdict
    assert math.isfinite(worse.t_statistic)


@pytest.mark.slow
def test_verify_rebuilds_the_effective_seed_and_epochs_of_cli_overrides(write_study, sqlite_url: str) -> None:
    """A search run with --seed 7 --max-epochs 2 (the file says seed 0, 6 epochs) is verified on
    the seed-7 split for 2 epochs: its test split never overlaps the search's train/val."""
    path = write_study(task="split_probe:probe", trials=1, max_epochs=6)
    split_probe.SEEN.clear()
    run_study(load_study_file(path, seed=7, max_epochs=2), sqlite_url)
    seen_by_search = set(split_probe.SEEN)
    info = split_probe.probe_data(7).info
    train, val, test = (set(map(int, info[k])) for k in ("train_indices", "val_indices", "test_indices"))
    assert seen_by_search == train | val

    split_probe.SEEN.clear()
    split_probe.TRAINED.clear()
    result = run_verify("tiny", sqlite_url, top=1, seeds=1)
    assert result.ran == 1
    assert test <= split_probe.SEEN  # scored on the seed-7 test split...
    assert split_probe.TRAINED == train  # ...after training on the seed-7 train split only
    vstudy = optuna.load_study(study_name="tiny:verify", storage=sqlite_url)
    assert [t.user_attrs["epochs"] for t in vstudy.trials] == [2]


@pytest.mark.slow
def test_verify_refuses_a_definition_other_than_the_searched_one(write_study, sqlite_url: str, monkeypatch) -> None:
    path = write_study(trials=1, max_epochs=2)
    run_study(load_study_file(path), sqlite_url)
    monkeypatch.setenv("HPSEARCH_CAP_EPOCHS", "1")
    with pytest.raises(ConfigError, match=r"max_epochs: 2 -> 1.*HPSEARCH_CAP_EPOCHS"):
        run_verify("tiny", sqlite_url, top=1, seeds=1)


def _one_trial(write_study, sqlite_url: str, **changes: object) -> tuple[object, optuna.trial.FrozenTrial]:
    """A one-trial study run for real; its definition and trial."""
    definition = load_study_file(write_study(trials=1, **changes))
    run_study(definition, sqlite_url)
    return definition, optuna.load_study(study_name="tiny", storage=sqlite_url).trials[0]


@pytest.mark.slow
def test_verify_retrains_and_scores_on_the_dataset_the_trial_searched(write_study, sqlite_url: str) -> None:
    """``fixed: {dataset: xor}``: a retrain at the trial's seed reproduces the trial's validation
    value exactly (same data, same model), and verify's test value is the xor test score."""
    from hpsearch.analysis.retrain import retrain
    from hpsearch.run.training import evaluate, fit
    from hpsearch.study.space import settings_for

    definition, trial = _one_trial(write_study, sqlite_url, task="toy2d-mlp", max_epochs=15, search={
        "learning_rate": {"low": 1e-2, "high": 5e-2, "log": True}}, fixed={"dataset": "xor", "width": 6})
    again = retrain(definition, trial.params, seed=trial.user_attrs["seed"], data_seed=0)
    assert again.error is None and again.val_value == trial.value

    result = run_verify("tiny", sqlite_url, top=1, seeds=1)
    seed = result.configs[0].seeds[0]
    settings = settings_for(trial.params, definition.config, definition.task)
    xor = definition.task.load_data(0).info["variants"]["xor"]
    model = fit(definition.task, settings, xor, max_epochs=15, seed=seed).model
    assert result.configs[0].values == [evaluate(model, xor.test)["acc"]]
    moons = definition.task.load_data(0)
    assert evaluate(model, xor.test)["acc"] != evaluate(model, moons.test)["acc"]


@pytest.mark.slow
@pytest.mark.parametrize("task, fixed", [
    ("tabular-mlp", {"dataset": "wine", "hidden_units": 8, "hidden_layers": 1}),
    ("digits-bn", {"model": "cnn", "batchnorm": "after_activation", "channels": 4, "hidden_units": 16}),
    ("digits-two-input", {"batchnorm": "after_concat", "channels": 4, "hidden_units": 16}),
])
def test_every_task_variant_retrains(write_study, sqlite_url: str, task: str, fixed: dict) -> None:
    _one_trial(write_study, sqlite_url, task=task, max_epochs=1, search={"learning_rate": {"low": 1e-3, "high": 1e-2}},
               fixed={**fixed, "batch_size": 64})
    result = run_verify("tiny", sqlite_url, top=1, seeds=1)
    assert result.ran == 1 and result.configs[0].n == 1, _fail_reasons(sqlite_url)


def _fail_reasons(url: str) -> list[str]:
    vstudy = optuna.load_study(study_name="tiny:verify", storage=url)
    return [t.user_attrs.get("fail_reason", "") for t in vstudy.trials]


@pytest.mark.slow
def test_a_failed_retrain_is_stored_with_its_real_reason(write_study, sqlite_url: str) -> None:
    from dataclasses import replace

    from hpsearch.analysis.retrain import retrain

    definition, trial = _one_trial(write_study, sqlite_url, max_epochs=1)

    def broken(reg, options, data):
        raise RuntimeError("the model builder is broken")

    broken_def = replace(definition, task=replace(definition.task, build_model=broken))
    outcome = retrain(broken_def, trial.params, seed=1, data_seed=0)
    assert outcome.value is None and "the model builder is broken" in (outcome.error or "")
    assert "interrupted" not in (outcome.error or "")
