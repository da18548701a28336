"""A probe task (``task: split_probe:probe``): digits with each sample's global index appended as
an extra input column, and a model that records every index it is fed. Lets a test prove which
split indices the search and the verification touch."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

import hpsearch
from hpsearch.tasks import DataSplits, Task
from hpsearch.tasks.digits import digits_mlp, load_digits_splits

SEEN: set[int] = set()
#: The indices fed to the model in training mode (the samples it learned from).
TRAINED: set[int] = set()


class _Recorder(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        SEEN.update(int(i) for i in x[:, -1].tolist())
        if self.training:
            TRAINED.update(int(i) for i in x[:, -1].tolist())
        return self.inner(x[:, :-1])


def _with_index(x: torch.Tensor, idx: Any) -> torch.Tensor:
    return torch.cat([x, torch.as_tensor(idx, dtype=torch.float32).unsqueeze(1)], dim=1)


def probe_data(seed: int) -> DataSplits:
    """The digits split of ``seed``, each x row carrying its global index as the last column."""
    d = load_digits_splits(seed)
    info = d.info
    return DataSplits(
        train=(_with_index(d.train[0], info["train_indices"]), d.train[1]),
        val=(_with_index(d.val[0], info["val_indices"]), d.val[1]),
        test=(_with_index(d.test[0], info["test_indices"]), d.test[1]),
        info=info,
    )


def _build(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.base import ClassifierModule
    from hpsearch.models.mlp import mlp

    net = mlp(64, 10, options["hidden_units"], options["hidden_layers"], reg, data.train[0][:, :-1])
    return ClassifierModule(_Recorder(net), reg)


@hpsearch.task
def probe() -> Task:
    base = digits_mlp()
    return Task(
        name="split-probe",
        description="digits MLP that records the sample indices it sees (test fixture)",
        metric=base.metric,
        direction=base.direction,
        metrics=base.metrics,
        params=base.params,
        defaults=base.defaults,
        load_data=probe_data,
        build_model=_build,
    )
