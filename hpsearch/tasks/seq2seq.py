"""``co2-seq2seq``: forecast the next 12 months of the Mauna Loa CO2 series (shipped inside
statsmodels) from the previous 36 with a stacked LSTM encoder and a direct 12-month head.

Two classical baselines are scored on the same windows, in ppm²: *seasonal naive* (each
month forecast by the same month one year earlier) and *seasonal naive + drift* (that, plus
the yearly growth measured on the input window: mean of its last 12 months minus mean of the
12 before). Their test-split MSEs are ``DataSplits.info["test_baselines"]``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from hpsearch.params import REGULARIZATION_PARAMS, TRAINING_PARAMS, ParamSpec, positive_int
from hpsearch.tasks.base import DataSplits, Task

INPUT_MONTHS = 36
HORIZON = 12
SEASON = 12


def co2_monthly() -> Any:
    """Monthly mean CO2 (ppm), 1958-03 .. 2001-12, gaps interpolated (numpy array)."""
    import statsmodels.api as sm

    weekly = sm.datasets.co2.load_pandas().data["co2"]
    return weekly.resample("MS").mean().interpolate().to_numpy(dtype="float64")


def windows(series: Any, first_target: int, last_target: int) -> tuple[Any, Any]:
    """(inputs, targets) of every window whose 12 targets lie in ``[first_target, last_target)``."""
    import numpy as np

    starts = range(max(first_target, INPUT_MONTHS), last_target - HORIZON + 1)
    x = np.stack([series[t - INPUT_MONTHS : t] for t in starts])
    y = np.stack([series[t : t + HORIZON] for t in starts])
    return x, y


def seasonal_naive(x: Any) -> Any:
    """Forecast of every window in ``x`` (windows × input months): the same month one year
    earlier, ``x[:, -12 + h]`` for horizon step ``h``."""
    return x[:, -SEASON : -SEASON + HORIZON or None]


def seasonal_naive_drift(x: Any) -> Any:
    """:func:`seasonal_naive` plus the yearly growth seen in the window: the mean of its last
    12 months minus the mean of the 12 months before them."""
    growth = x[:, -SEASON:].mean(axis=1, keepdims=True) - x[:, -2 * SEASON : -SEASON].mean(axis=1, keepdims=True)
    return seasonal_naive(x) + growth


def baselines(x: Any, y: Any) -> dict[str, float]:
    """MSE (in the series' units²) of both baselines on windows ``(x, y)``."""
    import numpy as np

    return {
        "seasonal_naive": float(np.mean((seasonal_naive(x) - y) ** 2)),
        "seasonal_naive_drift": float(np.mean((seasonal_naive_drift(x) - y) ** 2)),
    }


BASELINE_ABOUT = {
    "seasonal_naive": "each month forecast by the same month one year earlier (MSE in ppm^2)",
    "seasonal_naive_drift": "seasonal naive plus the yearly growth of the input window "
    "(mean of its last 12 months minus the 12 before; MSE in ppm^2)",
}


@lru_cache(maxsize=4)
def load_co2_splits(seed: int) -> DataSplits:
    """Chronological split (first 70% of months train, next 15% val, last 15% test; the
    seed does not change it). Each window is expressed relative to its last input value and
    divided by a scale from the training windows. ``info`` holds the scale, the seasonal-naive
    validation MSE in ppm² (stored on the study as ``baseline_val_mse``, printed by
    ``optimize``) and ``test_baselines``: both baselines' MSE on the test windows in ppm²,
    which ``hpsearch answer`` prints beside its levels."""
    import numpy as np
    import torch

    series = co2_monthly()
    n = len(series)
    cut_val, cut_test = int(n * 0.70), int(n * 0.85)
    raw = {"train": windows(series, 0, cut_val), "val": windows(series, cut_val, cut_test), "test": windows(series, cut_test, n)}
    tx, ty = raw["train"]
    scale = float(np.std(ty - tx[:, -1:]))

    def scaled(x: Any, y: Any) -> tuple[Any, Any]:
        level = x[:, -1:]
        return (
            torch.tensor((x - level) / scale, dtype=torch.float32),
            torch.tensor((y - level) / scale, dtype=torch.float32),
        )

    baseline = baselines(*raw["val"])["seasonal_naive"]
    on_test = baselines(*raw["test"])
    return DataSplits(
        train=scaled(*raw["train"]),
        val=scaled(*raw["val"]),
        test=scaled(*raw["test"]),
        info={
            "scale": scale,
            "test_baselines": {name: {"value": value, "about": BASELINE_ABOUT[name]} for name, value in on_test.items()},
            "study_user_attrs": {
                "baseline_val_mse": baseline,
                "baseline": "naive seasonal forecast: the value of the same month one year earlier, MSE in ppm^2",
            },
        },
    )


def recent_windows(data: DataSplits, options: Mapping[str, Any]) -> DataSplits:
    """The splits with only the last ``train_windows`` training windows (0 = all 321): the
    months nearest the validation period, still in order; validation and test are untouched.
    Fewer windows let the LSTM fit the noise of the training months (train MSE well below
    validation MSE), so a regularizer has something to correct."""
    size = int(options.get("train_windows", 0))
    x, y = data.train
    if size <= 0 or size >= len(y):
        return data
    return DataSplits(train=(x[-size:], y[-size:]), val=data.val, test=data.test, info={**data.info, "train_windows": size})


def _build(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.seq2seq import ForecastModule, Seq2SeqLSTM

    net = Seq2SeqLSTM(options["hidden_units"], options["layers"], HORIZON, reg)
    return ForecastModule(net, reg, float(data.info["scale"]))


def co2_seq2seq() -> Task:
    """``co2-seq2seq``: LSTM encoder–decoder; ``keep_prob`` is dropout between stacked layers and
    on the decoder output (Zaremba et al.),
    ``l2_scope: fc`` covers the output projection only. Metric ``val_mse`` in ppm²."""
    keep = {k: REGULARIZATION_PARAMS[k] for k in ("learning_rate", "weight_decay", "l2_mode", "l2_scope", "keep_prob", "optimizer", "momentum")}
    return Task(
        name="co2-seq2seq",
        description="LSTM encoder-decoder forecasting 12 months of statsmodels' Mauna Loa CO2 series",
        metric="val_mse",
        direction="minimize",
        metrics=("val_mse",),
        params={
            **keep,
            **TRAINING_PARAMS,
            "hidden_units": positive_int("LSTM hidden size"),
            "layers": ParamSpec("int", "stacked LSTM layers of the encoder", low=1),
            "train_windows": ParamSpec("int", "training windows used: the last N of the training split (0 = all 321)", low=0),
        },
        defaults={"batch_size": 32, "hidden_units": 32, "layers": 2, "train_windows": 0},
        load_data=load_co2_splits,
        build_model=_build,
        pick_data=recent_windows,
    )
