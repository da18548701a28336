"""What hpsearch adds to a user's LightningModule: the optimizer, the L2 term and dropout by
parameter role, and the bookkeeping a trial reads (logged metrics, epoch training loss).

:func:`tuned_class` derives a subclass of the user's class that overrides only hpsearch's hooks
(the user's ``training_step``, ``validation_step``, ``forward`` and logging run unchanged):

- ``configure_optimizers``: :func:`hpsearch.regularization.make_optimizer` over the module's
  parameters (``optimizer``, ``learning_rate``, ``momentum``, ``weight_decay`` with ``l2_mode:
  decoupled`` over ``l2_scope``), exactly as for a built-in model. A module keeps its own
  learning-rate schedule by defining ``configure_scheduler(self, optimizer)``, returning a
  scheduler or a Lightning ``lr_scheduler`` dict (or ``None``); its own
  ``configure_optimizers`` is not used.
- ``l2_mode: loss``: before every optimizer step (after AMP unscaling, before gradient
  clipping) λ·w is added to the gradient of every in-scope parameter, the exact gradient of
  λ/2·Σw² over the scope; the loss the module logs stays its own. A step in which no in-scope
  parameter has a gradient (a batch the module skipped) gets no L2 term either.
- ``keep_prob`` (in a trial whose settings set it): ``p = 1 - keep_prob`` on every
  ``nn.Dropout`` / ``Dropout1d/2d/3d`` / ``AlphaDropout`` layer the module holds after
  ``__init__``. Not reached: the ``dropout`` argument of ``nn.LSTM`` / ``nn.GRU`` /
  ``nn.MultiheadAttention`` / ``nn.Transformer*``, ``F.dropout`` calls, and layers created in
  ``configure_model()``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from hpsearch.errors import ConfigError, NonFiniteLossError
from hpsearch.models.base import EPOCHS_VALIDATED_KEY, OPTIMIZER_STEPS_KEY, VAL_METRICS_KEY
from hpsearch.regularization import Regularization, make_optimizer, scoped_parameters

#: The method a user's module may define to keep its own learning-rate schedule.
SCHEDULER_HOOK = "configure_scheduler"


class MetricNotLoggedError(ConfigError):
    """The module never logged the study's metric: every trial would fail the same way, so the
    run ends (exit 2) after the first validation."""


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """Every dropout layer of ``model`` (``nn.Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout``...)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def set_keep_prob(model: nn.Module, keep_prob: float) -> int:
    """Set ``p = 1 - keep_prob`` on every dropout layer; the number of layers changed."""
    layers = dropout_layers(model)
    for layer in layers:
        layer.p = 1.0 - keep_prob  # type: ignore[assignment]
    return len(layers)


class _Tuned:
    """Mixin placed before the user's class (see :func:`tuned_class`)."""

    hpsearch_reg: Regularization

    def hpsearch_setup(self, reg: Regularization, named: frozenset[str] | None = None) -> None:
        """Attach the trial's regularization and the names its settings give (called once
        after ``__init__``; the evaluation DataModule is built from them)."""
        self.hpsearch_reg = reg
        self.hpsearch_named = named
        self.val_metrics: dict[str, float] = {}
        self.epochs_validated = 0
        self.optimizer_steps = 0
        self.hpsearch_device = "cpu"
        self._hp_losses: list[torch.Tensor] = []
        self._hp_last_loss: float | None = None
        self._hp_l2: list[nn.Parameter] | None = None

    def configure_optimizers(self) -> Any:
        optimizer = make_optimizer(self, self.hpsearch_reg)  # type: ignore[arg-type]
        hook = getattr(self, SCHEDULER_HOOK, None)
        scheduler = hook(optimizer) if callable(hook) else None
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        super().on_before_optimizer_step(optimizer)  # type: ignore[misc]
        reg = self.hpsearch_reg
        if reg.l2_mode != "loss" or reg.weight_decay == 0.0:
            return
        if self._hp_l2 is None:
            self._hp_l2 = scoped_parameters(self, reg.l2_scope)  # type: ignore[arg-type]
        if all(p.grad is None for p in self._hp_l2):
            return  # a skipped batch (training_step returned None): no decay-only step
        with torch.no_grad():
            for p in self._hp_l2:  # d/dw of λ/2·Σw² is λ·w
                if p.grad is None:
                    p.grad = reg.weight_decay * p.detach().clone()
                else:
                    p.grad.add_(p.detach(), alpha=reg.weight_decay)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()  # type: ignore[misc]
        self._hp_losses = []

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)  # type: ignore[misc]
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            self._hp_losses.append(loss.detach())  # a list append: no device sync per step

    def epoch_train_loss(self) -> float | None:
        """Mean training loss (as ``training_step`` returned it) of the last epoch."""
        if self._hp_losses:
            self._hp_last_loss = float(torch.stack([x.float() for x in self._hp_losses]).mean())
            self._hp_losses = []
        return self._hp_last_loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)  # type: ignore[misc]
        checkpoint[EPOCHS_VALIDATED_KEY] = self.epochs_validated
        checkpoint[OPTIMIZER_STEPS_KEY] = self.optimizer_steps
        checkpoint[VAL_METRICS_KEY] = dict(self.val_metrics)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)  # type: ignore[misc]
        self.epochs_validated = int(checkpoint.get(EPOCHS_VALIDATED_KEY, 0))
        self.optimizer_steps = int(checkpoint.get(OPTIMIZER_STEPS_KEY, 0))
        self.val_metrics = dict(checkpoint.get(VAL_METRICS_KEY, {}))


@functools.lru_cache(maxsize=None)
def tuned_class(cls: type) -> type:
    """``cls`` with hpsearch's hooks (see the module docstring); same name, same module."""
    return type(cls.__name__, (_Tuned, cls), {"__module__": cls.__module__, "__qualname__": cls.__qualname__})


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            out[name] = float(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


class LoggedMetrics(pl.Callback):
    """First callback of a trial: after every training epoch (its validation included) copy
    what the module logged (``trainer.callback_metrics``) to ``module.val_metrics``, where the
    pruning and progress callbacks read it. A metric the module never logs ends the run
    (:class:`MetricNotLoggedError`); a non-finite training loss stops the trial
    (:class:`NonFiniteLossError`, pruned like a built-in model's)."""

    def __init__(self, metric: str, where: str) -> None:
        self.metric = metric
        self.where = where

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.hpsearch_device = str(pl_module.device)  # type: ignore[assignment]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logged = _scalars(dict(trainer.callback_metrics))
        module: Any = pl_module
        module.optimizer_steps = int(trainer.global_step)
        if self.metric not in logged:
            names = ", ".join(sorted(logged)) or "nothing"
            raise MetricNotLoggedError(f"{self.where}: the module never logged {self.metric!r} (self.log) "
                                       f"after a validation; it logged: {names}")
        module.val_metrics = logged
        module.epochs_validated += 1
        loss = module.epoch_train_loss()
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteLossError(f"non-finite training loss ({loss}) in epoch {trainer.current_epoch}")
