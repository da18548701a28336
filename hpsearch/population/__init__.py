"""Populations: many trials of one architecture trained at once as one vectorized model.

- :mod:`.stacked` — stacked layers (``torch.baddbmm``), per-member BatchNorm, dropout, input
  standardization; :func:`~.stacked.stack` turns K single networks into one;
- :mod:`.optim` — one vectorized AdamW/Adam/SGD step with per-member settings;
- :mod:`.module` — the LightningModule holding a population;
- :mod:`.run` — asking Optuna for K trials, training them by architecture group, telling results.
"""
