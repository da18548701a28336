"""A small two-conv, two-FC network for square single-channel images (8×8 digits)."""

from __future__ import annotations

import torch
from torch import nn

from hpsearch.regularization import Regularization, conv_block, dense_block, input_layer


class SmallCNN(nn.Module):
    """input_layer → conv1 → pool → conv2 → pool → fc1 (dense block) → fc2 (logits).

    The layout of the classic TensorFlow MNIST example, scaled to ``side``×``side`` inputs that
    arrive flattened (the standardization, if any, is per pixel).
    """

    def __init__(
        self,
        side: int,
        n_classes: int,
        channels: int,
        hidden_units: int,
        reg: Regularization,
        train_x: torch.Tensor,
    ) -> None:
        super().__init__()
        self.side = side
        self.input = input_layer(reg, train_x)
        self.conv1 = conv_block(1, channels, reg)
        self.conv2 = conv_block(channels, 2 * channels, reg)
        reduced = side // 4
        self.fc1 = dense_block(2 * channels * reduced * reduced, hidden_units, reg)
        self.fc2 = nn.Linear(hidden_units, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input(x).view(-1, 1, self.side, self.side)
        x = self.conv2(self.conv1(x)).flatten(1)
        return self.fc2(self.fc1(x))
