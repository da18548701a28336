"""An LSTM encoder–decoder for multi-step forecasting of a univariate series."""

from __future__ import annotations

import torch
from torch import nn

from hpsearch.models.base import RegularizedModule
from hpsearch.regularization import Regularization, dropout


class Seq2SeqLSTM(nn.Module):
    """Stacked LSTM encoder → stacked LSTM decoder (autoregressive) → Linear projection.

    ``keep_prob`` drops the non-recurrent connections where Zaremba et al. (2014) and
    TensorFlow's ``DropoutWrapper(output_keep_prob)`` put dropout: *between* stacked LSTM layers
    (PyTorch's ``dropout`` argument, ``p = 1 - keep_prob``) and on the decoder's output before
    the projection (``out_dropout``), so it acts with ``layers: 1`` too; the recurrent
    (hidden-to-hidden) connections are never dropped. The output projection ``proj`` is the
    only ``nn.Linear``, so ``l2_scope: fc`` puts the L2 term on it alone.
    """

    def __init__(self, hidden_units: int, layers: int, horizon: int, reg: Regularization) -> None:
        super().__init__()
        p = 1.0 - reg.keep_prob if layers > 1 else 0.0
        self.horizon = horizon
        self.encoder = nn.LSTM(1, hidden_units, num_layers=layers, dropout=p, batch_first=True)
        self.decoder = nn.LSTM(1, hidden_units, num_layers=layers, dropout=p, batch_first=True)
        self.out_dropout = dropout(reg.keep_prob) or nn.Identity()
        self.proj = nn.Linear(hidden_units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.encoder(x.unsqueeze(-1))
        step = x[:, -1:].unsqueeze(-1)  # the last observed value starts the decoder
        outputs = []
        for _ in range(self.horizon):
            out, state = self.decoder(step, state)
            step = self.proj(self.out_dropout(out))
            outputs.append(step)
        return torch.cat(outputs, dim=1).squeeze(-1)


class ForecastModule(RegularizedModule):
    """MSE forecaster trained on scaled values; metric ``mse`` in the series' own units²
    (the scaled MSE times ``scale``²)."""

    def __init__(self, net: nn.Module, reg: Regularization, scale: float) -> None:
        super().__init__(net, reg, nn.MSELoss())
        self.scale = scale

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mse": self.loss_fn(self(x), y) * self.scale**2}
