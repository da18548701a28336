"""Plain LightningModules (no hpsearch imports): the digits MLP of the built-in ``digits-mlp``
written by hand, and modules with faults for the error-path tests."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn


class DigitsMLP(pl.LightningModule):
    """Linear -> ReLU -> Dropout per hidden layer, then a Linear output (as ``digits-mlp``)."""

    def __init__(self, hidden_units: int = 128, hidden_layers: int = 2, dropout: float = 0.5, lr: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 64
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden_units), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_units
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class NoDropoutConv(pl.LightningModule):
    """Only a conv layer: no nn.Linear, no dropout."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.view(-1, 1, 8, 8)).mean(dim=(2, 3))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y % self.conv.out_channels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y % self.conv.out_channels))


class Explodes(DigitsMLP):
    """Raises inside training_step when ``hidden_units`` is 13."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.net[0].out_features == 13:
            raise RuntimeError("boom in training_step\nsecond line")
        return super().training_step(batch, batch_idx)


class WithScheduler(DigitsMLP):
    """Keeps its own learning-rate schedule through ``configure_scheduler``."""

    def configure_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)


class ActMLP(DigitsMLP):
    """Takes ``activation`` (a regularization-named setting) and keeps it."""

    def __init__(self, hidden_units: int = 16, hidden_layers: int = 1, dropout: float = 0.5, activation: str = "relu") -> None:
        super().__init__(hidden_units, hidden_layers, dropout)
        self.activation = activation


NOT_A_CLASS = 3


class NotAModule:
    """Not a LightningModule."""
