"""The trial loop of one worker: trials one at a time through ``study.optimize``, or
``population: K`` at a time through the round runner its caller hands down (the CLI and the
API pass :func:`hpsearch.population.run.optimize_population`: this module never imports the
populations, which sit above it), until the stopper (:mod:`hpsearch.run.stopper`) says stop."""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Optional

import optuna
from optuna.trial import FrozenTrial

from hpsearch.errors import DatabaseFailure
from hpsearch.run import signals
from hpsearch.run.objective import Objective
from hpsearch.run.stopper import StopAtTarget
from hpsearch.store.queries import fail_if_running
from hpsearch.study.definition import StudyDefinition

log = logging.getLogger(__name__)


def population_note(task: str, why: str) -> str:
    """The one note of a run whose trials cannot train as populations."""
    return f"note: task {task} cannot train populations ({why}); training one trial at a time (population 1)"


def _no_population_reason(definition: StudyDefinition) -> str | None:
    """Why the study's trials cannot train as a population, if they cannot: a population
    member reports one value, is pruned like any member and keeps no model."""
    config = definition.config
    if definition.task.lightning is not None:
        return "a task of your own Lightning classes cannot stack its trials into a population"
    if definition.multi:
        return "a study with several objectives cannot train populations"
    if config.constraints:
        return "a study with constraints cannot train populations"
    if config.baselines:
        return "a study with baselines cannot train populations"
    return None


#: Trains the study's trials ``size`` at a time until ``check`` (the stopper) says stop, the
#: timeout passes or ``n_trials`` ran; returns ``False`` when the models cannot be stacked (the
#: rest then runs one at a time). Arguments: study, objective, size, target, check, timeout,
#: n_trials. See :func:`hpsearch.population.run.optimize_population`.
RoundRunner = Callable[[optuna.Study, Objective, int, int, Callable[[optuna.Study, FrozenTrial], bool], Optional[float], Optional[int]],
                       bool]


def run_trials(
    study: optuna.Study, objective: Objective, stopper: StopAtTarget, timeout: float | None, n_trials: int | None = None,
    round_runner: RoundRunner | None = None,
) -> None:
    """Trials one at a time (:func:`_optimize`), or ``population: K`` at a time through
    ``round_runner`` (a task whose models cannot be stacked falls back to one at a time). A
    population without a round runner is a programming error (``ValueError``)."""
    size = objective.definition.config.population
    if size > 1 and (why := _no_population_reason(objective.definition)):
        print(population_note(objective.definition.task.name, why), file=sys.stderr)
        size = 1
    if size > 1:
        if round_runner is None:
            raise ValueError(f"population {size}: run_study needs a round_runner (hpsearch.population.run.optimize_population)")
        started = time.monotonic()
        if round_runner(study, objective, size, stopper.target, stopper.check, timeout, n_trials):
            return
        if timeout is not None:
            timeout = max(1e-3, timeout - (time.monotonic() - started))
        if n_trials is not None:
            return  # the queued copies of a settle step ran (or failed) in the round already
    _optimize(study, objective, stopper, timeout, n_trials)


def _optimize(
    study: optuna.Study, objective: Objective, stopper: StopAtTarget, timeout: float | None, n_trials: int | None = None
) -> None:
    """``study.optimize`` until the stopper stops it (or ``n_trials`` ran); a trial that another
    worker declared stale while this one still ran it (its heartbeat was late, e.g. during a
    database outage) makes Optuna raise at tell time: log it and go on with the next trial."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        try:
            study.optimize(
                objective,
                n_trials=n_trials,
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
        except Exception as exc:
            # Optuna's trial loop can mask a storage failure raised while it finishes a trial
            # (an UnboundLocalError in its own cleanup): report the database failure itself.
            cause = _database_failure_in(exc)
            if cause is None:
                raise
            raise cause from None


def _database_failure_in(exc: BaseException) -> DatabaseFailure | None:
    """The ``DatabaseFailure`` in ``exc``'s cause/context chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DatabaseFailure):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def fail_own_running(study: optuna.Study, own: list[int]) -> None:
    """Safety net: a trial of this process still RUNNING (an interrupt landed between Optuna
    creating it and running it) is marked FAIL with the reason stored."""
    for trial_id in own[-1:]:
        sig = signals.received()
        reason = str(signals.Interrupted(sig)) if sig is not None else "the worker stopped before the trial ran"
        try:
            fail_if_running(study, trial_id, reason)
        except DatabaseFailure as exc:  # the database itself failed: the caller reports that
            log.info("could not mark trial %s failed: %s", trial_id, exc)
        except Exception as exc:  # never mask the original error
            log.warning("could not mark trial %s failed: %s", trial_id, exc)
