"""BoundedHistorySampler: a model-based sampler that looks at a bounded part of a long study.

Optuna's TPE (and GP) sampler re-reads and re-models every finished trial for every new
trial, in Python, so the time to propose a trial grows linearly with the study (measured in
``docs/benchmarks.md``). What TPE needs from old
trials is mostly the best ones (its "good" density is built from the best ``min(10 %, 25)``
trials) and a fair sample of the rest. This wrapper gives the base sampler a view of the study
holding, once the study has more than ``max_trials`` finished trials:

* the ``keep_best`` best complete trials (so the "good" group is exactly the one the full
  history would give, as long as ``keep_best`` >= 25),
* the most recent finished trials up to ``max_trials`` in all (the "bad" group and the
  pruned trials come from the recent past, which TPE's default weights favour anyway),
* every trial in another state (running, waiting), and every trial that finished while the
  trial was being sampled.

Below ``max_trials`` finished trials the base sampler sees the study unchanged, so short
studies behave exactly like plain Optuna. Single-objective studies only (hpsearch's); a
multi-objective study is passed through whole.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Sequence, cast

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch.store.queries import FINISHED
from hpsearch.store.views import all_trials, bracket_key, view_for


def bounded_history(trials: Sequence[FrozenTrial], direction: StudyDirection, max_trials: int, keep_best: int) -> set[int]:
    """Numbers of the finished trials a bounded-history sampler does *not* see: all but the
    ``keep_best`` best complete trials and the most recent finished ones, ``max_trials``
    finished trials kept in all (nothing is left out when there are no more than that).
    Unfinished trials are always seen."""
    finished = [t for t in trials if t.state in FINISHED]
    if len(finished) <= max_trials:
        return set()
    complete = [t for t in finished if t.state == TrialState.COMPLETE and t.value is not None]
    pick = heapq.nlargest if direction == StudyDirection.MAXIMIZE else heapq.nsmallest
    kept = {t.number for t in pick(min(keep_best, max_trials), complete, key=_value)}
    for t in reversed(finished):
        if len(kept) >= max_trials:
            break
        kept.add(t.number)
    return {t.number for t in finished} - kept


def _value(trial: FrozenTrial) -> float:
    return trial.value  # type: ignore[return-value]  # complete single-objective trials only


@dataclass
class _Selection:
    """Which finished trials the base sampler does not see, chosen when the study held
    ``at_size`` trials, and the view memoized for one trial."""

    left_out: set[int]
    at_size: int
    trial_id: int | None = None
    view: list[FrozenTrial] = field(default_factory=list)
    view_size: int = -1


class BoundedHistorySampler(optuna.samplers.BaseSampler):
    """``base`` (a TPE or GP sampler) run on at most ``max_trials`` finished trials of the
    study: the ``keep_best`` best plus the most recent (see the module docstring).

    The selection is redone whenever the study has grown by ``max_trials // 10`` trials since
    the last one (trials that finished in between are all seen), so its O(n) cost is paid once
    per hundred trials at the default bound, not for every trial."""

    def __init__(self, base: optuna.samplers.BaseSampler, max_trials: int = 1000, keep_best: int = 250) -> None:
        if max_trials < 1 or keep_best < 0:
            raise ValueError(f"max_trials must be >= 1 and keep_best >= 0, got {max_trials} and {keep_best}")
        self.base = base
        self.max_trials = max_trials
        self.keep_best = keep_best
        self.reselect_every = max(1, max_trials // 10)
        # One selection per trial list the sampler is shown (Hyperband hands it one sub-study
        # per bracket).
        self._selections: dict[Any, _Selection] = {}

    def _history(self, study: Study, trial_id: int, use_cache: bool) -> list[FrozenTrial]:
        """The bounded history for the trial being sampled. A call for fresh trials (TPE's
        constant liar reads running trials anew) sees every trial that finished since."""
        trials = all_trials(study, use_cache)
        if len(study.directions) > 1:
            return trials
        key = bracket_key(study)
        selection = self._selections.get(key)
        if selection is None or not 0 <= len(trials) - selection.at_size < self.reselect_every:
            left_out = bounded_history(trials, study.direction, self.max_trials, self.keep_best)
            selection = self._selections[key] = _Selection(left_out, len(trials))
        if use_cache and selection.trial_id == trial_id and selection.view_size == len(trials):
            return selection.view
        left_out = selection.left_out
        view = [t for t in trials if t.number not in left_out] if left_out else trials
        if use_cache:
            selection.trial_id, selection.view, selection.view_size = trial_id, view, len(trials)
        return view

    def _view(self, study: Study, trial: FrozenTrial) -> Study:
        # A StudyView stands in for the study (it forwards every other attribute).
        return cast(Study, view_for(study, trial, self._history))

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(self._view(study, trial), trial)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.base.sample_relative(self._view(study, trial), trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self.base.sample_independent(self._view(study, trial), trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
