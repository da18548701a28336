"""Run a study K trials at a time: ask Optuna for K trials, group them by architecture, train
each group as one :class:`~hpsearch.population.module.PopulationModule` inside one Lightning
``fit``, and tell every member's result as its own trial.

Every member keeps the guarantees of a single trial: its own seed (``seed + trial number``)
for initialization and batch order, its own intermediate values and pruning decision, the
same user attrs (plus ``population`` — the size of its group — and ``population_index``), a
NaN loss prunes only that member, heartbeats for every member of the round from the moment it
is asked, and no member is left RUNNING when the worker is interrupted (a SIGKILLed worker's
members go stale and are failed and re-run by a survivor, as for single trials). Re-runs start
from epoch 0: ``--checkpoint-dir`` does not apply to population members.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import lightning.pytorch as pl
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import DatabaseFailure, describe_exception
from hpsearch.population.module import PopulationFeed, PopulationModule, population_of
from hpsearch.population.stacked import Unsupported
from hpsearch.run import signals
from hpsearch.run.objective import Objective
from hpsearch.run.training import fit_catching, quiet_lightning
from hpsearch.store.queries import beating, fail_if_running, fail_stale_trials, finished_trials, set_trial_user_attrs, trial_id
from hpsearch.study.meta import metric_key, train_metric
from hpsearch.study.space import TrialSettings
from hpsearch.tasks.base import DataSplits

log = logging.getLogger(__name__)

__all__ = ["optimize_population", "group_key"]


@dataclass
class Member:
    """One asked trial of a round and what became of it."""

    trial: optuna.Trial
    settings: TrialSettings
    data: DataSplits
    seed: int
    index: int = -1  # position in its group's population
    attrs: dict[str, Any] = field(default_factory=dict)
    state: TrialState | None = None
    value: float | None = None
    told: bool = False


def group_key(settings: TrialSettings) -> tuple[Any, ...]:
    """Members with equal keys share a layer graph and a data feed: every non-regularization
    option (widths, depth, batch size, dataset) plus ``activation``. BatchNorm placement,
    dropout, input normalization and the optimizer settings may differ inside a group."""
    options = tuple(sorted((k, repr(v)) for k, v in settings.options.items()))
    return (settings.reg.activation, options)


class _MemberReports(pl.Callback):
    """After every epoch: prune members whose loss is not finite, report each member's metric
    to its trial and drop the members its pruner stops; stop when none is left."""

    def __init__(self, members: Sequence[Member], objective: Objective, data: DataSplits, started: float) -> None:
        self.members = list(members)
        self.objective = objective
        self.data = data
        self.started = started

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert isinstance(pl_module, PopulationModule)
        metric = self.objective.metric
        values = pl_module.val_metrics.get(metric)
        epoch = pl_module.current_epoch
        stopped: dict[int, tuple[TrialState, str]] = {}
        for pos, state in enumerate(pl_module.members):
            member = self.members[state.index]
            loss = pl_module.train_losses[pos]
            if not math.isfinite(loss):
                stopped[pos] = (TrialState.PRUNED, f"non-finite training loss ({loss}) in epoch {epoch}")
                continue
            if values is None:
                continue
            member.trial.report(values[pos], step=epoch)
            if member.trial.should_prune():
                stopped[pos] = (TrialState.PRUNED, f"pruner stopped it after epoch {epoch}")
        if stopped:
            _finish(pl_module, [self.members[pl_module.members[p].index] for p in stopped], self.objective, self.data, self.started,
                    [stopped[p] for p in stopped])
            pl_module.keep([p for p in range(pl_module.size) if p not in stopped])
        if pl_module.size == 0:
            trainer.should_stop = True


def _finish(pop: PopulationModule, members: Sequence[Member], objective: Objective, data: DataSplits, started: float,
            outcomes: Sequence[tuple[TrialState, str | None]]) -> None:
    """Record the result attrs of ``members`` (still in ``pop``) as a single trial would."""
    metric = objective.metric
    positions = {state.index: pos for pos, state in enumerate(pop.members)}
    values = pop.val_metrics.get(metric)
    train = pop.member_metrics(data.train[0].to(pop.device), data.train[1].to(pop.device)) if values is not None else {}
    for member, (state, reason) in zip(members, outcomes):
        pos = positions[member.index]
        value = values[pos] if values is not None else None
        loss = pop.train_losses[pos] if pop.train_losses else None
        member.attrs.update({
            "epochs": pop.epochs_validated,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "device": str(pop.device),
            "final_train_loss": loss,
            metric: value,
        })
        key = metric_key(metric)
        if value is not None and key in train and math.isfinite(loss if loss is not None else 0.0):
            train_value = float(train[key][pos])
            member.attrs[train_metric(metric)] = train_value
            member.attrs["train_val_gap"] = objective.definition.meta.gap(train_value, value)
        member.state, member.value = state, value
        if reason is not None:
            member.attrs["pruned_reason" if state == TrialState.PRUNED else "fail_reason"] = reason
        if state == TrialState.COMPLETE and value is None:
            member.state = TrialState.FAIL
            member.attrs["fail_reason"] = f"the model logged no {metric!r}; it logged {sorted(pop.val_metrics)}"


def _train_group(members: list[Member], objective: Objective, max_epochs: int) -> None:
    """Train one architecture group as one population; fills in every member's outcome.
    Raises :class:`Unsupported` (before training) when the task's model cannot be stacked."""
    task = objective.definition.task
    singles = []
    for member in members:
        torch.manual_seed(member.seed)
        singles.append(task.build_model(member.settings.reg, member.settings.options, member.data))
    batch_size = int(members[0].settings.options.get("batch_size", 64))
    pop = population_of(singles, [m.settings.reg for m in members], [m.seed for m in members], batch_size)
    for i, member in enumerate(members):
        member.index = i
        member.attrs.update({"population": len(members), "population_index": i})
    data = members[0].data
    torch.manual_seed(members[0].seed)  # dropout masks of the group
    started = time.perf_counter()
    quiet_lightning()
    trainer = pl.Trainer(
        accelerator="auto", devices=1, max_epochs=max_epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[_MemberReports(members, objective, data, started)],
    )
    # A failing custom model fails every member still training; a database failure ends the run.
    error = fit_catching(trainer, pop, PopulationFeed(data.train, data.val), reraise=(DatabaseFailure,))
    alive = [members[s.index] for s in pop.members]
    if alive:
        if error is None:
            _finish(pop, alive, objective, data, started, [(TrialState.COMPLETE, None)] * len(alive))
        else:
            reason = describe_exception(error)
            for member in alive:
                member.state = TrialState.FAIL
                member.attrs["fail_reason"] = reason


def _tell(study: optuna.Study, member: Member) -> FrozenTrial:
    """Store the member's attrs and tell its final state."""
    set_trial_user_attrs(member.trial, member.attrs)
    member.told = True
    state = member.state or TrialState.FAIL
    return study.tell(member.trial, member.value if state == TrialState.COMPLETE else None, state=state)


def _run_alone(objective: Objective, member: Member) -> None:
    """The single-trial path for one member (a task whose model cannot be stacked)."""
    try:
        with signals.trial_body():
            value = objective.train(member.trial, member.settings, member.data, member.seed)
        assert not isinstance(value, list)  # populations run single-objective studies only (see runner)
        member.value = value
        member.state = TrialState.COMPLETE
    except optuna.TrialPruned:
        member.state = TrialState.PRUNED
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        member.state = TrialState.FAIL
        member.attrs.setdefault("fail_reason", member.trial.user_attrs.get("fail_reason", describe_exception(exc)))


def run_round(study: optuna.Study, objective: Objective, size: int, stopper: Callable[[optuna.Study, FrozenTrial], bool],
              fallback: list[bool]) -> bool:
    """Ask ``size`` trials, train them by group, tell them; returns whether the stopper asked
    to stop. ``fallback[0]`` turns true when the task's models cannot be stacked."""
    fail_stale_trials(study)  # as study.optimize does before each trial (a no-op without heartbeats)
    trials = [study.ask() for _ in range(size)]
    for trial in trials:
        objective.started.append(trial_id(trial))
    members: list[Member] = []
    stop = False
    with ExitStack() as beats:
        for trial in trials:
            beats.enter_context(beating(trial))
        try:
            for trial in trials:
                try:
                    settings, data, seed = objective.prepare(trial)
                    members.append(Member(trial, settings, data, seed))
                except Exception as exc:  # e.g. a search space changed with --allow-changes
                    stop |= _record_failure(study, trial, exc, stopper)
            groups: dict[tuple[Any, ...], list[Member]] = {}
            for member in members:
                groups.setdefault(group_key(member.settings), []).append(member)
            for group in groups.values():
                if not fallback[0]:
                    try:
                        with signals.trial_body():
                            _train_group(group, objective, objective.definition.config.max_epochs)
                    except Unsupported as exc:
                        log.info("population: %s", exc)
                        print(f"note: task {objective.definition.task.name} cannot train populations ({exc}); "
                              "training one trial at a time (population 1)", file=sys.stderr)
                        fallback[0] = True
                if fallback[0]:
                    for member in group:
                        if member.state is None:
                            _run_alone(objective, member)
                for member in group:
                    stop |= stopper(study, _tell(study, member))
        except KeyboardInterrupt as exc:
            reason = f"{exc or 'interrupted'} (the process was asked to stop)"
            for member in members:
                if not member.told:
                    member.trial.set_user_attr("fail_reason", reason)
            raise
        finally:
            for trial in trials:
                _fail_running(study, trial)
    return stop


def _record_failure(study: optuna.Study, trial: optuna.Trial, exc: Exception,
                    stopper: Callable[[optuna.Study, FrozenTrial], bool]) -> bool:
    if "fail_reason" not in trial.user_attrs:
        trial.set_user_attr("fail_reason", describe_exception(exc))
    return stopper(study, study.tell(trial, state=TrialState.FAIL))


def _fail_running(study: optuna.Study, trial: optuna.Trial) -> None:
    """Safety net: a member of this round still RUNNING (interrupted) is marked FAIL."""
    sig = signals.received()
    reason = str(signals.Interrupted(sig)) if sig is not None else "the worker stopped before the trial ran"
    try:
        fail_if_running(study, trial_id(trial), reason)
    except Exception as exc:  # never mask the original error
        log.warning("could not mark trial %s failed: %s", trial.number, exc)


def optimize_population(study: optuna.Study, objective: Objective, size: int, target: int,
                        stopper: Callable[[optuna.Study, FrozenTrial], bool], timeout: float | None,
                        n_trials: int | None = None) -> bool:
    """Rounds of up to ``size`` trials until the stopper says stop, the study holds ``target``
    finished trials (when ``n_trials`` is None), ``n_trials`` ran, or ``timeout`` passed (no new
    round starts after it). Returns False when the task cannot be stacked: the caller runs the
    rest one trial at a time."""
    deadline = None if timeout is None else time.monotonic() + timeout
    fallback = [False]
    ran = 0
    while not fallback[0]:
        if deadline is not None and time.monotonic() >= deadline:
            return True
        if n_trials is None:
            left = target - finished_trials(study)
        else:
            left = n_trials - ran
        if left <= 0:
            return True
        count = min(size, left)
        stop = run_round(study, objective, count, stopper, fallback)
        ran += count
        if stop or signals.received():
            return True
    return False
