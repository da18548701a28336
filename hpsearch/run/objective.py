"""One trial: sample settings, fit with pruning, record user attrs, map failures to states.

This is the only module that knows both the Optuna trial and the Lightning Trainer.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna

from hpsearch.errors import DatabaseFailure, HPSearchError, NonFiniteLossError, describe_exception
from hpsearch.run import signals
from hpsearch.run.checkpoints import CheckpointDir, EpochCheckpoint, root_trial_number
from hpsearch.run.events import EpochEvent, EpochReporter
from hpsearch.run.kept_models import ModelKeeper
from hpsearch.run.pruning import EpochCurve, EpochPruning
from hpsearch.run.training import FitResult, evaluate, fit
from hpsearch.store.queries import set_trial_user_attrs, trial_id
from hpsearch.study.definition import StudyDefinition
from hpsearch.study.meta import metric_key, train_metric
from hpsearch.study.space import TrialSettings, settings_for, suggest
from hpsearch.tasks.base import DataSplits

# Which process ran a trial (``host:pid``): stored with every trial, to trace a trial to its
# worker (node logs, a worker killed mid-trial).
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Objective:
    """Callable Optuna objective for a study definition.

    The trial's seed is ``config.seed + trial.number``: it seeds model initialization and
    batch order, so one worker reproduces its results for a given study seed. A re-run of a
    stale trial (its worker died) keeps the original trial's seed and, with ``checkpoints``,
    resumes from the original's last epoch. SIGINT/SIGTERM inside a trial fail it with the
    reason stored in ``fail_reason``. ``started`` collects the ids of trials this process ran;
    ``on_epoch`` (optional) hears an :class:`EpochEvent` when a trial starts and after each epoch.
    """

    definition: StudyDefinition
    data: DataSplits
    checkpoints: CheckpointDir | None = None
    started: list[int] = field(default_factory=list, compare=False)
    fatal: list[HPSearchError] = field(default_factory=list, compare=False)
    on_epoch: Callable[[EpochEvent], None] | None = field(default=None, compare=False)
    keeper: ModelKeeper | None = field(default=None, compare=False)

    @property
    def metric(self) -> str:
        return self.definition.metric

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        self.started.append(trial_id(trial))
        try:
            with signals.trial_body():
                return self._run(trial)
        except KeyboardInterrupt as exc:  # signals.Interrupted, or Ctrl-C without hpsearch's handler
            trial.set_user_attr("fail_reason", f"{exc or 'interrupted'} (the process was asked to stop)")
            raise
        except DatabaseFailure as exc:  # the run ends with it (see stopper.StopAtTarget)
            self.fatal.append(exc)
            raise
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # e.g. suggest() refusing a search space changed with --allow-changes
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", describe_exception(exc))
            raise

    def _run(self, trial: optuna.Trial) -> float | list[float]:
        settings, data, seed = self.prepare(trial)
        return self.train(trial, settings, data, seed)

    def prepare(self, trial: optuna.Trial) -> tuple[TrialSettings, DataSplits, int]:
        """Sample the trial's settings and record its seed and worker; returns the settings,
        the splits it trains on and its seed."""
        config, task = self.definition.config, self.definition.task
        seed = config.seed + root_trial_number(trial)
        settings = settings_for(suggest(trial, config, task), config, task)
        set_trial_user_attrs(trial, {"seed": seed, "worker": WORKER_ID})
        return settings, task.data_for(self.data, settings.options), seed

    def train(self, trial: optuna.Trial, settings: TrialSettings, data: DataSplits, seed: int) -> float | list[float]:
        """Fit the trial's model, record its user attrs; its value, or the exception that
        makes it PRUNED or FAIL."""
        root = root_trial_number(trial)
        checkpoint = EpochCheckpoint(self.checkpoints.path_for(root)) if self.checkpoints else None
        result = self._fit(trial, settings, data, seed, checkpoint)
        if checkpoint is not None and checkpoint.resumed_from_epoch is not None:
            trial.set_user_attr("resumed_from_epoch", checkpoint.resumed_from_epoch)
        attrs = self.result_attrs(result, data, settings)
        set_trial_user_attrs(trial, attrs)
        constraints = self.definition.constraint_values(attrs)
        for name, violation in zip(self.definition.config.constraints, constraints):
            trial.set_constraint(name, violation)  # read by the samplers (tpe, gp) and by best/front
        value = self._outcome(trial, result)
        values = self._objective_values(trial, attrs) if self.definition.multi else [value]
        if self.keeper is not None:
            self.keeper.keep_if_best(trial, self.definition, settings, result.model, values, all(c <= 0 for c in constraints), seed)
        return values if self.definition.multi else value

    def _objective_values(self, trial: optuna.Trial, attrs: dict[str, object]) -> list[float]:
        """The values of every objective, read off the trial's stored numbers."""
        values = []
        for metric in self.definition.metrics:
            value = attrs.get(metric)
            if not isinstance(value, (int, float)):
                reason = f"the trial stored no number {metric!r} for objective {metric}"
                trial.set_user_attr("fail_reason", reason)
                raise RuntimeError(reason)
            values.append(float(value))
        return values

    def _fit(
        self, trial: optuna.Trial, settings: TrialSettings, data: DataSplits, seed: int, checkpoint: EpochCheckpoint | None
    ) -> FitResult:
        """Train the trial's model with pruning (and per-epoch checkpoints when asked)."""
        # A baseline runs every epoch (reported, never pruned); Optuna cannot prune (nor take
        # reports of) trials with several objectives: their curve is kept as a user attr.
        baseline = "baseline" in trial.user_attrs
        callbacks: list[Any] = ([EpochCurve(trial, monitor=self.metric)] if self.definition.multi
                                else [EpochPruning(trial, monitor=self.metric, prune=not baseline)])
        if self.on_epoch is not None:
            max_epochs = self.definition.config.max_epochs
            callbacks.insert(0, EpochReporter(trial.number, max_epochs, self.metric, self.on_epoch))
        if checkpoint is not None:
            callbacks.append(checkpoint)
        try:
            return fit(
                self.definition.task,
                settings,
                data,
                max_epochs=self.definition.config.max_epochs,
                seed=seed,
                callbacks=callbacks,
                ckpt_path=str(checkpoint.path) if checkpoint is not None and checkpoint.path.exists() else None,
            )
        finally:
            if checkpoint is not None:
                checkpoint.remove()

    def result_attrs(self, result: FitResult, data: DataSplits, settings: TrialSettings) -> dict[str, object]:
        """User attrs of a finished fit: epochs, optimizer steps, the total decoupled decay
        ``decay_shrinkage`` = lr·λ·steps (decoupled mode only, the largest over the optimizer groups), time, device, losses, the metric
        and, when the fit produced a metric, its training-split value and the train–validation gap."""
        from hpsearch.regularization import decay_shrinkage

        value = result.metrics.get(self.metric)
        attrs: dict[str, object] = {
            "epochs": result.epochs,
            "optimizer_steps": result.steps,
            "wall_seconds": round(result.seconds, 3),
            "device": result.device,
            "final_train_loss": result.train_loss,
            "param_count": sum(int(p.numel()) for p in result.model.parameters()),
            **{k: v for k, v in result.metrics.items() if k in self.definition.task.metrics},
            self.metric: value,
        }
        optimizer = result.model.configure_optimizers()
        if isinstance(optimizer, dict):  # a Lightning task's module with its own scheduler
            optimizer = optimizer["optimizer"]
        groups = optimizer.param_groups  # each group's own lr and λ
        shrinkage = decay_shrinkage(settings.reg, result.steps, groups)
        if shrinkage is not None:
            attrs["decay_shrinkage"] = shrinkage
        from hpsearch.models.norms import weight_norms_before_batchnorm

        if settings.reg.weight_decay > 0:  # how many parameters the L2 scope covers
            from hpsearch.regularization import scoped_parameters

            attrs["l2_param_count"] = sum(int(p.numel()) for p in scoped_parameters(result.model, settings.reg.l2_scope))
        norms = weight_norms_before_batchnorm(result.model)
        if norms:  # what weight decay did to the layers a BatchNorm makes scale-invariant
            attrs["bn_weight_norms"] = norms
        stopped_early = isinstance(result.error, (optuna.TrialPruned, NonFiniteLossError))
        if value is not None and (result.error is None or stopped_early):
            train_value = evaluate(result.model, data.train).get(metric_key(self.metric))
            if train_value is not None:
                attrs[train_metric(self.metric)] = train_value
                attrs["train_val_gap"] = self.definition.meta.gap(train_value, value)
        return attrs

    def _outcome(self, trial: optuna.Trial, result: FitResult) -> float:
        """The trial's value, or the exception that makes it PRUNED or FAIL (reason stored)."""
        error = result.error
        if isinstance(error, optuna.TrialPruned):
            trial.set_user_attr("pruned_reason", f"pruner stopped it after epoch {result.epochs - 1}")
            raise error
        if isinstance(error, NonFiniteLossError):
            trial.set_user_attr("pruned_reason", str(error))
            raise optuna.TrialPruned(str(error))
        if error is not None:
            trial.set_user_attr("fail_reason", describe_exception(error))
            from hpsearch.lightning_task.module import MetricNotLoggedError

            if isinstance(error, MetricNotLoggedError):  # every trial would fail alike: the run ends with it
                self.fatal.append(error)
            raise error
        value = result.metrics.get(self.metric)
        if value is None:
            reason = f"the model logged no {self.metric!r}; it logged {sorted(result.metrics)}"
            trial.set_user_attr("fail_reason", reason)
            raise RuntimeError(reason)
        return value
