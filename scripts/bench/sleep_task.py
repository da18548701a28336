"""A task whose trial sleeps instead of training (``task: sleep_task:make_task``), for the
parallel-scaling benchmark: it keeps the whole trial path (study, Trainer, pruning callback,
storage writes) and replaces the compute by ``sleep_seconds`` of waiting per epoch."""

from __future__ import annotations

import time
from typing import Any, Mapping

import torch
from torch import nn

import hpsearch
from hpsearch.models.base import RegressorModule
from hpsearch.params import REGULARIZATION_PARAMS, ParamSpec
from hpsearch.regularization import Regularization
from hpsearch.tasks import DataSplits, Task


class SleepModule(RegressorModule):
    """Sleeps ``seconds`` per training epoch; validation reports an MSE that depends on the
    learning rate, so samplers see a landscape."""

    def __init__(self, reg: Regularization, seconds: float) -> None:
        super().__init__(nn.Linear(1, 1), reg)
        self.seconds = seconds

    def training_step(self, batch: Any, batch_idx: int) -> None:
        time.sleep(self.seconds)
        self._epoch_losses = [torch.tensor(1.0)]
        self.validate(*batch.val)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mse": torch.tensor((torch.log10(torch.tensor(self.reg.learning_rate)) + 2.5) ** 2)}


def _data(seed: int) -> DataSplits:
    x = torch.zeros(4, 1)
    return DataSplits(train=(x, x), val=(x, x), test=(x, x))


def _build(reg: Regularization, options: Mapping[str, Any], data: DataSplits) -> SleepModule:
    return SleepModule(reg, options["sleep_seconds"])


@hpsearch.task
def make_task() -> Task:
    return Task(
        name="sleep",
        description="sleeps instead of training (benchmark fixture)",
        metric="val_mse",
        direction="minimize",
        metrics=("val_mse",),
        params={**REGULARIZATION_PARAMS, "batch_size": ParamSpec("int", "unused", low=1),
                "sleep_seconds": ParamSpec("float", "seconds slept per epoch", low=0.0)},
        defaults={"batch_size": 4, "sleep_seconds": 1.0},
        load_data=_data,
        build_model=_build,
    )
