"""A two-input digits model: CNN image features and a one-hot side input joined by a concat.

Where BatchNorm sits around the concat is the model's ``reg.batchnorm``:

- ``none``: no BatchNorm anywhere;
- ``fc_before_concat``: BatchNorm1d on the image branch's FC layer (before its activation),
  i.e. before the concat, so the one-hot features are never normalized;
- ``after_concat``: one BatchNorm1d over the concatenated vector, one-hot columns included.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from hpsearch.params import TWO_INPUT_BATCHNORM
from hpsearch.regularization import Regularization, activation, conv_block, dropout, input_layer


class TwoInputNet(nn.Module):
    """image → conv1 → conv2 → fc_image [→ BN] → act ─┐
    one-hot ───────────────────────────────────────────┴→ concat [→ BN] → fc_joint → act → out."""

    def __init__(
        self,
        side: int,
        side_features: int,
        n_classes: int,
        channels: int,
        hidden_units: int,
        reg: Regularization,
        train_images: torch.Tensor,
    ) -> None:
        super().__init__()
        if reg.batchnorm not in TWO_INPUT_BATCHNORM:
            raise ValueError(f"batchnorm: got {reg.batchnorm!r}; valid for the two-input model: {', '.join(TWO_INPUT_BATCHNORM)}")
        self.side = side
        self.placement = reg.batchnorm
        plain = replace(reg, batchnorm="none")  # the conv layers carry no BatchNorm here
        self.input = input_layer(reg, train_images)
        self.conv1 = conv_block(1, channels, plain)
        self.conv2 = conv_block(channels, 2 * channels, plain)
        reduced = side // 4
        self.fc_image = nn.Linear(2 * channels * reduced * reduced, hidden_units)
        self.bn_image = nn.BatchNorm1d(hidden_units) if reg.batchnorm == "fc_before_concat" else nn.Identity()
        self.act_image = activation(reg.activation)
        joined = hidden_units + side_features
        self.bn_joined = nn.BatchNorm1d(joined) if reg.batchnorm == "after_concat" else nn.Identity()
        self.fc_joint = nn.Linear(joined, hidden_units)
        self.act_joint = activation(reg.activation)
        self.drop = dropout(reg.keep_prob) or nn.Identity()
        self.out = nn.Linear(hidden_units, n_classes)

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, side = x
        h = self.input(images).view(-1, 1, self.side, self.side)
        h = self.conv2(self.conv1(h)).flatten(1)
        h = self.act_image(self.bn_image(self.fc_image(h)))
        joined = self.bn_joined(torch.cat([h, side], dim=1))
        return self.out(self.drop(self.act_joint(self.fc_joint(joined))))
