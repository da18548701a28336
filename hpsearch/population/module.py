"""PopulationModule: a LightningModule training K members of one architecture at once.

Each member is built by the task exactly as a single trial would be (its own seed for the
initialization), then the members are stacked (:mod:`hpsearch.population.stacked`). One
training epoch runs every member over its own shuffled order of the training split (the order
a single trial with the member's seed would see), one vectorized optimizer step per
mini-batch; the epoch ends with per-member validation. Members can be dropped between epochs
(pruned, NaN loss), so they stop costing compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, cast

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy

from hpsearch.models.base import ClassifierModule, RegressorModule, RegularizedModule
from hpsearch.population.optim import PopulationOptimizer
from hpsearch.population.stacked import StackedNet, Unsupported, stack
from hpsearch.population.stacked_cnn import is_cnn, stack_cnn
from hpsearch.regularization import Regularization

__all__ = ["PopulationEpoch", "PopulationFeed", "PopulationModule", "population_of"]


def _kind(module: RegularizedModule) -> str:
    """``classifier`` / ``regressor`` for the stock modules; anything else is unsupported
    (a custom module may change the loss or the metrics)."""
    if type(module) is ClassifierModule:
        return "classifier"
    if type(module) is RegressorModule:
        return "regressor"
    raise Unsupported(f"{type(module).__name__} is not one of the stock modules ClassifierModule/RegressorModule")


class PopulationEpoch:
    """One epoch's data: the training split and the validation split (moved to the device once)."""

    def __init__(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.train, self.val = train, val

    def to(self, device: torch.device) -> "PopulationEpoch":
        if self.train[1].device != device:
            self.train = (self.train[0].to(device), self.train[1].to(device))
            self.val = (self.val[0].to(device), self.val[1].to(device))
        return self


class PopulationFeed:
    """A one-item-per-epoch "dataloader" handing the :class:`PopulationEpoch` to the module."""

    def __init__(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.epoch = PopulationEpoch(train, val)

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Any:
        yield self.epoch


@dataclass
class MemberState:
    """What the module knows of one member (by its index in the original population)."""

    index: int
    seed: int
    reg: Regularization


class PopulationModule(pl.LightningModule):
    """K members trained as one stacked model (see the module docstring).

    After every epoch :attr:`val_metrics` maps ``val_<name>`` to a list of per-member floats
    and :attr:`train_losses` holds each member's mean data loss of the epoch, in the order of
    :attr:`members` (the members still training).
    """

    def __init__(self, net: StackedNet, members: Sequence[MemberState], kind: str, batch_size: int) -> None:
        super().__init__()
        self.net = net
        self.members = list(members)
        self.kind = kind
        self.batch_size = batch_size
        self.generators = [torch.Generator().manual_seed(m.seed) for m in self.members]
        self.automatic_optimization = False
        self.val_metrics: dict[str, list[float]] = {}
        self.train_losses: list[float] = []
        self.epochs_validated = 0
        self._opt: PopulationOptimizer | None = None

    @property
    def size(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self) -> PopulationOptimizer:
        self._opt = PopulationOptimizer(self.net.role_of(), [m.reg for m in self.members])
        return self._opt

    @property
    def optimizer(self) -> PopulationOptimizer:
        assert self._opt is not None
        return self._opt

    def member_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member data loss (K,): cross entropy or MSE averaged over the batch."""
        k = out.shape[0]
        if self.kind == "classifier":
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none").view(k, -1).mean(1)
        return (out - y).pow(2).flatten(1).mean(1)

    def member_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-member metrics on a whole split (eval mode, no gradients): (K,) tensors by short name."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = self.net(x)
            ys = y.unsqueeze(0).expand(out.shape[0], *y.shape)
            losses = self.member_losses(out, ys)
            metrics = {"acc": (out.argmax(-1) == ys).float().mean(1), "loss": losses} if self.kind == "classifier" else {"mse": losses}
        self.train(was_training)
        return metrics

    def training_step(self, batch: PopulationEpoch, batch_idx: int) -> None:
        """One epoch: every member's own shuffled mini-batches, one vectorized step each, then
        per-member validation."""
        opt = cast(PopulationOptimizer, self.optimizers(use_pl_optimizer=False))
        epoch = batch.to(self.device)
        x, y = epoch.train
        n = y.shape[0]
        orders = torch.stack([torch.randperm(n, generator=g) for g in self.generators]).to(self.device)
        backward = self._backward_fn()
        sums = torch.zeros(self.size, device=self.device)
        batches = 0
        for start in range(0, n, self.batch_size):
            index = orders[:, start : start + self.batch_size]
            opt.zero_grad(set_to_none=True)
            losses = self.member_losses(self.net(x[index]), y[index])
            sums += losses.detach()
            batches += 1
            backward((losses + opt.penalty()).sum())
            opt.step()
        self.train_losses = (sums / max(1, batches)).tolist()
        metrics = self.member_metrics(*epoch.val)
        self.val_metrics = {f"val_{name}": value.tolist() for name, value in metrics.items()}
        self.epochs_validated += 1

    def _backward_fn(self) -> Any:
        """``Tensor.backward`` on one device in full precision, else Lightning's ``manual_backward``."""
        trainer = self.trainer
        plain = type(trainer.precision_plugin) is Precision and isinstance(trainer.strategy, SingleDeviceStrategy)
        return torch.Tensor.backward if plain else self.manual_backward

    def keep(self, positions: Sequence[int]) -> None:
        """Keep only the members at these positions of :attr:`members`; the others stop training."""
        index = torch.tensor(list(positions), dtype=torch.long)
        replaced = self.net.keep_members(index)
        if self._opt is not None:
            self._opt.keep_members(index, replaced)
        self.members = [self.members[i] for i in positions]
        self.generators = [self.generators[i] for i in positions]
        self.val_metrics = {k: [v[i] for i in positions] for k, v in self.val_metrics.items()}
        self.train_losses = [self.train_losses[i] for i in positions] if self.train_losses else []


def population_of(
    singles: Sequence[RegularizedModule], regs: Sequence[Regularization], seeds: Sequence[int], batch_size: int
) -> PopulationModule:
    """Stack single-trial modules (built by the task, each from its own seed) into one
    :class:`PopulationModule`; raises :class:`~hpsearch.population.stacked.Unsupported`."""
    kinds = {_kind(m) for m in singles}
    if len(kinds) != 1:
        raise Unsupported("the members are different kinds of module")
    nets = [m.net for m in singles]
    net = stack_cnn(nets) if is_cnn(nets[0]) else stack(nets)
    members = [MemberState(i, seed, reg) for i, (seed, reg) in enumerate(zip(seeds, regs))]
    return PopulationModule(net, members, kinds.pop(), batch_size)
