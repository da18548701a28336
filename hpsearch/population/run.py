"""Run a study K trials at a time: ask Optuna for K trials, group them by architecture, train
each group as one :class:`~hpsearch.population.module.PopulationModule` inside one Lightning
``fit``, and tell every member's result as its own trial.

Members whose models stack (:func:`~hpsearch.population.stacked.signature`: same depth, input
and output size; activation, hidden widths, BatchNorm, dropout and optimizer settings may
differ) and whose data have the same shapes (one data set, or several of the same shape fed per
member) train as one population. Whether the task's models stack at all is decided once, before
the first round.

Every member keeps the guarantees of a single trial: its own seed (``seed + trial number``)
for initialization and batch order, its own intermediate values and pruning decision, the
same user attrs, computed by the same code from the member's own trained network (plus
``population`` — the size of its group — and ``population_index``), a
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

from hpsearch.errors import DatabaseFailure, NonFiniteLossError, describe_exception
from hpsearch.population.module import PopulationFeed, PopulationModule, module_kind, population_of, stack_signature
from hpsearch.population.stacked import Unsupported
from hpsearch.run import signals
from hpsearch.run.objective import Objective
from hpsearch.run.training import FitResult, fit_catching, quiet_lightning
from hpsearch.run.trial_loop import population_note
from hpsearch.store.queries import (
    beating,
    fail_if_running,
    fail_stale_trials,
    finished_trials,
    one_read_of_trials,
    report_all,
    set_trial_user_attrs,
    trial_id,
)
from hpsearch.study.space import TrialSettings, settings_for
from hpsearch.tasks.base import DataSplits

log = logging.getLogger(__name__)

__all__ = ["optimize_population", "group_key", "why_not_stacked"]


@dataclass
class Member:
    """One asked trial of a round and what became of it."""

    trial: optuna.Trial
    settings: TrialSettings
    data: DataSplits
    seed: int
    index: int = -1  # position in its group's population
    single: Any = None  # the model the task built for it (its trained weights are written back)
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


def _data_shapes(data: DataSplits) -> tuple[Any, ...]:
    return tuple((tuple(t.shape), t.dtype) for t in (*data.train, *data.val))


def _stack_key(member: Member) -> tuple[Any, ...]:
    """Members with equal keys train as one population (raises :class:`Unsupported`)."""
    net = member.single.net
    return (module_kind(member.single), stack_signature(net), int(member.settings.options.get("batch_size", 64)),
            _data_shapes(member.data))


def why_not_stacked(objective: Objective) -> str | None:
    """Why the task's models cannot train as populations, from one model built with the task's
    defaults and the study's fixed settings before the first round (``None``: they can, or the
    probe could not tell and each round decides)."""
    task, config = objective.definition.task, objective.definition.config
    try:
        settings = settings_for({}, config, task)
        model = task.build_model(settings.reg, settings.options, task.data_for(objective.data, settings.options))
        module_kind(model)
        stack_signature(model.net)
    except Unsupported as exc:
        return str(exc)
    except Exception as exc:  # e.g. an option only the search space sets: the rounds decide
        log.info("population probe could not build a model: %s", describe_exception(exc))
    return None


class _MemberReports(pl.Callback):
    """After every epoch: prune members whose loss is not finite, report each member's metric
    to its trial and drop the members its pruner stops; stop when none is left."""

    def __init__(self, members: Sequence[Member], objective: Objective, started: float) -> None:
        self.members = list(members)
        self.objective = objective
        self.started = started

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert isinstance(pl_module, PopulationModule)
        metric = self.objective.metric
        values = pl_module.val_metrics.get(metric)
        epoch = pl_module.current_epoch
        stopped: dict[int, tuple[TrialState, str]] = {}
        reported: list[int] = []
        for pos in range(pl_module.size):
            loss = pl_module.train_losses[pos]
            if not math.isfinite(loss):
                stopped[pos] = (TrialState.PRUNED, f"non-finite training loss ({loss}) in epoch {epoch}")
            elif values is not None:
                reported.append(pos)
        trials = {pos: self.members[pl_module.members[pos].index].trial for pos in reported}
        if values is not None:  # every member's value of this epoch in one write, then each one's pruning decision
            report_all([(trials[pos], epoch, values[pos]) for pos in reported])
        if reported:
            with one_read_of_trials(trials[reported[0]].study, list(trials.values())):  # one read for all decisions
                for pos in reported:
                    if trials[pos].should_prune():
                        stopped[pos] = (TrialState.PRUNED, f"pruner stopped it after epoch {epoch}")
        if stopped:
            _finish(pl_module, [self.members[pl_module.members[p].index] for p in stopped], self.objective, self.started,
                    [stopped[p] for p in stopped])
            pl_module.keep([p for p in range(pl_module.size) if p not in stopped])
        if pl_module.size == 0:
            trainer.should_stop = True


def _finish(pop: PopulationModule, members: Sequence[Member], objective: Objective, started: float,
            outcomes: Sequence[tuple[TrialState, str | None]]) -> None:
    """Record the result attrs of ``members`` (still in ``pop``) with the code of a single trial
    (:meth:`Objective.result_attrs`), from each member's own network with its trained weights."""
    metric = objective.metric
    positions = {state.index: pos for pos, state in enumerate(pop.members)}
    for member, (state, reason) in zip(members, outcomes):
        pos = positions[member.index]
        pop.net.write_member(pos)
        member.single.eval()
        metrics = {name: values[pos] for name, values in pop.val_metrics.items()}
        loss = pop.train_losses[pos] if pop.train_losses else None
        error: Exception | None = None
        if state == TrialState.PRUNED:
            error = NonFiniteLossError(reason or "") if reason and reason.startswith("non-finite") else optuna.TrialPruned(reason)
        result = FitResult(model=member.single, metrics=metrics, train_loss=loss, epochs=pop.epochs_validated,
                           seconds=time.perf_counter() - started, device=str(pop.device), error=error, steps=pop.optimizer_steps)
        member.single.to(pop.device)
        member.attrs.update(objective.result_attrs(result, member.data, member.settings))
        value = metrics.get(metric)
        member.state, member.value = state, value
        if reason is not None:
            member.attrs["pruned_reason" if state == TrialState.PRUNED else "fail_reason"] = reason
        if state == TrialState.COMPLETE and value is None:
            member.state = TrialState.FAIL
            member.attrs["fail_reason"] = f"the model logged no {metric!r}; it logged {sorted(pop.val_metrics)}"


def _feed(members: Sequence[Member]) -> PopulationFeed:
    """The group's data: the one split every member trains on, or one split per member (data
    sets of the same shape) stacked on a leading member dimension."""
    first = members[0].data
    if all(m.data is first for m in members):
        return PopulationFeed(first.train, first.val)

    def stacked(part: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.stack([getattr(m.data, part)[0] for m in members]), torch.stack([getattr(m.data, part)[1] for m in members]))

    return PopulationFeed(stacked("train"), stacked("val"), per_member=True)


def _train_group(members: list[Member], objective: Objective, max_epochs: int) -> None:
    """Train one group (members with equal :func:`_stack_key`) as one population; fills in
    every member's outcome."""
    batch_size = int(members[0].settings.options.get("batch_size", 64))
    pop = population_of([m.single for m in members], [m.settings.reg for m in members], [m.seed for m in members], batch_size)
    for i, member in enumerate(members):
        member.index = i
        member.attrs.update({"population": len(members), "population_index": i})
    torch.manual_seed(members[0].seed)  # dropout masks of the group
    started = time.perf_counter()
    quiet_lightning()
    trainer = pl.Trainer(
        accelerator="auto", devices=1, max_epochs=max_epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[_MemberReports(members, objective, started)],
    )
    # A failing custom model fails every member still training; a database failure ends the run.
    error = fit_catching(trainer, pop, _feed(members), reraise=(DatabaseFailure,))
    alive = [members[s.index] for s in pop.members]
    if alive:
        if error is None:
            _finish(pop, alive, objective, started, [(TrialState.COMPLETE, None)] * len(alive))
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
    to stop. A member whose model cannot be stacked trains alone; ``fallback[0]`` turns true (and
    the note is printed) the first time that happens."""
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
            alone: list[Member] = []
            task = objective.definition.task
            for member in members:
                try:
                    torch.manual_seed(member.seed)
                    member.single = task.build_model(member.settings.reg, member.settings.options, member.data)
                    groups.setdefault(_stack_key(member), []).append(member)
                except Unsupported as exc:
                    if not fallback[0]:
                        print(population_note(task.name, str(exc)), file=sys.stderr)
                        fallback[0] = True
                    alone.append(member)
                except Exception as exc:  # a builder that fails: the member fails as it would alone
                    alone.append(member)
                    log.info("population: building trial %d's model failed: %s", member.trial.number, exc)
            for group in groups.values():
                # members of one activation side by side (each activation runs on one slice), and
                # within it of one BatchNorm placement (each stacked BatchNorm runs on one slice)
                group.sort(key=lambda m: (m.settings.reg.activation, m.settings.reg.batchnorm))
                with signals.trial_body():
                    _train_group(group, objective, objective.definition.config.max_epochs)
                for member in group:
                    stop |= stopper(study, _tell(study, member))
            for member in alone:
                _run_alone(objective, member)
                stop |= stopper(study, _tell(study, member))
        except KeyboardInterrupt as exc:
            reason = f"{exc or 'interrupted'} (the process was asked to stop)"
            for member in members:
                if not member.told:
                    member.trial.set_user_attr("fail_reason", reason)
            raise
        finally:
            told = {m.trial.number for m in members if m.told}
            for trial in trials:
                if trial.number not in told:  # a told trial is finished: nothing to check
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
    round starts after it). Returns False when the task cannot be stacked (decided before the
    first round, the note printed once): the caller runs the trials one at a time."""
    deadline = None if timeout is None else time.monotonic() + timeout
    why = why_not_stacked(objective)
    if why is not None:
        print(population_note(objective.definition.task.name, why), file=sys.stderr)
        return False
    fallback = [False]
    ran = 0
    while True:
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
