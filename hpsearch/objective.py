"""One trial: sample settings, fit with pruning, record user attrs, map failures to states.

This is the only module that knows both the Optuna trial and the Lightning Trainer.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import optuna

from hpsearch import signals
from hpsearch.checkpoints import CheckpointDir, EpochCheckpoint, root_trial_number
from hpsearch.config import StudyConfig
from hpsearch.errors import NonFiniteLossError
from hpsearch.pruning import EpochPruning
from hpsearch.space import settings_for, suggest
from hpsearch.tasks.base import DataSplits, Task
from hpsearch.training import describe_exception, evaluate, fit, generalization_gap

# Which process ran a trial (``host:pid``): stored with every trial, to trace a trial to its
# worker (node logs, a worker killed mid-trial).
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def set_user_attrs(trial: optuna.Trial, attrs: dict[str, object]) -> None:
    """``trial.set_user_attr`` for each item, in one transaction when the storage is hpsearch's
    (see :func:`hpsearch.storage.open_storage`)."""
    backend = getattr(trial.storage, "_backend", trial.storage)
    bulk = getattr(backend, "set_trial_user_attrs", None)
    if bulk is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
    else:
        bulk(trial._trial_id, attrs)


@dataclass(frozen=True)
class Objective:
    """Callable Optuna objective for a validated study config.

    The trial's seed is ``config.seed + trial.number``: it seeds model initialization and
    batch order, so one worker reproduces its results for a given study seed. A re-run of a
    stale trial (its worker died) keeps the original trial's seed and, with ``checkpoints``,
    resumes from the original's last epoch. SIGINT/SIGTERM inside a trial fail it with the
    reason stored in ``fail_reason``. ``started`` collects the ids of trials this process ran.
    """

    config: StudyConfig
    task: Task
    data: DataSplits
    metric: str
    direction: str
    checkpoints: CheckpointDir | None = None
    started: list[int] = field(default_factory=list, compare=False)

    def __call__(self, trial: optuna.Trial) -> float:
        self.started.append(trial._trial_id)
        try:
            with signals.trial_body():
                return self._run(trial)
        except KeyboardInterrupt as exc:  # signals.Interrupted, or Ctrl-C without hpsearch's handler
            trial.set_user_attr("fail_reason", f"{exc or 'interrupted'} (the process was asked to stop)")
            raise

    def _run(self, trial: optuna.Trial) -> float:
        root = root_trial_number(trial)
        seed = self.config.seed + root
        settings = settings_for(suggest(trial, self.config, self.task), self.config, self.task)
        set_user_attrs(trial, {"seed": seed, "worker": WORKER_ID})
        callbacks: list = [EpochPruning(trial, monitor=self.metric)]
        checkpoint = EpochCheckpoint(self.checkpoints.path_for(root)) if self.checkpoints else None
        if checkpoint is not None:
            callbacks.append(checkpoint)
        data = self.task.data_for(self.data, settings.options)
        try:
            result = fit(
                self.task,
                settings,
                data,
                max_epochs=self.config.max_epochs,
                seed=seed,
                callbacks=callbacks,
                ckpt_path=str(checkpoint.path) if checkpoint is not None and checkpoint.path.exists() else None,
            )
        finally:
            if checkpoint is not None:
                checkpoint.remove()
        if checkpoint is not None and checkpoint.resumed_from_epoch is not None:
            trial.set_user_attr("resumed_from_epoch", checkpoint.resumed_from_epoch)
        value = result.metrics.get(self.metric)
        attrs: dict[str, object] = {
            "epochs": result.epochs,
            "wall_seconds": round(result.seconds, 3),
            "device": result.device,
            "final_train_loss": result.train_loss,
            self.metric: value,
        }
        stopped_early = isinstance(result.error, (optuna.TrialPruned, NonFiniteLossError))
        if value is not None and (result.error is None or stopped_early):
            train_value = evaluate(result.model, data.train).get(self.metric.removeprefix("val_"))
            if train_value is not None:
                attrs["train_" + self.metric.removeprefix("val_")] = train_value
                attrs["train_val_gap"] = generalization_gap(self.metric, self.direction, train_value, value)
        set_user_attrs(trial, attrs)

        error = result.error
        if isinstance(error, optuna.TrialPruned):
            trial.set_user_attr("pruned_reason", f"pruner stopped it after epoch {result.epochs - 1}")
            raise error
        if isinstance(error, NonFiniteLossError):
            trial.set_user_attr("pruned_reason", str(error))
            raise optuna.TrialPruned(str(error))
        if error is not None:
            trial.set_user_attr("fail_reason", describe_exception(error))
            raise error
        if value is None:
            reason = f"the model logged no {self.metric!r}; it logged {sorted(result.metrics)}"
            trial.set_user_attr("fail_reason", reason)
            raise RuntimeError(reason)
        return value
