"""Trials on a real SQLite study: user attrs, pruning, NaN losses, failures, the target count."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import hpsearch
from hpsearch.api import load_study_file
from hpsearch.run.runner import StudyFailingError, run_study
from hpsearch.study.meta import stored_study_file


def test_finished_trials_store_user_attrs(write_study, sqlite_url: str) -> None:
    study = run_study(load_study_file(write_study()), sqlite_url)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3
    for t in trials:
        attrs = t.user_attrs
        assert attrs["epochs"] == 2 and attrs["device"] == "cpu" and attrs["wall_seconds"] > 0
        assert attrs["val_acc"] == pytest.approx(t.value)
        assert attrs["final_train_loss"] > 0
        assert attrs["train_val_gap"] == pytest.approx(attrs["train_acc"] - attrs["val_acc"])
        assert attrs["seed"] == t.number
    assert study.user_attrs["hpsearch_version"] == hpsearch.__version__
    assert "study: tiny" in stored_study_file(study)
    assert "study_file" not in study.user_attrs  # a system attr: `optuna studies` stays narrow
    assert study.metric_names == ["val_acc"]
    assert study.user_attrs["metric"] == "val_acc"


def test_intermediate_values_are_reported_each_epoch(write_study, sqlite_url: str) -> None:
    study = run_study(load_study_file(write_study(trials=1, max_epochs=3)), sqlite_url)
    assert sorted(study.trials[0].intermediate_values) == [0, 1, 2]


def test_pruner_prunes(write_study, sqlite_url: str) -> None:
    # Half the trials learn fast, half barely learn (tiny learning rate); with the seeded random
    # sampler a slow trial follows finished fast ones, and the median pruner cuts it.
    path = write_study(
        trials=8,
        max_epochs=6,
        sampler={"type": "random"},
        pruner={"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
        search={"learning_rate": [0.01, 1e-6]},
    )
    study = run_study(load_study_file(path), sqlite_url)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, [t.state for t in study.trials]
    for t in pruned:
        assert t.user_attrs["epochs"] < 6 and "pruner" in t.user_attrs["pruned_reason"]


def test_nan_loss_prunes_the_trial_with_the_reason_and_the_study_goes_on(write_study, sqlite_url: str) -> None:
    path = write_study(
        task="custom_tasks:toy_regression",
        trials=4,
        max_epochs=2,
        search={"behaviour": ["ok", "nan"]},
        fixed={"learning_rate": 0.01},
    )
    study = run_study(load_study_file(path), sqlite_url)
    by_behaviour = {t.params["behaviour"]: t for t in study.trials}
    nan_trial = by_behaviour["nan"]
    assert nan_trial.state == TrialState.PRUNED
    assert "non-finite training loss" in nan_trial.user_attrs["pruned_reason"]
    assert by_behaviour["ok"].state == TrialState.COMPLETE
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 4


def test_exception_fails_one_trial_not_the_study(write_study, sqlite_url: str) -> None:
    path = write_study(task="custom_tasks:toy_regression", trials=3, max_epochs=1, search={"behaviour": ["ok", "raise"]}, fixed={})
    study = run_study(load_study_file(path), sqlite_url)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed and all(t.user_attrs["fail_reason"] == "RuntimeError: boom from the custom model" for t in failed)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3


def test_a_study_that_always_fails_stops_with_the_reason(write_study, sqlite_url: str) -> None:
    path = write_study(task="custom_tasks:toy_regression", trials=3, max_epochs=1, search={}, fixed={"behaviour": "raise"})
    with pytest.raises(StudyFailingError, match="boom from the custom model"):
        run_study(load_study_file(path), sqlite_url)


def test_minimize_task_gap_sign(write_study, sqlite_url: str) -> None:
    path = write_study(task="custom_tasks:toy_regression", trials=1, max_epochs=3, search={}, fixed={"learning_rate": 0.01})
    study = run_study(load_study_file(path), sqlite_url)
    t = study.trials[0]
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert t.user_attrs["train_val_gap"] == pytest.approx(t.user_attrs["val_mse"] - t.user_attrs["train_mse"])


def test_same_seed_reproduces_results(write_study, tmp_path) -> None:
    path = write_study(trials=2, max_epochs=2)
    a = run_study(load_study_file(path), f"sqlite:///{tmp_path / 'a.db'}")
    b = run_study(load_study_file(path), f"sqlite:///{tmp_path / 'b.db'}")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]


def test_target_counts_finished_trials_across_runs(write_study, sqlite_url: str) -> None:
    run_study(load_study_file(write_study(), trials=2), sqlite_url)
    study = run_study(load_study_file(write_study(), trials=3), sqlite_url)
    assert len(study.trials) == 3
    study = run_study(load_study_file(write_study(), trials=3), sqlite_url)
    assert len(study.trials) == 3  # finished study: no new trial
    # the resumed sampler does not replay the first run's proposals
    assert study.trials[2].params != study.trials[0].params


def test_a_fit_resumed_after_its_last_epoch_keeps_the_validation_metrics(tmp_path) -> None:
    from hpsearch.run.checkpoints import EpochCheckpoint
    from hpsearch.run.training import fit
    from hpsearch.study.config import parse_study
    from hpsearch.study.space import settings_for
    from hpsearch.tasks import resolve_task

    task = resolve_task("digits-mlp")
    config = parse_study("study: s\ntask: digits-mlp\ntrials: 1\nmax_epochs: 2\nsearch: {}\nfixed: {hidden_units: 16}\n")
    data = task.load_data(0)
    settings = settings_for({}, config, task)
    checkpoint = EpochCheckpoint(tmp_path / "trial-0.ckpt")
    first = fit(task, settings, data, max_epochs=2, seed=0, callbacks=[checkpoint])
    assert first.error is None and first.epochs == 2 and "val_acc" in first.metrics
    # the worker died after the last epoch's checkpoint: the re-run has no epoch left to train
    again = fit(task, settings, data, max_epochs=2, seed=0, callbacks=[EpochCheckpoint(checkpoint.path)],
                ckpt_path=str(checkpoint.path))
    assert again.error is None and again.epochs == 2
    assert again.metrics == first.metrics


@pytest.mark.slow
def test_decay_shrinkage_is_lr_lambda_steps_of_decoupled_decay(write_study, sqlite_url: str) -> None:
    """Every trial records its optimizer steps and, for decoupled decay, the total shrinkage
    lr·λ·steps, so a decay too weak to matter is visible (the issue's AdamW case: 3e-3 × 5e-3 ×
    136 steps ≈ 0.002)."""
    import math

    from hpsearch.tasks.digits import load_digits_splits

    fixed = {"optimizer": "adamw", "batch_size": 128, "hidden_units": 16, "hidden_layers": 1, "weight_decay": 0.01}
    path = write_study(trials=1, max_epochs=2, search={"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}, fixed=fixed)
    study = run_study(load_study_file(path), sqlite_url)
    t = study.trials[0]
    steps = 2 * math.ceil(len(load_digits_splits(0).train[1]) / 128)
    assert t.user_attrs["optimizer_steps"] == steps
    assert t.user_attrs["decay_shrinkage"] == pytest.approx(t.params["learning_rate"] * 0.01 * steps)
