"""The Task contract: data + model builder + default metric/direction + parameter table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from hpsearch.params import ParamSpec

if TYPE_CHECKING:  # heavy imports only for type checkers
    import torch

    from hpsearch.models.base import RegularizedModule
    from hpsearch.regularization import Regularization


@dataclass(frozen=True)
class DataSplits:
    """In-memory train/validation/test tensors ``(x, y)`` of a task.

    The search trains on ``train`` and scores on ``val``; ``test`` is held out for
    verification and is never handed to a trial.
    """

    train: tuple["torch.Tensor", "torch.Tensor"]
    val: tuple["torch.Tensor", "torch.Tensor"]
    test: tuple["torch.Tensor", "torch.Tensor"]
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A trainable problem the search can tune.

    ``load_data(seed)`` returns the :class:`DataSplits` (the split is a pure function of the seed);
    ``build_model(reg, options, data)`` returns a :class:`~hpsearch.models.base.RegularizedModule`
    for one trial, where ``options`` holds the non-regularization parameters (batch_size,
    widths...). ``params`` lists every parameter the task understands with its valid values;
    ``defaults`` gives values for parameters neither searched nor fixed.

    ``pick_data(data, options)``, if given, selects the splits one trial trains on from what
    ``load_data`` returned (for a task whose ``dataset`` is a parameter); see :meth:`data_for`.
    ``lightning`` is set for a task made of a user's LightningModule and LightningDataModule
    (see :mod:`hpsearch.lightning_task`).
    """

    name: str
    description: str
    metric: str
    direction: Literal["maximize", "minimize"]
    metrics: tuple[str, ...]
    params: Mapping[str, ParamSpec]
    defaults: Mapping[str, Any]
    load_data: Callable[[int], DataSplits]
    build_model: Callable[["Regularization", Mapping[str, Any], DataSplits], "RegularizedModule"]
    pick_data: Callable[[DataSplits, Mapping[str, Any]], DataSplits] | None = None
    # A task of the user's own Lightning classes (``task: {model: {class_path...}, data: ...}``):
    # its :class:`~hpsearch.lightning_task.task.LightningSetup`, which trains through the
    # DataModule's loaders; its splits are loader handles instead of tensors.
    lightning: Any = None

    def data_for(self, data: DataSplits, options: Mapping[str, Any]) -> DataSplits:
        """The splits a trial with these options trains and is scored on, picked from what
        ``load_data`` returned."""
        return data if self.pick_data is None else self.pick_data(data, options)

    def splits(self, data_seed: int, options: Mapping[str, Any]) -> DataSplits:
        """The splits a trial with these options trains and is scored on when the data is
        split with ``data_seed``: the one path from a trial's settings to its data (search,
        ``verify``, ``answer``, decision boundaries, the model loader)."""
        return self.data_for(self.load_data(data_seed), options)
