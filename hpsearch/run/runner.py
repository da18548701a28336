"""The optimize loop: open the study, run trials until the study-wide target is reached."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpsearch.errors import ConfigError
from hpsearch.run import signals
from hpsearch.run.checkpoints import CheckpointDir
from hpsearch.run.events import EpochEvent
from hpsearch.run.identity import check_identity, checkpoint_key
from hpsearch.run.kept_models import ModelKeeper, model_dir_for
from hpsearch.run.objective import Objective
from hpsearch.run.settle import settle
from hpsearch.run.stopper import MAX_CONSECUTIVE_FAILURES, MAX_SAME_FAILURES, Progress, StopAtTarget, StudyFailingError
from hpsearch.run.trial_loop import RoundRunner, fail_own_running, run_trials
from hpsearch.store.connect import connect
from hpsearch.store.heartbeat import Heartbeat
from hpsearch.store.queries import check_database, finished_trials
from hpsearch.store.urls import mask_url
from hpsearch.study.algorithms import build_pruner, build_sampler
from hpsearch.study.baselines import check_baseline_count, enqueue_baselines
from hpsearch.study.config import effective_settings
from hpsearch.study.definition import StudyDefinition
from hpsearch.study.meta import METRIC_ATTR, record_metric_names, record_study_file
from hpsearch.tasks.checked import load_checked_data
from hpsearch.version import __version__

log = logging.getLogger(__name__)

# Sampler seed offset between workers started together (they all see the same trial count).
WORKER_SEED_STRIDE = 1_000_003


def create_or_load(
    definition: StudyDefinition, url: str, heartbeat: Heartbeat | None = None, pruner: optuna.pruners.BasePruner | None = None,
    allow_changes: bool = False, sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """The study named in the definition on the database at ``url``, created if missing; a
    stored direction that differs from the file's, or a definition that differs from the one
    the study was created with (unless ``allow_changes``), is a :class:`ConfigError` raised
    before anything is written (see :mod:`hpsearch.run.identity`). ``sampler``: the study's
    sampler (``None``: a random one, for a study only opened, never sampled from here)."""
    config = definition.config
    study = optuna.create_study(
        storage=connect(url, heartbeat=heartbeat), study_name=config.study,
        directions=[StudyDirection[d.upper()] for d in definition.directions], pruner=pruner, load_if_exists=True,
        sampler=sampler or optuna.samplers.RandomSampler(),
    )
    stored = [d.name.lower() for d in study.directions]
    if stored != definition.directions:
        key = "objectives" if definition.multi or len(stored) > 1 else "direction"
        raise ConfigError(
            f"{definition.path}: {key}: study {config.study!r} in {mask_url(url)} "
            f"was created to {', '.join(stored)}, the file says {', '.join(definition.directions)}"
        )
    check_identity(study, definition, url, allow_changes)
    return study


def record_definition(study: optuna.Study, definition: StudyDefinition) -> None:
    """Store the metric, task and version as study user attrs, the study file as system attrs
    and the metric as the study's metric name (only what changed); a study that optimizes
    another metric is a :class:`ConfigError`."""
    attrs = study.user_attrs
    metric = definition.metric
    if attrs.get(METRIC_ATTR, metric) != metric:
        raise ConfigError(
            f"{definition.path}: metric: study {definition.config.study!r} optimizes {attrs[METRIC_ATTR]!r}, the file says {metric!r}"
        )
    record_study_file(study, definition.text, definition.path, effective_settings(definition.config))
    record_metric_names(study, definition.metrics)
    wanted = {"hpsearch_version": __version__, METRIC_ATTR: metric, "task": definition.config.task_ref}
    for key, value in wanted.items():
        if attrs.get(key) != value:
            study.set_user_attr(key, value)


def preflight(definition: StudyDefinition, url: str) -> None:
    """The checks that depend on this run rather than the file alone (the trial budget after
    overrides and caps, the model directory), made before any study is created."""
    check_baseline_count(definition.config, definition.path)
    model_dir_for(definition, url)


def open_study(
    definition: StudyDefinition,
    storage_url: str,
    heartbeat: Heartbeat | None = None,
    checkpoint_dir: str | Path | None = None,
    worker_index: int = 0,
    allow_changes: bool = False,
) -> tuple[optuna.Study, Objective]:
    """Create or load the study of ``definition`` (checked once, by the caller: see
    :func:`hpsearch.study.definition.define`) with its sampler, pruner and user attrs, and
    build its objective. The sampler and pruner are built once, before the database is
    touched, as is every other check (the task's data included). See :func:`run_study` for
    the other arguments."""
    config = definition.config
    # A fresh study samples from exactly ``seed``; workers started together (same trial
    # count) are told apart by their index.
    seed = config.seed + WORKER_SEED_STRIDE * worker_index
    sampler = build_sampler(config.sampler, seed, definition.path, len(definition.metrics), config.population)
    pruner = optuna.pruners.NopPruner() if definition.multi else build_pruner(config.pruner, config.max_epochs, definition.path)
    data = load_checked_data(definition.task, config.seed, definition.path)
    preflight(definition, storage_url)
    study = create_or_load(definition, storage_url, heartbeat, pruner, allow_changes, sampler)
    # A resumed study offsets the seed by the trials already there, so its sampler does not
    # replay the first run's proposals: only then is a second sampler built.
    resumed = len(study.get_trials(deepcopy=False))
    if resumed:
        study.sampler = build_sampler(config.sampler, seed + resumed, definition.path, len(definition.metrics), config.population)
    record_definition(study, definition)
    enqueue_baselines(study, definition.config, definition.task, definition.path)
    # Reference numbers a task computes from its data (e.g. a naive baseline's validation MSE).
    for key, value in dict(data.info.get("study_user_attrs", {})).items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    checkpoints = CheckpointDir(Path(checkpoint_dir), config.study, checkpoint_key(study)) if checkpoint_dir else None
    return study, Objective(definition, data, checkpoints, keeper=ModelKeeper.open(study, definition, storage_url))


def run_study(
    definition: StudyDefinition,
    storage_url: str,
    timeout: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[optuna.Study, int], None] | None = None,
    heartbeat: Heartbeat | None = None,
    checkpoint_dir: str | Path | None = None,
    worker_index: int = 0,
    allow_changes: bool = False,
    on_epoch: Callable[[EpochEvent], None] | None = None,
    round_runner: RoundRunner | None = None,
) -> optuna.Study:
    """Run the study of ``definition`` (a checked study file: see
    :func:`hpsearch.api.load_study_file`) against ``storage_url`` until the study holds ``trials`` finished
    (complete + pruned) trials in total; returns the Optuna study.

    Bad input raises before anything is written. Re-running a finished study runs no trial;
    an interrupted one runs only the rest. ``on_start(study, finished)`` is called once the
    study is open, ``on_progress`` after every trial, ``on_epoch`` when a trial starts and
    after each of its epochs.

    Several workers (processes, nodes) may run the same study at once: each stops once the
    study as a whole holds the target, so K workers end with between ``trials`` and
    ``trials + K - 1`` finished trials. ``heartbeat`` (``None``: off) lets a surviving worker
    fail and re-run the trial of a dead one; ``checkpoint_dir`` makes such a re-run resume
    from the dead trial's last epoch. ``worker_index`` offsets the sampler seed so workers
    started together explore different points. ``allow_changes`` lets a file that differs
    from the study's definition add trials to it (see :mod:`hpsearch.run.identity`). A SIGINT/SIGTERM (after
    :func:`hpsearch.run.signals.install`) fails the running trial and raises
    :class:`hpsearch.run.signals.Interrupted`. ``round_runner`` trains a ``population: K``
    study's trials K at a time (see :mod:`hpsearch.run.trial_loop`; the CLI and the API pass
    :func:`hpsearch.population.run.optimize_population`).
    """
    study, objective = open_study(definition, storage_url, heartbeat, checkpoint_dir, worker_index, allow_changes)
    objective = dataclasses.replace(objective, on_epoch=on_epoch)
    target = objective.definition.config.trials
    finished = finished_trials(study)
    if on_start is not None:
        on_start(study, finished)
    stopper = StopAtTarget(target, objective.definition.metric, on_progress, objective)
    if finished >= target:
        log.info("study %s already has %d/%d finished trials", study.study_name, finished, target)
    try:
        with signals.deferred():
            if finished < target:
                run_trials(study, objective, stopper, timeout, round_runner=round_runner)
                signals.raise_if_received()
            if heartbeat is not None:
                settle(study, heartbeat, lambda n: run_trials(study, objective, stopper, None, n_trials=n, round_runner=round_runner))
            check_database(study)
    finally:
        fail_own_running(study, objective.started)
    if stopper.same_failures >= MAX_SAME_FAILURES:
        raise StudyFailingError(f"stopped: the last {stopper.same_failures} trials failed with the same error: {stopper.last_reason}")
    if stopper.failures_in_row >= MAX_CONSECUTIVE_FAILURES:
        _raise_failing(study)
    return study


def _raise_failing(study: optuna.Study) -> None:
    last = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))[-1]
    raise StudyFailingError(
        f"stopped after {MAX_CONSECUTIVE_FAILURES} failed trials in a row; last failure "
        f"(trial {last.number}): {last.user_attrs.get('fail_reason', 'unknown')}"
    )
