"""An LSTM encoder with a direct multi-horizon head for multi-step forecasting of a series."""

from __future__ import annotations

import torch
from torch import nn

from hpsearch.models.base import RegularizedModule
from hpsearch.regularization import Regularization, dropout


class Seq2SeqLSTM(nn.Module):
    """Stacked LSTM encoder → dropout → one ``nn.Linear`` head that emits all ``horizon``
    steps at once (a direct multi-horizon decoder, as in MQ-RNN, Wen et al. 2017).

    Nothing the model predicts is fed back into it, so the training and the forecast compute
    the same function (no exposure bias, no start token) and dropout can never corrupt an
    input of a later step.

    ``keep_prob`` drops the non-recurrent connections only, where Zaremba et al. (2014) put
    dropout: *between* stacked LSTM layers (PyTorch's ``dropout`` argument,
    ``p = 1 - keep_prob``) and on the last layer's final hidden state before the head
    (``out_dropout``, so it acts with ``layers: 1`` too); the recurrent (hidden-to-hidden)
    connections are never dropped.

    What each ``l2_scope`` covers here (``hpsearch.regularization.scoped_parameters``):
    ``fc`` — the head's weight and bias (the only ``nn.Linear``); ``weights`` — every LSTM
    weight matrix (``weight_ih_l*``, ``weight_hh_l*``) and the head's weight, no biases;
    ``all`` — every parameter, the LSTM biases and the head's bias included.
    """

    def __init__(self, hidden_units: int, layers: int, horizon: int, reg: Regularization) -> None:
        super().__init__()
        p = 1.0 - reg.keep_prob if layers > 1 else 0.0
        self.horizon = horizon
        self.encoder = nn.LSTM(1, hidden_units, num_layers=layers, dropout=p, batch_first=True)
        self.out_dropout = dropout(reg.keep_prob) or nn.Identity()
        self.head = nn.Linear(hidden_units, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape (batch, input steps) → forecasts of shape (batch, horizon)."""
        _, (h, _) = self.encoder(x.unsqueeze(-1))
        return self.head(self.out_dropout(h[-1]))


class ForecastModule(RegularizedModule):
    """MSE forecaster trained on scaled values; metric ``mse`` in the series' own units²
    (the scaled MSE times ``scale``²)."""

    def __init__(self, net: nn.Module, reg: Regularization, scale: float) -> None:
        super().__init__(net, reg, nn.MSELoss())
        self.scale = scale

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mse": self.loss_fn(self(x), y) * self.scale**2}
