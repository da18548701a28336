"""The optimize loop: open the study, run trials until the study-wide target is reached."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

import hpsearch
from hpsearch.algorithms import build_pruner, build_sampler
from hpsearch.config import StudyFile
from hpsearch.errors import ConfigError, HPSearchError
from hpsearch.objective import Objective
from hpsearch.space import check_against_task
from hpsearch.storage import mask_url, open_storage
from hpsearch.tasks import resolve_task

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_CONSECUTIVE_FAILURES = 10


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


class _StopAtTarget:
    """Optuna callback: stop when the study (all workers) has ``target`` finished trials,
    or after too many consecutive failures; report progress after every trial."""

    def __init__(self, target: int, metric: str, on_progress: Callable[[Progress], None] | None) -> None:
        self.target = target
        self.metric = metric
        self.on_progress = on_progress
        self.started = time.perf_counter()
        self.failures_in_row = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        self.failures_in_row = self.failures_in_row + 1 if trial.state == TrialState.FAIL else 0
        if self.on_progress is not None:
            self.on_progress(
                Progress(trial, finished, self.target, _best_or_none(study), time.perf_counter() - self.started, self.metric)
            )
        if finished >= self.target or self.failures_in_row >= MAX_CONSECUTIVE_FAILURES:
            study.stop()


def _best_or_none(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def prepare(study_file: StudyFile):  # noqa: ANN201 - returns (task, metric, direction)
    """Resolve the task and check the config against it (no database access)."""
    config = study_file.config
    try:
        task = resolve_task(config.task)
    except ConfigError as exc:
        raise ConfigError(f"{study_file.path}: {exc}") from None
    check_against_task(config, task, study_file.path)
    return task, config.metric or task.metric, config.direction or task.direction


def run_study(
    study_file: StudyFile,
    storage_url: str,
    timeout: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[optuna.Study, int], None] | None = None,
) -> optuna.Study:
    """Run ``study_file`` against ``storage_url`` until the study holds ``trials`` finished
    (complete + pruned) trials in total; returns the Optuna study.

    All validation happens before the database is touched, so bad input writes nothing.
    Re-running a finished study runs no trial; an interrupted one runs only the rest.
    ``on_start(study, finished)`` is called once the study is open, ``on_progress`` after
    every trial.
    """
    config = study_file.config
    task, metric, direction = prepare(study_file)
    build_sampler(config.sampler, config.seed, study_file.path)  # validates options early
    pruner = build_pruner(config.pruner, config.max_epochs, study_file.path)
    storage = open_storage(storage_url)
    study = optuna.create_study(
        storage=storage,
        study_name=config.study,
        direction=direction,
        pruner=pruner,
        load_if_exists=True,
    )
    # A fresh study samples from exactly ``seed``; a resumed one offsets the seed by the trials
    # already there, so its sampler does not replay the first run's proposals.
    study.sampler = build_sampler(config.sampler, config.seed + len(study.get_trials(deepcopy=False)))
    stored = study.direction.name.lower()
    if stored != direction:
        raise ConfigError(
            f"{study_file.path}: direction: study {config.study!r} in {mask_url(storage_url)} "
            f"was created to {stored}, the file says {direction}"
        )
    attrs = study.user_attrs
    if attrs.get("metric", metric) != metric:
        raise ConfigError(
            f"{study_file.path}: metric: study {config.study!r} optimizes {attrs['metric']!r}, the file says {metric!r}"
        )
    if attrs.get("study_file") != study_file.text:
        study.set_user_attr("study_file", study_file.text)
        study.set_user_attr("study_file_path", study_file.path)
    for key, value in {"hpsearch_version": hpsearch.__version__, "metric": metric, "task": config.task}.items():
        if attrs.get(key) != value:
            study.set_user_attr(key, value)

    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    if on_start is not None:
        on_start(study, finished)
    if finished >= config.trials:
        log.info("study %s already has %d/%d finished trials", config.study, finished, config.trials)
        return study
    data = task.load_data(config.seed)
    # Reference numbers a task computes from its data (e.g. a naive baseline's validation MSE).
    for key, value in dict(data.info.get("study_user_attrs", {})).items():
        if attrs.get(key) != value:
            study.set_user_attr(key, value)
    objective = Objective(config, task, data, metric, direction)
    stopper = _StopAtTarget(config.trials, metric, on_progress)
    study.optimize(
        objective,
        n_trials=None,
        timeout=timeout,
        callbacks=[stopper],
        catch=(Exception,),
        gc_after_trial=False,
    )
    if stopper.failures_in_row >= MAX_CONSECUTIVE_FAILURES:
        last = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))[-1]
        raise StudyFailingError(
            f"stopped after {MAX_CONSECUTIVE_FAILURES} failed trials in a row; last failure "
            f"(trial {last.number}): {last.user_attrs.get('fail_reason', 'unknown')}"
        )
    return study
