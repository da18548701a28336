"""Baselines: named fixed settings enqueued first, once, run with the full epoch budget."""

from __future__ import annotations

import csv
import io

import pytest
from conftest import run_cli
from optuna.trial import TrialState

from hpsearch.api import load_study_file
from hpsearch.errors import ConfigError
from hpsearch.run.runner import open_study, run_study

SEARCH = {"learning_rate": {"low": 1e-6, "high": 3e-2, "log": True}, "weight_decay": [0.0, 5.0e-4], "l2_scope": ["all", "fc"]}
BASELINES = {
    "good": {"learning_rate": 0.01},
    # Learns nothing: the median pruner (startup 1, no warm-up) would cut it after one epoch.
    "tf-mnist-l2": {"learning_rate": 1.0e-6, "weight_decay": 5.0e-4, "l2_scope": "fc"},
}


@pytest.mark.slow
def test_baselines_run_first_unpruned_for_all_epochs(write_study, sqlite_url: str) -> None:
    pruner = {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0}
    path = write_study(trials=3, max_epochs=3, search=SEARCH, baselines=BASELINES, pruner=pruner)
    study = run_study(load_study_file(path), sqlite_url)
    trials = study.get_trials()
    assert [t.user_attrs.get("baseline") for t in trials[:2]] == ["good", "tf-mnist-l2"]
    for t in trials[:2]:
        assert t.state == TrialState.COMPLETE and t.user_attrs["epochs"] == 3
        assert sorted(t.intermediate_values) == [0, 1, 2]  # reported for the learning curves, never pruned
    assert trials[1].params == {"learning_rate": 1.0e-6, "weight_decay": 5.0e-4, "l2_scope": "fc"}
    assert trials[0].params == {"learning_rate": 0.01, "weight_decay": 0.0}  # the default weight_decay; l2_scope inactive
    assert "baseline" not in trials[2].user_attrs

    out = run_cli("trials", "tiny", "--storage", sqlite_url, "--csv", "-")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["user_attrs_baseline"] for r in rows] == ["good", "tf-mnist-l2", ""]


def test_baselines_are_enqueued_once_whatever_the_number_of_workers(write_study, sqlite_url: str) -> None:
    definition = load_study_file(write_study(search=SEARCH, baselines=BASELINES))
    for worker in range(3):
        study, _ = open_study(definition, sqlite_url, worker_index=worker)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["baseline"] for t in waiting] == ["good", "tf-mnist-l2"]


@pytest.mark.parametrize(
    ("baselines", "message"),
    [
        ({"b": {"dropout": 0.5}}, r"baselines\.b\.dropout: unknown parameter for task digits-mlp"),
        ({"b": {"learning_rate": 0.5}}, r"baselines\.b\.learning_rate: 0\.5 is outside the search space \[1e-06, 0\.03\]"),
        ({"b": {"l2_scope": "weights", "weight_decay": 5.0e-4}}, r"baselines\.b\.l2_scope: 'weights' is outside the search space all, fc"),
        ({"b": {"batch_size": 32}}, r"baselines\.b\.batch_size: not searched in this study"),
        ({"b": {"l2_scope": "fc"}}, r"baselines\.b\.l2_scope: has no effect in this baseline \(only when weight_decay > 0\)"),
        ({"b": {"weight_decay": 5.0e-4}}, r"baselines\.b: give learning_rate \(its default 0\.001 is outside"),
    ],
)
def test_bad_baselines_are_one_line_errors(write_study, baselines: dict, message: str) -> None:
    search = dict(SEARCH)
    if "give learning_rate" in message:
        search["learning_rate"] = {"low": 1e-2, "high": 3e-2}
    with pytest.raises(ConfigError, match=message) as err:
        load_study_file(write_study(search=search, baselines=baselines))
    assert "\n" not in str(err.value)
