"""Loading a task's data once, checked against the :class:`~hpsearch.tasks.base.Task` contract,
before anything is written: a ``load_data`` that raises or exits, or returns something that is
not three ``(x, y)`` pairs of tensors, is a one-line :class:`ConfigError`."""

from __future__ import annotations

from typing import Any

from hpsearch.errors import ConfigError, describe_exception
from hpsearch.tasks.base import DataSplits, Task

SPLITS = ("train", "val", "test")


def _describe(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__


def check_splits(data: Any, task_name: str, path: str = "<study>") -> DataSplits:
    """``data`` if it is a :class:`DataSplits` of tensor pairs with matching lengths, else a
    :class:`ConfigError` saying what is wrong. ``x`` may also be a tuple of tensors with one row
    per example each (the inputs of a multi-input model)."""
    import torch

    where = f"{path}: task {task_name}: load_data"
    if not isinstance(data, DataSplits):
        raise ConfigError(f"{where} returned {_describe(data)}, expected hpsearch.tasks.DataSplits")
    if data.info.get("lightning"):  # loader handles of a Lightning task: its DataModule reads the data
        return data
    for split in SPLITS:
        pair = getattr(data, split)
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ConfigError(f"{where}: {split} is {_describe(pair)}, expected a pair (x, y) of torch tensors")
        x, y = pair
        inputs = list(x) if isinstance(x, tuple) and x else [x]
        for name, value in [*((f"x[{i}]" if len(inputs) > 1 else "x", v) for i, v in enumerate(inputs)), ("y", y)]:
            if not isinstance(value, torch.Tensor):
                hint = " (convert with torch.as_tensor)" if type(value).__module__.startswith("numpy") else ""
                raise ConfigError(f"{where}: {split} {name} is {_describe(value)}, expected a torch.Tensor{hint}")
            if value.ndim == 0:
                raise ConfigError(f"{where}: {split} {name} is a 0-d tensor; expected one row per example")
        if len({len(v) for v in inputs}) > 1:
            raise ConfigError(f"{where}: {split} x is a tuple of inputs with different numbers of rows")
        rows = len(inputs[0])
        if rows != len(y):
            raise ConfigError(f"{where}: {split} has {rows} inputs but {len(y)} targets")
        if split != "test" and rows == 0:
            raise ConfigError(f"{where}: the {split} split is empty")
    return data


def load_checked_data(task: Task, seed: int, path: str = "<study>") -> DataSplits:
    """``task.load_data(seed)``, checked by :func:`check_splits`; an exception or ``exit``
    inside ``load_data`` becomes a :class:`ConfigError` naming the study file ``path``."""
    try:
        data = task.load_data(seed)
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{path}: task {task.name}: load_data failed: {describe_exception(exc)}") from None
    return check_splits(data, task.name, path)
