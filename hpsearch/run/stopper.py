"""When a worker's trial loop stops: the study-wide target of finished trials, too many failures
in a row, a signal; and the progress snapshot reported after every trial. Used by the optimize
loop (:mod:`hpsearch.run.runner`) and handed to the trial loop (:mod:`hpsearch.run.trial_loop`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import HPSearchError
from hpsearch.run import signals
from hpsearch.run.objective import Objective
from hpsearch.store.queries import check_database, finished_trials
from hpsearch.study.meta import RunningBest

MAX_CONSECUTIVE_FAILURES = 10
# The same failure reason this many times in a row stops the study at once: it is not chance.
MAX_SAME_FAILURES = 3


@dataclass(frozen=True)
class Progress:
    """A snapshot after one trial, for progress display."""

    trial: FrozenTrial
    finished: int
    target: int
    best: FrozenTrial | None
    elapsed: float
    metric: str


class StudyFailingError(HPSearchError):
    """Every recent trial failed: the study stops instead of failing forever."""


class StopAtTarget:
    """Optuna callback: stop when the study (all workers) has ``target`` finished trials,
    or after too many consecutive failures; report progress after every trial. A database
    failure inside the objective (which Optuna would record as one failed trial and go on)
    and a SQLite file removed meanwhile end the run with that error."""

    def __init__(
        self, target: int, metric: str, on_progress: Callable[[Progress], None] | None, objective: Objective | None = None
    ) -> None:
        self.target = target
        self.metric = metric
        self.on_progress = on_progress
        self.objective = objective
        self.started = time.perf_counter()
        self.failures_in_row = 0
        self.same_failures = 0
        self.last_reason: str | None = None
        self.running_best = RunningBest()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.check(study, trial):
            study.stop()

    def check(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Count the finished trial and report progress; whether the run should stop (for
        trials run through ask/tell, where ``study.stop`` does not apply)."""
        if self.objective is not None and self.objective.fatal:
            raise self.objective.fatal[-1]
        check_database(study)
        finished = finished_trials(study)  # one COUNT query: cheap also in a 10,000-trial study
        self.failures_in_row = self.failures_in_row + 1 if trial.state == TrialState.FAIL else 0
        reason = trial.user_attrs.get("fail_reason") if trial.state == TrialState.FAIL else None
        self.same_failures = self.same_failures + 1 if reason is not None and reason == self.last_reason else int(reason is not None)
        self.last_reason = reason
        if self.on_progress is not None:
            self.on_progress(
                Progress(trial, finished, self.target, self.running_best.update(study, trial), time.perf_counter() - self.started,
                         self.metric)
            )
        return bool(finished >= self.target or self.failing or signals.received())

    @property
    def failing(self) -> bool:
        """Too many failures in a row, or the same failure reason too often in a row."""
        return self.failures_in_row >= MAX_CONSECUTIVE_FAILURES or self.same_failures >= MAX_SAME_FAILURES
