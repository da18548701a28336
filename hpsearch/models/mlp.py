"""Fully-connected networks built from dense blocks."""

from __future__ import annotations

import torch
from torch import nn

from hpsearch.regularization import Regularization, dense_block, input_layer


def mlp(
    in_features: int,
    out_features: int,
    hidden_units: int,
    hidden_layers: int,
    reg: Regularization,
    train_x: torch.Tensor,
) -> nn.Sequential:
    """input_layer → ``hidden_layers`` × dense_block(``hidden_units``) → Linear output."""
    layers: list[nn.Module] = [input_layer(reg, train_x)]
    width = in_features
    for _ in range(hidden_layers):
        layers.append(dense_block(width, hidden_units, reg))
        width = hidden_units
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
