"""EpochPruning: optuna-integration's pruning callback, fed by the module's own validation;
EpochCurve: the same per-epoch values kept as a user attr where Optuna takes no reports."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import optuna
from optuna_integration import PyTorchLightningPruningCallback

from hpsearch.run.curves import ValidationCurve
from hpsearch.study.meta import CURVE_ATTR


class EpochPruning(PyTorchLightningPruningCallback):
    """Report the monitored metric to the trial after every training epoch and raise
    :class:`optuna.TrialPruned` when the pruner says so.

    The parent class reads ``trainer.callback_metrics`` when Lightning's validation loop ends.
    :class:`~hpsearch.models.base.RegularizedModule` validates inside its training epoch
    instead (no validation loop, no ``self.log``), so this callback reads
    ``pl_module.val_metrics`` at ``on_train_epoch_end``. Step numbering (the epoch), the
    warning for a missing metric and the pruning message are the parent's. Training runs in
    one process on one device (:func:`hpsearch.run.training.fit` sets ``devices=1``).
    With ``prune=False`` (a baseline trial) it only reports: the learning curve is kept, the
    trial always runs every epoch.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, prune: bool = True) -> None:
        super().__init__(trial, monitor)
        self.prune = prune

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Nothing to do: there is no Lightning validation loop (see the class docstring)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        score = getattr(pl_module, "val_metrics", {}).get(self.monitor)
        if score is None:
            warnings.warn(
                f"The metric '{self.monitor}' is not in the evaluation logs for pruning. "
                "Please make sure you set the correct metric name.",
                stacklevel=2,
            )
            return
        epoch = pl_module.current_epoch
        self._trial.report(score, step=epoch)
        if self.prune and self._trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at epoch {epoch}.")


class EpochCurve(ValidationCurve):
    """A :class:`~hpsearch.run.curves.ValidationCurve` that also keeps the curve in the trial's
    ``val_curve`` user attr (written after each epoch, so a trial that fails keeps its curve so
    far). For studies with several objectives, where Optuna refuses ``trial.report``: the
    report's learning curves read it."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        super().__init__(monitor)
        self._trial = trial

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        before = len(self.values)
        super().on_train_epoch_end(trainer, pl_module)
        if len(self.values) > before:
            self._trial.set_user_attr(CURVE_ATTR, [float(v) for v in self.values])
