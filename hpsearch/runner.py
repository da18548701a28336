"""The optimize loop: open the study, run trials until the study-wide target is reached."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

import hpsearch
from hpsearch import signals
from hpsearch.algorithms import build_pruner, build_sampler
from hpsearch.config import StudyFile
from hpsearch.errors import ConfigError, HPSearchError
from hpsearch.objective import Objective
from hpsearch.space import check_against_task
from hpsearch.checkpoints import CheckpointDir
from hpsearch.storage import Heartbeat, mask_url, open_storage
from hpsearch.study_stats import finished_trials
from hpsearch.tasks import resolve_task

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 10
# Sampler seed offset between workers started together (they all see the same trial count).
WORKER_SEED_STRIDE = 1_000_003


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
        finished = finished_trials(study)  # one COUNT query: cheap also in a 10,000-trial study
        self.failures_in_row = self.failures_in_row + 1 if trial.state == TrialState.FAIL else 0
        if self.on_progress is not None:
            self.on_progress(
                Progress(trial, finished, self.target, _best_or_none(study), time.perf_counter() - self.started, self.metric)
            )
        if finished >= self.target or self.failures_in_row >= MAX_CONSECUTIVE_FAILURES or signals.received():
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


def open_study(
    study_file: StudyFile,
    storage_url: str,
    heartbeat: Heartbeat | None = None,
    checkpoint_dir: str | Path | None = None,
    worker_index: int = 0,
) -> tuple[optuna.Study, Objective]:
    """Validate, then create or load the study (sampler, pruner, user attrs) and build its
    objective. All validation happens before the database is touched. See :func:`run_study`
    for ``heartbeat``, ``checkpoint_dir`` and ``worker_index``."""
    config = study_file.config
    task, metric, direction = prepare(study_file)
    build_sampler(config.sampler, config.seed, study_file.path)  # validates options early
    pruner = build_pruner(config.pruner, config.max_epochs, study_file.path)
    storage = open_storage(storage_url, heartbeat=heartbeat)
    study = optuna.create_study(
        storage=storage,
        study_name=config.study,
        direction=direction,
        pruner=pruner,
        load_if_exists=True,
    )
    # A fresh study samples from exactly ``seed``; a resumed one offsets the seed by the trials
    # already there, so its sampler does not replay the first run's proposals; workers started
    # together (same trial count) are told apart by their index.
    sampler_seed = config.seed + len(study.get_trials(deepcopy=False)) + WORKER_SEED_STRIDE * worker_index
    study.sampler = build_sampler(config.sampler, sampler_seed)
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
    checkpoints = CheckpointDir(Path(checkpoint_dir), config.study) if checkpoint_dir else None
    data = task.load_data(config.seed)
    # Reference numbers a task computes from its data (e.g. a naive baseline's validation MSE).
    for key, value in dict(data.info.get("study_user_attrs", {})).items():
        if attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study, Objective(config, task, data, metric, direction, checkpoints)


def run_study(
    study_file: StudyFile,
    storage_url: str,
    timeout: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[optuna.Study, int], None] | None = None,
    heartbeat: Heartbeat | None = None,
    checkpoint_dir: str | Path | None = None,
    worker_index: int = 0,
) -> optuna.Study:
    """Run ``study_file`` against ``storage_url`` until the study holds ``trials`` finished
    (complete + pruned) trials in total; returns the Optuna study.

    Bad input raises before anything is written. Re-running a finished study runs no trial;
    an interrupted one runs only the rest. ``on_start(study, finished)`` is called once the
    study is open, ``on_progress`` after every trial.

    Several workers (processes, nodes) may run the same study at once: each stops once the
    study as a whole holds the target, so K workers end with between ``trials`` and
    ``trials + K - 1`` finished trials. ``heartbeat`` (``None``: off) lets a surviving worker
    fail and re-run the trial of a dead one; ``checkpoint_dir`` makes such a re-run resume
    from the dead trial's last epoch. ``worker_index`` offsets the sampler seed so workers
    started together explore different points. A SIGINT/SIGTERM (after
    :func:`hpsearch.signals.install`) fails the running trial and raises
    :class:`hpsearch.signals.Interrupted`.
    """
    config = study_file.config
    study, objective = open_study(study_file, storage_url, heartbeat, checkpoint_dir, worker_index)
    finished = finished_trials(study)
    if on_start is not None:
        on_start(study, finished)
    if finished >= config.trials:
        log.info("study %s already has %d/%d finished trials", config.study, finished, config.trials)
        return study
    metric = objective.metric
    stopper = _StopAtTarget(config.trials, metric, on_progress)
    try:
        with signals.deferred():
            _optimize(study, objective, stopper, timeout)
            signals.raise_if_received()
            if heartbeat is not None:
                _settle_running(study, heartbeat)
    finally:
        _fail_own_running(study, objective.started)
    if stopper.failures_in_row >= MAX_CONSECUTIVE_FAILURES:
        last = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))[-1]
        raise StudyFailingError(
            f"stopped after {MAX_CONSECUTIVE_FAILURES} failed trials in a row; last failure "
            f"(trial {last.number}): {last.user_attrs.get('fail_reason', 'unknown')}"
        )
    return study


def _optimize(study: optuna.Study, objective: Objective, stopper: _StopAtTarget, timeout: float | None) -> None:
    """``study.optimize`` until the stopper stops it; a trial that another worker declared
    stale while this one still ran it (its heartbeat was late, e.g. during a database outage)
    makes Optuna raise at tell time: log it and go on with the next trial."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        try:
            study.optimize(
                objective,
                n_trials=None,
                timeout=remaining,
                callbacks=[stopper],
                catch=(Exception,),
                gc_after_trial=False,
            )
            return
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            log.warning("a trial of this worker was failed by another worker meanwhile: %s", exc)
            if signals.received():
                return


def _settle_running(study: optuna.Study, heartbeat: Heartbeat) -> None:
    """Before leaving, let the trials of dead workers go stale, so nothing stays RUNNING when
    the last worker exits: while a RUNNING trial's heartbeat is late (older than two
    intervals: its worker is probably dead), fail stale trials every interval, for at most
    the grace period plus two intervals. Trials of live workers are left to finish."""
    deadline = time.monotonic() + heartbeat.grace + 2 * heartbeat.interval
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if not _late_heartbeats(study, 2 * heartbeat.interval) or time.monotonic() >= deadline:
            return
        time.sleep(heartbeat.interval)
        signals.raise_if_received()  # a Ctrl-C while waiting ends the wait


def _late_heartbeats(study: optuna.Study, age_s: float) -> int:
    """Number of RUNNING trials of the study whose last heartbeat is older than ``age_s``."""
    import sqlalchemy
    from optuna.storages._rdb import models

    from hpsearch.storage import with_retry

    rdb = getattr(study._storage, "_backend", study._storage)

    def count() -> int:
        session = rdb.scoped_session()
        try:
            now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
            rows = (
                session.query(models.TrialHeartbeatModel.heartbeat)
                .join(models.TrialModel, models.TrialModel.trial_id == models.TrialHeartbeatModel.trial_id)
                .filter(models.TrialModel.state == TrialState.RUNNING, models.TrialModel.study_id == study._study_id)
                .all()
            )
            return sum(1 for (beat,) in rows if (now - beat.replace(tzinfo=None)).total_seconds() > age_s)
        finally:
            session.close()

    return with_retry(count, "heartbeat check")


def _fail_own_running(study: optuna.Study, own: list[int]) -> None:
    """Safety net: a trial of this process still RUNNING (an interrupt landed between Optuna
    creating it and running it) is marked FAIL with the reason stored."""
    for trial_id in own[-1:]:
        try:
            trial = study._storage.get_trial(trial_id)
            if trial.state == TrialState.RUNNING:
                sig = signals.received()
                reason = str(signals.Interrupted(sig)) if sig is not None else "the worker stopped before the trial ran"
                study._storage.set_trial_user_attr(trial_id, "fail_reason", reason)
                study._storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except Exception as exc:  # never mask the original error
            log.warning("could not mark trial %s failed: %s", trial_id, exc)
