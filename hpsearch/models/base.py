"""RegularizedModule: a LightningModule whose optimizer and loss follow a Regularization."""

from __future__ import annotations

from typing import Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import nn

from hpsearch.data import Epoch, Inputs
from hpsearch.regularization import Regularization, l2_penalty, make_optimizer

#: Checkpoint keys of the module's own state (see :meth:`RegularizedModule.on_save_checkpoint`).
EPOCHS_VALIDATED_KEY = "hpsearch_epochs_validated"
OPTIMIZER_STEPS_KEY = "hpsearch_optimizer_steps"
VAL_METRICS_KEY = "hpsearch_val_metrics"


class RegularizedModule(pl.LightningModule):
    """Base module: ``net`` trained on ``loss_fn`` plus the ``l2_mode: loss`` penalty, with
    the optimizer built from parameter groups.

    Subclasses implement :meth:`evaluate`, returning metric tensors by short name (``acc``,
    ``loss``, ``mse``...). At the end of every training epoch the module scores the whole
    validation split and keeps the results as floats named ``val_<name>`` in
    :attr:`val_metrics` (read by :class:`hpsearch.run.pruning.EpochPruning` and by
    :func:`hpsearch.run.training.fit`); the mean training loss of the epoch (data term, without the
    penalty) is kept by :meth:`epoch_train_loss`. Nothing goes through ``self.log``.

    Lean epoch loop: the Trainer hands :meth:`training_step` a whole epoch at once (an
    :class:`~hpsearch.data.EpochFeed` yields one :class:`~hpsearch.data.Epoch`: the training
    mini-batches and the validation split), and the step runs the mini-batches with manual
    optimization, then validates. Lightning's per-step machinery (closures, hook dispatch,
    batch transfer) runs once per epoch instead of once per batch, its validation loop and
    result collection not at all; the data moves to the module's
    device once. Override :meth:`batch_loss` to change what one mini-batch optimizes.
    """

    def __init__(self, net: nn.Module, reg: Regularization, loss_fn: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.reg = reg
        self.loss_fn = loss_fn
        self._epoch_losses: list[torch.Tensor] = []
        self.epochs_validated = 0
        self.optimizer_steps = 0  # optimizer steps taken (for decay_shrinkage)
        self.val_metrics: dict[str, float] = {}
        self.automatic_optimization = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def penalty(self) -> torch.Tensor:
        """The L2 term added to the training loss (zero unless ``l2_mode: loss``)."""
        return l2_penalty(self.net, self.reg)

    def batch_loss(self, batch: Any) -> torch.Tensor:
        """The loss one mini-batch optimizes: data loss plus the L2 penalty when
        ``l2_mode: loss``. Records the data loss for the epoch's ``train_loss``."""
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self._epoch_losses.append(loss.detach())  # a list append: no tensor op per step
        return loss + self.penalty() if self.reg.l2_mode == "loss" else loss

    def training_step(self, batch: Epoch, batch_idx: int) -> None:
        """One whole epoch: every mini-batch of ``batch.train``, one optimizer step each, then
        :meth:`validate` on ``batch.val``."""
        optimizer = cast(torch.optim.Optimizer, self.optimizers(use_pl_optimizer=False))  # one optimizer
        backward = self._backward_fn()
        epoch = batch.to(self.device)
        for minibatch in epoch.train:
            optimizer.zero_grad(set_to_none=True)
            backward(self.batch_loss(minibatch))
            optimizer.step()
            self.optimizer_steps += 1
        self.validate(*epoch.val)

    def score(self, x: Inputs, y: torch.Tensor) -> dict[str, float]:
        """:meth:`evaluate` on one whole split in eval mode, without gradients, as floats by
        short name; the module's train/eval mode is restored afterwards."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            # x is a tuple of tensors for two-input models, whose evaluate takes one
            metrics = {name: float(value) for name, value in self.evaluate(x, y).items()}  # type: ignore[arg-type]
        self.train(was_training)
        return metrics

    def validate(self, x: Inputs, y: torch.Tensor) -> dict[str, float]:
        """:meth:`score` the validation split: the metrics, named ``val_<name>``, become
        :attr:`val_metrics` and count one validated epoch."""
        self.val_metrics = {f"val_{name}": value for name, value in self.score(x, y).items()}
        self.epochs_validated += 1
        return self.val_metrics

    def _backward_fn(self) -> Any:
        """``Tensor.backward`` when the Trainer runs full precision on one device (nothing for
        Lightning to scale or synchronize), else Lightning's ``manual_backward``."""
        trainer = self.trainer
        plain = type(trainer.precision_plugin) is Precision and isinstance(trainer.strategy, SingleDeviceStrategy)
        return torch.Tensor.backward if plain else self.manual_backward

    def on_train_epoch_start(self) -> None:
        self._epoch_losses = []

    def epoch_train_loss(self) -> float | None:
        """Mean data loss of the last training epoch (``None`` before any step)."""
        return float(torch.stack(self._epoch_losses).mean()) if self._epoch_losses else None

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Metrics on one whole split, by short name. Subclasses define them."""
        raise NotImplementedError

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.net, self.reg)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the validated epochs and the last validation metrics in the checkpoint."""
        checkpoint[EPOCHS_VALIDATED_KEY] = self.epochs_validated
        checkpoint[OPTIMIZER_STEPS_KEY] = self.optimizer_steps
        checkpoint[VAL_METRICS_KEY] = dict(self.val_metrics)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore them, so a run resumed after its last epoch still reports its metrics."""
        self.epochs_validated = int(checkpoint.get(EPOCHS_VALIDATED_KEY, 0))
        self.optimizer_steps = int(checkpoint.get(OPTIMIZER_STEPS_KEY, 0))
        self.val_metrics = dict(checkpoint.get(VAL_METRICS_KEY, {}))


class ClassifierModule(RegularizedModule):
    """Cross-entropy classifier; metrics ``acc`` and ``loss``."""

    def __init__(self, net: nn.Module, reg: Regularization) -> None:
        super().__init__(net, reg, nn.CrossEntropyLoss())

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self(x)
        return {
            "acc": (logits.argmax(dim=1) == y).float().mean(),
            "loss": self.loss_fn(logits, y),
        }


class RegressorModule(RegularizedModule):
    """Mean-squared-error regressor; metric ``mse``."""

    def __init__(self, net: nn.Module, reg: Regularization) -> None:
        super().__init__(net, reg, nn.MSELoss())

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mse": self.loss_fn(self(x), y)}
