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
from hpsearch.population.stacked import StackedNet, Unsupported, signature, stack
from hpsearch.population.stacked_cnn import cnn_signature, is_cnn, stack_cnn
from hpsearch.regularization import Regularization

__all__ = ["PopulationEpoch", "PopulationFeed", "PopulationModule", "module_kind", "population_of", "stack_signature"]


def module_kind(module: RegularizedModule) -> str:
    """``classifier`` / ``regressor`` for the stock modules; anything else is unsupported
    (a custom module may change the loss or the metrics)."""
    if type(module) is ClassifierModule:
        return "classifier"
    if type(module) is RegressorModule:
        return "regressor"
    raise Unsupported(f"{type(module).__name__} is not one of the stock modules ClassifierModule/RegressorModule")


class PopulationEpoch:
    """One epoch's data: the training split and the validation split (moved to the device once).
    ``per_member``: each tensor has a leading member dimension (members on different data sets
    of the same shape), else every member sees the same split."""

    def __init__(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                 per_member: bool = False) -> None:
        self.train, self.val, self.per_member = train, val, per_member

    def to(self, device: torch.device) -> "PopulationEpoch":
        if self.train[1].device != device:
            self.train = (self.train[0].to(device), self.train[1].to(device))
            self.val = (self.val[0].to(device), self.val[1].to(device))
        return self


class PopulationFeed:
    """A one-item-per-epoch "dataloader" handing the :class:`PopulationEpoch` to the module."""

    def __init__(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                 per_member: bool = False) -> None:
        self.epoch = PopulationEpoch(train, val, per_member)

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
        self.optimizer_steps = 0  # optimizer steps taken (for decay_shrinkage), as a single trial counts them
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

    def rows(self, t: torch.Tensor) -> torch.Tensor:
        """The current members' rows of a per-member tensor stacked for the original population."""
        if t.shape[0] == self.size:
            return t
        return t.index_select(0, torch.tensor([m.index for m in self.members], device=t.device))

    def member_metrics(self, x: torch.Tensor, y: torch.Tensor, per_member: bool = False) -> dict[str, torch.Tensor]:
        """Per-member metrics on a whole split (eval mode, no gradients): (K,) tensors by short name.
        ``per_member``: ``x`` and ``y`` hold one split per member of the original population."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            if per_member:
                x, y = self.rows(x), self.rows(y)
            out = self.net(x)
            ys = y if per_member else y.unsqueeze(0).expand(out.shape[0], *y.shape)
            losses = self.member_losses(out, ys)
            metrics = {"acc": (out.argmax(-1) == ys).float().mean(1), "loss": losses} if self.kind == "classifier" else {"mse": losses}
        self.train(was_training)
        return metrics

    def training_step(self, batch: PopulationEpoch, batch_idx: int) -> None:
        """One epoch: every member's own shuffled mini-batches, one vectorized step each, then
        per-member validation."""
        opt = cast(PopulationOptimizer, self.optimizers(use_pl_optimizer=False))
        epoch = batch.to(self.device)
        self.optimizer_steps += self.train_epoch(*epoch.train, opt, self._backward_fn(), per_member=epoch.per_member)
        metrics = self.member_metrics(*epoch.val, per_member=epoch.per_member)
        self.val_metrics = {f"val_{name}": value.tolist() for name, value in metrics.items()}
        self.epochs_validated += 1

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, opt: PopulationOptimizer, backward: Any = torch.Tensor.backward,
                    per_member: bool = False) -> int:
        """One pass of every member over its own shuffled order of (``x``, ``y``) (one split per
        member of the original population with ``per_member``); sets :attr:`train_losses`, returns
        the number of optimizer steps.
        Per step: one gather of every member's batch from inputs standardized once per epoch,
        one forward (one dropout draw), backward and one optimizer step; no host syncs."""
        k = self.size
        if per_member:
            x, y = self.rows(x), self.rows(y)
        n = y.shape[1] if per_member else y.shape[0]
        orders = torch.stack([torch.randperm(n, generator=g) for g in self.generators]).to(self.device)
        inputs = self.net.inputs(x)  # (N, F) shared, or (K, N, F)
        offsets = torch.arange(k, device=self.device).unsqueeze(1) * n
        stacked = per_member or inputs.dim() > x.dim()
        flat_x, x_index = (inputs.reshape(k * n, *inputs.shape[2:]), orders + offsets) if stacked else (inputs, orders)
        flat_y, y_index = (y.reshape(k * n, *y.shape[2:]), orders + offsets) if per_member else (y, orders)
        params = list(self.net.parameters())
        losses_of_batches = []
        for start in range(0, n, self.batch_size):
            end = start + self.batch_size
            losses = self.member_losses(self.net.body(flat_x[x_index[:, start:end]]), flat_y[y_index[:, start:end]])
            losses_of_batches.append(losses.detach())
            for p in params:
                p.grad = None
            backward(losses.sum())
            opt.step()
        self.train_losses = torch.stack(losses_of_batches).mean(0).tolist() if losses_of_batches else [0.0] * k
        return len(losses_of_batches)

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


def stack_signature(net: Any) -> tuple[Any, ...]:
    """What the networks of one population must share (a CNN's or an MLP's layer graph; see
    :func:`population_of`); raises :class:`Unsupported` for a network that cannot stack."""
    return cnn_signature(net) if is_cnn(net) else signature(net)


def population_of(
    singles: Sequence[RegularizedModule], regs: Sequence[Regularization], seeds: Sequence[int], batch_size: int
) -> PopulationModule:
    """Stack single-trial modules (built by the task, each from its own seed) into one
    :class:`PopulationModule`; raises :class:`~hpsearch.population.stacked.Unsupported`."""
    kinds = {module_kind(m) for m in singles}
    if len(kinds) != 1:
        raise Unsupported("the members are different kinds of module")
    nets = [m.net for m in singles]
    net = stack_cnn(nets) if is_cnn(nets[0]) else stack(nets)
    members = [MemberState(i, seed, reg) for i, (seed, reg) in enumerate(zip(seeds, regs))]
    return PopulationModule(net, members, kinds.pop(), batch_size)
