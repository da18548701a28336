"""A read view of a study with a filtered trial list, for samplers that should model only part
of the history (:class:`hpsearch.study.history.BoundedHistorySampler`).

Optuna's samplers read trials through ``study._get_trials``; the view overrides it, so this
module (part of the store layer) holds the private names involved.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Container

import optuna
from optuna.trial import FrozenTrial, TrialState

#: ``history(study, trial_id, use_cache)``: the trials a sampler may see for one trial.
History = Callable[[optuna.Study, int, bool], list[FrozenTrial]]


class StudyView:
    """The study as a sampler sees it: its trial getters return ``history(...)``; every other
    attribute is the study's own."""

    def __init__(self, study: optuna.Study, history: History, trial_id: int) -> None:
        self._study = study
        self._history = history
        self._trial_id = trial_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._history(self._study, self._trial_id, use_cache)
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


def view_for(study: optuna.Study, trial: FrozenTrial, history: History) -> StudyView:
    """The view a sampler gets while sampling ``trial``."""
    return StudyView(study, history, trial._trial_id)


def all_trials(study: optuna.Study, use_cache: bool) -> list[FrozenTrial]:
    """Every trial of the study, as samplers read them (Optuna's cached, uncopied list)."""
    return study._get_trials(deepcopy=False, use_cache=use_cache)


def bracket_key(study: optuna.Study) -> Any:
    """Which trial list a sampler is shown: Hyperband hands it one sub-study per bracket
    (``None`` for the study itself)."""
    return getattr(study, "_bracket_id", None)
