"""The validation curve of a fit (the metric after every epoch) and what it says about speed
and convergence."""

from __future__ import annotations

from typing import Any, Sequence

import lightning.pytorch as pl


class ValidationCurve(pl.Callback):
    """Records ``pl_module.val_metrics[metric]`` after every epoch: a float per epoch for one
    model, a list of per-member floats per epoch for a population."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.values: list[Any] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = getattr(pl_module, "val_metrics", {}).get(self.metric)
        if value is not None:
            self.values.append(value)

    def member(self, position: int) -> list[float]:
        """One population member's curve."""
        return [float(v[position]) for v in self.values]


def epochs_to_fraction(curve: Sequence[float], fraction: float = 0.95) -> int | None:
    """The first epoch (1-based) at which a maximized metric reaches ``fraction`` of its final
    value; ``None`` for an empty curve or a final value <= 0."""
    if not curve or curve[-1] <= 0:
        return None
    target = fraction * curve[-1]
    return next(i for i, v in enumerate(curve, start=1) if v >= target)


def late_gain(curve: Sequence[float]) -> float | None:
    """Mean of the last 10% of epochs minus the mean of the 10% before them (at least 2
    epochs each): how much the metric still rose at the end of training."""
    window = max(2, len(curve) // 10)
    if len(curve) < 2 * window:
        return None
    last, before = curve[-window:], curve[-2 * window:-window]
    return sum(last) / window - sum(before) / window
