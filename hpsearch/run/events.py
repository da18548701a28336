"""Progress inside a trial: an event after every training epoch, for live displays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import lightning.pytorch as pl


@dataclass(frozen=True)
class EpochEvent:
    """Trial ``trial`` has finished ``epoch`` of ``max_epochs`` epochs (``epoch`` 0: it has
    just started); ``value`` is its metric after that epoch."""

    trial: int
    epoch: int
    max_epochs: int
    value: float | None = None


class EpochReporter(pl.Callback):
    """Calls ``on_epoch`` with an :class:`EpochEvent` after every training epoch (before the
    pruning callback decides, so the last epoch of a pruned trial is reported too)."""

    def __init__(self, trial: int, max_epochs: int, metric: str, on_epoch: Callable[[EpochEvent], None]) -> None:
        self.trial = trial
        self.max_epochs = max_epochs
        self.metric = metric
        self.on_epoch = on_epoch

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.on_epoch(EpochEvent(self.trial, pl_module.current_epoch, self.max_epochs))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = getattr(pl_module, "val_metrics", {}).get(self.metric)
        self.on_epoch(EpochEvent(self.trial, pl_module.current_epoch + 1, self.max_epochs, value))
