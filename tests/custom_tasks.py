"""Custom tasks defined inside the test suite (``task: custom_tasks:toy_regression``); each
factory a study file names is marked with ``@hpsearch.task``.

``behaviour`` lets a study make a trial misbehave on purpose: ``nan`` poisons the output so the
training loss is NaN, ``raise`` makes the forward pass throw, ``slow`` sleeps 50 ms per training
batch (about 0.3 s per epoch), so fault tests can hit a trial in the middle of ``fit``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

import hpsearch
from hpsearch.models.base import RegressorModule
from hpsearch.params import REGULARIZATION_PARAMS, TRAINING_PARAMS, Condition, ParamSpec
from hpsearch.regularization import Regularization, dense_block, input_layer
from hpsearch.tasks import DataSplits, Task


def _data(seed: int) -> DataSplits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(300, 5, generator=g) * torch.tensor([1.0, 10.0, 100.0, 0.1, 1.0])
    w = torch.tensor([[0.5], [-0.05], [0.002], [3.0], [1.0]])
    y = x @ w + 0.05 * torch.randn(300, 1, generator=g)
    return DataSplits(train=(x[:180], y[:180]), val=(x[180:240], y[180:240]), test=(x[240:], y[240:]))


class _Misbehaving(nn.Module):
    def __init__(self, inner: nn.Module, behaviour: str) -> None:
        super().__init__()
        self.inner = inner
        self.behaviour = behaviour

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.behaviour == "raise":
            raise RuntimeError("boom from the custom model")
        if self.behaviour == "slow" and self.training:
            time.sleep(0.05)
        out = self.inner(x)
        return out * float("nan") if self.behaviour == "nan" else out


def _build(reg: Regularization, options: Mapping[str, Any], data: DataSplits) -> RegressorModule:
    net = nn.Sequential(input_layer(reg, data.train[0]), dense_block(5, options["width"], reg), nn.Linear(options["width"], 1))
    return RegressorModule(_Misbehaving(net, options["behaviour"]), reg)


@hpsearch.task
def toy_regression() -> Task:
    """A 5-feature linear regression with badly scaled inputs; metric val_mse (minimize)."""
    return Task(
        name="toy-regression",
        description="toy linear regression (test fixture)",
        metric="val_mse",
        direction="minimize",
        metrics=("val_mse",),
        params={
            **REGULARIZATION_PARAMS,
            **TRAINING_PARAMS,
            "width": ParamSpec("int", "hidden width", low=1),
            "behaviour": ParamSpec("choice", "ok | nan | raise | slow", choices=("ok", "nan", "raise", "slow")),
        },
        defaults={"batch_size": 32, "width": 8, "behaviour": "ok"},
        load_data=_data,
        build_model=_build,
    )


@hpsearch.task
def slashed_choices() -> Task:
    """``toy_regression`` with a ``layout`` choice whose values hold ``/`` (it changes nothing
    the model computes): level names made from such choices must be made safe."""
    base = toy_regression()
    layout = ParamSpec("choice", "a name only", choices=("fc/none", "fc/before_activation"))
    return dataclasses.replace(base, params={**base.params, "layout": layout}, defaults={**base.defaults, "layout": "fc/none"})


not_a_task = 42


def unmarked_factory() -> Task:
    """A valid factory without ``@hpsearch.task``: a study file naming it is refused before it
    is called (tests/test_safety.py); called anyway, it leaves a file at $HPSEARCH_TEST_MARKER."""
    marker = os.environ.get("HPSEARCH_TEST_MARKER")
    if marker:
        Path(marker).write_text("the unmarked factory was called")
    return toy_regression()


@hpsearch.task
def returns_wrong_type() -> str:
    return "not a Task"


# --- factories and data that break the Task contract (tests/test_bad_input.py)


@hpsearch.task
def raising_factory() -> Task:
    raise ValueError("factory exploded on purpose")


@hpsearch.task
def exiting_factory() -> Task:
    raise SystemExit(0)


def _with_data(load_data: Any) -> Task:
    return dataclasses.replace(toy_regression(), load_data=load_data)


def _raising_data(seed: int) -> DataSplits:
    raise OSError("dataset server unreachable (on purpose)")


def _exiting_data(seed: int) -> DataSplits:
    raise SystemExit(3)


def _numpy_data(seed: int) -> DataSplits:
    splits = _data(seed)
    return DataSplits(*[(x.numpy(), y.numpy()) for x, y in (splits.train, splits.val, splits.test)])


def _mismatched_data(seed: int) -> DataSplits:
    splits = _data(seed)
    x, y = splits.train
    return DataSplits(train=(x, y[:-1]), val=splits.val, test=splits.test)


@hpsearch.task
def data_raises() -> Task:
    return _with_data(_raising_data)


@hpsearch.task
def data_exits() -> Task:
    return _with_data(_exiting_data)


@hpsearch.task
def numpy_data() -> Task:
    return _with_data(_numpy_data)


@hpsearch.task
def mismatched_data() -> Task:
    return _with_data(_mismatched_data)


# --- parameter tables whose active_if conditions are broken (tests/test_bad_input.py)


def _with_conditions(**conditions: Condition) -> Task:
    base = toy_regression()
    params = {name: dataclasses.replace(spec, active_if=conditions.get(name, spec.active_if)) for name, spec in base.params.items()}
    return dataclasses.replace(base, params=params)


@hpsearch.task
def circular_conditions() -> Task:
    return _with_conditions(width=Condition("behaviour", "in", ("ok",)), behaviour=Condition("width", ">", 1))


@hpsearch.task
def self_condition() -> Task:
    return _with_conditions(width=Condition("width", ">", 1))


@hpsearch.task
def condition_on_unknown() -> Task:
    return _with_conditions(width=Condition("depth", ">", 1))


def _data_with_baselines(seed: int) -> DataSplits:
    """The toy regression with two trivial methods scored on its test split: predicting the
    training mean, and the least-squares linear fit on the training split (the true model)."""
    data = _data(seed)
    (x, y), (tx, ty) = data.train, data.test
    mean_mse = float(((ty - y.mean()) ** 2).mean())
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    coef = torch.linalg.lstsq(design.double(), y.double()).solution
    fit = torch.cat([tx, torch.ones(len(tx), 1)], dim=1).double() @ coef
    lstsq_mse = float(((fit - ty.double()) ** 2).mean())
    return dataclasses.replace(data, info={"test_baselines": {
        "train-mean": {"value": mean_mse, "about": "predict the training mean"},
        "least-squares": {"value": lstsq_mse, "about": "linear least squares on the training split"}}})


@hpsearch.task
def toy_regression_baselines() -> Task:
    """``toy_regression`` whose data carries test baselines (``info['test_baselines']``)."""
    return dataclasses.replace(toy_regression(), name="toy-regression-baselines", load_data=_data_with_baselines)
