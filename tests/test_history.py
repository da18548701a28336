"""BoundedHistorySampler: what the base sampler sees, and that short studies are unchanged."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from hpsearch.errors import ConfigError
from hpsearch.study.algorithms import build_sampler
from hpsearch.study.config import SamplerConfig
from hpsearch.study.history import BoundedHistorySampler, bounded_history

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -3.0, 3.0)
    y = trial.suggest_float("y", 1e-4, 1.0, log=True)
    return (x - 1.0) ** 2 + y


def filled_study(direction: str, values: list[float | None]) -> optuna.Study:
    """A study whose trial i has value values[i] (None: pruned)."""
    study = optuna.create_study(direction=direction)
    dist = {"x": FloatDistribution(-3.0, 3.0)}
    for i, value in enumerate(values):
        state = TrialState.PRUNED if value is None else TrialState.COMPLETE
        study.add_trial(optuna.trial.create_trial(params={"x": 0.0}, distributions=dist, value=value, state=state,
                                                  intermediate_values={0: float(i)} if value is None else {}))
    return study


def test_nothing_is_left_out_up_to_the_bound() -> None:
    study = filled_study("minimize", [float(i) for i in range(10)])
    assert bounded_history(study.trials, study.direction, max_trials=10, keep_best=3) == set()


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_best_and_the_most_recent_are_kept(direction: str) -> None:
    # values: trial i has value (i * 7) % 30, every 5th trial pruned
    values = [None if i % 5 == 4 else float((i * 7) % 30) for i in range(30)]
    study = filled_study(direction, values)
    left_out = bounded_history(study.trials, study.direction, max_trials=10, keep_best=4)
    kept = set(range(30)) - left_out
    complete = [(v, i) for i, v in enumerate(values) if v is not None]
    best = sorted(complete, reverse=direction == "maximize")[:4]
    assert {i for _, i in best} <= kept
    assert len(kept) == 10
    recent = [i for i in range(29, -1, -1) if i not in {i for _, i in best}][:6]
    assert kept == {i for _, i in best} | set(recent)


class RecordingSampler(optuna.samplers.RandomSampler):
    """A random sampler that records the trial numbers it is shown."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[list[int]] = []

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        if param_name == "x":
            self.seen.append([t.number for t in study._get_trials(deepcopy=False, use_cache=True)])
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_the_base_sampler_sees_the_bounded_view_plus_newer_trials() -> None:
    base = RecordingSampler()
    study = optuna.create_study(sampler=BoundedHistorySampler(base, max_trials=20, keep_best=5))
    study.optimize(objective, n_trials=80)
    values = {t.number: t.value for t in study.trials}
    for number, seen in enumerate(base.seen):
        finished_before = number  # trials 0..number-1 are finished, `number` is running
        assert number in seen  # the running trial itself
        seen_finished = [n for n in seen if n != number]
        # at most the bound plus the trials that finished since the last selection
        assert len(seen_finished) <= min(finished_before, 20 + base_reselect(20))
        if finished_before > 20:
            assert number - 1 in seen_finished  # the most recent trial is always seen
            best_so_far = min(range(number), key=lambda n: values[n])
            assert best_so_far in seen_finished


def base_reselect(max_trials: int) -> int:
    return max(1, max_trials // 10)


def test_a_short_study_samples_exactly_like_plain_tpe() -> None:
    plain = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3))
    plain.optimize(objective, n_trials=30)
    bounded = optuna.create_study(sampler=BoundedHistorySampler(optuna.samplers.TPESampler(seed=3), max_trials=1000))
    bounded.optimize(objective, n_trials=30)
    assert [t.params for t in plain.trials] == [t.params for t in bounded.trials]


@pytest.mark.slow
def test_tpe_with_hyperband_runs_past_the_bound_on_sqlite(tmp_path: Any) -> None:
    sampler = BoundedHistorySampler(optuna.samplers.TPESampler(seed=0, n_startup_trials=5), max_trials=15, keep_best=5)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'h.db'}", sampler=sampler,
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9))

    def reported(trial: optuna.Trial) -> float:
        value = objective(trial)
        for step in range(9):
            trial.report(value + 1.0 / (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(reported, n_trials=60)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 60
    assert study.best_value < 1.0  # TPE still finds the region near x = 1


def test_build_sampler_bounds_tpe_by_default_and_refuses_max_history_elsewhere() -> None:
    sampler = build_sampler(SamplerConfig(), seed=0)
    assert isinstance(sampler, BoundedHistorySampler) and sampler.max_trials == 1000
    assert isinstance(sampler.base, optuna.samplers.TPESampler)
    unbounded = build_sampler(SamplerConfig.model_validate({"type": "tpe", "max_history": 0}), seed=0)
    assert isinstance(unbounded, optuna.samplers.TPESampler)
    assert isinstance(build_sampler(SamplerConfig(type="random"), seed=0), optuna.samplers.RandomSampler)
    with pytest.raises(ConfigError, match="sampler.max_history"):
        build_sampler(SamplerConfig.model_validate({"type": "random", "max_history": 10}), seed=0)
