"""Stacked networks: K models of one architecture as one module with a leading member dimension.

:func:`stack` takes K single-model networks built by a task (each initialized from its own
seed) and returns a :class:`StackedNet` whose parameters are the members' parameters stacked on
a new first dimension. Linear layers become one ``torch.baddbmm`` over the members; BatchNorm
keeps running statistics per member; dropout has a keep probability per member; input
standardization has per-member statistics (``input_norm: none`` members get mean 0, std 1).

Supported networks are trees of ``nn.Sequential`` whose leaves are ``Linear``, ``BatchNorm1d``,
the activations of :mod:`hpsearch.regularization`, ``Dropout``, ``Identity`` and
:class:`~hpsearch.regularization.Standardize` — everything :func:`~hpsearch.regularization.dense_block`
and :func:`~hpsearch.models.mlp.mlp` build. :func:`signature` of anything else raises
:class:`Unsupported`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, cast

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.regularization import Standardize

__all__ = ["Unsupported", "StackedNet", "signature", "stack", "ROLE_WEIGHT", "ROLE_BIAS", "ROLE_NORM",
           "ROLE_CONV_WEIGHT", "ROLE_CONV_BIAS"]

#: Roles of stacked parameters, deciding which ``l2_scope`` covers them.
ROLE_WEIGHT = "linear_weight"  # in scope all, weights, fc
ROLE_BIAS = "linear_bias"  # in scope all, fc
ROLE_NORM = "norm"  # in scope all
ROLE_CONV_WEIGHT = "conv_weight"  # in scope all, weights (a kernel is not fc)
ROLE_CONV_BIAS = "conv_bias"  # in scope all

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU)


class Unsupported(ValueError):
    """The network has a layer a population cannot stack."""


def _leaves(net: nn.Module) -> list[nn.Module]:
    """The leaf modules of a tree of ``nn.Sequential`` in execution order."""
    children = list(net.children())
    if not children:
        return [net]
    if not isinstance(net, nn.Sequential):
        raise Unsupported(f"{type(net).__name__} is not an nn.Sequential of supported layers")
    return [leaf for child in children for leaf in _leaves(child)]


def _leaf_key(leaf: nn.Module) -> tuple[Any, ...] | None:
    """What must match between members at one position; ``None`` for dropout (per member)."""
    if isinstance(leaf, nn.Dropout):
        return None
    if isinstance(leaf, (nn.Identity, Standardize)):
        return ("input",)
    if isinstance(leaf, nn.Linear):
        return ("linear", leaf.in_features, leaf.out_features, leaf.bias is not None)
    if isinstance(leaf, nn.BatchNorm1d):
        return ("bn", leaf.num_features, leaf.eps, leaf.momentum, leaf.affine, leaf.track_running_stats)
    if isinstance(leaf, _ACTIVATIONS):
        extra = getattr(leaf, "negative_slope", None) if isinstance(leaf, nn.LeakyReLU) else getattr(leaf, "approximate", None)
        return (type(leaf).__name__, extra)
    raise Unsupported(f"layer {type(leaf).__name__} cannot be stacked")


def signature(net: nn.Module) -> tuple[tuple[Any, ...], ...]:
    """The layer graph of ``net`` without dropout and BatchNorm (both may differ per member:
    a member without BatchNorm at a place where another has one passes its input through)."""
    keys = [_leaf_key(leaf) for leaf in _leaves(net)]
    return tuple(k for k in keys if k is not None and k[0] != "bn")


@dataclass
class _Slot:
    """One canonical layer of a member, with the BatchNorm and dropout that follow it."""

    layer: nn.Module
    norm: nn.BatchNorm1d | None = None
    keep: float = 1.0


def _slots(net: nn.Module) -> list[_Slot]:
    """``net``'s leaves as slots: each non-dropout, non-BatchNorm leaf with the BatchNorm
    and dropout that come after it (in that order, as ``dense_block`` builds them)."""
    slots: list[_Slot] = []
    for leaf in _leaves(net):
        _leaf_key(leaf)  # raises Unsupported for unknown layers
        if isinstance(leaf, nn.Dropout):
            if not slots:
                raise Unsupported("dropout before the first layer cannot be stacked")
            slots[-1].keep *= 1.0 - leaf.p
        elif isinstance(leaf, nn.BatchNorm1d):
            if not slots or slots[-1].norm is not None or slots[-1].keep < 1.0:
                raise Unsupported("this BatchNorm placement cannot be stacked")
            slots[-1].norm = leaf
        else:
            slots.append(_Slot(leaf))
    return slots


class StackedLinear(nn.Module):
    """K Linear layers: ``weight`` (K, out, in), ``bias`` (K, 1, out); input (K, B, in)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).clone())
        biases = [layer.bias for layer in layers]
        self.bias = (
            nn.Parameter(torch.stack([b.detach() for b in biases if b is not None]).unsqueeze(1).clone())
            if all(b is not None for b in biases)
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # the same input for every member
            x = x.unsqueeze(0).expand(self.weight.shape[0], -1, -1)
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias, x, self.weight.transpose(1, 2))


class StackedBatchNorm(nn.Module):
    """K BatchNorm1d layers with their own affine parameters and running statistics; one
    ``F.batch_norm`` over the members' features laid side by side."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    use: torch.Tensor

    def __init__(self, layers: Sequence[nn.BatchNorm1d | None]) -> None:
        super().__init__()
        first = next(b for b in layers if b is not None)
        fresh = nn.BatchNorm1d(first.num_features, first.eps, first.momentum, first.affine, first.track_running_stats)
        norms = [b if b is not None else fresh for b in layers]
        self.eps, self.momentum = first.eps, first.momentum
        self.weight = nn.Parameter(torch.stack([b.weight.detach() for b in norms]).clone()) if first.affine else None
        self.bias = nn.Parameter(torch.stack([b.bias.detach() for b in norms]).clone()) if first.affine else None
        if first.track_running_stats:
            self.register_buffer("running_mean", torch.stack([b.running_mean for b in norms]).clone())  # type: ignore[misc]
            self.register_buffer("running_var", torch.stack([b.running_var for b in norms]).clone())  # type: ignore[misc]
        else:
            self.running_mean = self.running_var = None  # type: ignore[assignment]
        # members without a BatchNorm here pass their input through (their BN parameters stay unused)
        self.register_buffer("use", torch.tensor([b is not None for b in layers]).view(-1, 1, 1))
        self.everyone = all(b is not None for b in layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, b, f = x.shape
        flat = x.transpose(0, 1).reshape(b, k * f)
        out = F.batch_norm(
            flat,
            None if self.running_mean is None else self.running_mean.view(-1),
            None if self.running_var is None else self.running_var.view(-1),
            None if self.weight is None else self.weight.reshape(-1),
            None if self.bias is None else self.bias.reshape(-1),
            self.training or self.running_mean is None,
            self.momentum if self.momentum is not None else 0.1,
            self.eps,
        )
        out = out.reshape(b, k, f).transpose(0, 1)
        return out if self.everyone else torch.where(self.use, out, x)


class StackedStandardize(nn.Module):
    """Per-member ``(x - mean) / std``; input (B, F) or (K, B, F), output (K, B, F)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, layers: Sequence[nn.Module], features: int) -> None:
        super().__init__()
        means, stds = [], []
        for layer in layers:
            if isinstance(layer, Standardize):
                means.append(layer.mean.reshape(-1))
                stds.append(layer.std.reshape(-1))
            else:
                means.append(torch.zeros(features))
                stds.append(torch.ones(features))
        self.register_buffer("mean", torch.stack(means).unsqueeze(1).clone())
        self.register_buffer("std", torch.stack(stds).unsqueeze(1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class StackedDropout(nn.Module):
    """Dropout with a keep probability per member (TensorFlow-style: kept units scaled by 1/keep)."""

    keep: torch.Tensor

    def __init__(self, keep: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("keep", torch.tensor(list(keep), dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = self.keep.to(x.dtype)
        mask = torch.rand_like(x) < keep
        return x * mask / keep


class StackedNet(nn.Module):
    """K networks of one layer graph as one module; ``forward`` maps (B, F) or (K, B, F) to
    (K, B, out). :attr:`roles` gives the role of each parameter (for ``l2_scope``)."""

    def __init__(self, layers: list[nn.Module], roles: dict[str, str], size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.roles = roles
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.size, *x.shape)
        return self.layers(x)

    def role_of(self) -> list[tuple[nn.Parameter, str]]:
        """Every trainable parameter with its role."""
        return [(p, self.roles[name]) for name, p in self.named_parameters()]

    def keep_members(self, index: torch.Tensor) -> dict[int, nn.Parameter]:
        """Keep only the members at ``index`` (a 1-D long tensor) in every parameter and buffer;
        returns ``{id(old parameter): new parameter}`` for the optimizer."""
        replaced: dict[int, nn.Parameter] = {}
        with torch.no_grad():
            for module in self.modules():
                for name, p in list(module._parameters.items()):
                    if p is not None:
                        new = nn.Parameter(p.detach().index_select(0, index.to(p.device)).clone())
                        module._parameters[name] = new
                        replaced[id(p)] = new
                for name, buf in list(module._buffers.items()):
                    if buf is not None:
                        module._buffers[name] = buf.index_select(0, index.to(buf.device)).clone()
        self.size = int(index.numel())
        return replaced


def stack(nets: Sequence[nn.Module]) -> StackedNet:
    """Stack K single networks with equal :func:`signature`; raises :class:`Unsupported`."""
    if not nets:
        raise ValueError("a population needs at least one member")
    if len({signature(n) for n in nets}) != 1:
        raise Unsupported("the members' layer graphs differ")
    parsed = [_slots(n) for n in nets]
    layers: list[nn.Module] = []
    roles: dict[str, str] = {}
    for i in range(len(parsed[0])):
        column = [slots[i] for slots in parsed]
        first = column[0].layer
        name = str(len(layers))
        if isinstance(first, (nn.Identity, Standardize)):
            standardized = [c.layer for c in column if isinstance(c.layer, Standardize)]
            if standardized:
                layers.append(StackedStandardize([c.layer for c in column], cast(Standardize, standardized[0]).mean.numel()))
        elif isinstance(first, nn.Linear):
            layer = StackedLinear([cast(nn.Linear, c.layer) for c in column])
            roles[f"layers.{name}.weight"] = ROLE_WEIGHT
            if layer.bias is not None:
                roles[f"layers.{name}.bias"] = ROLE_BIAS
            layers.append(layer)
        else:  # an activation: the same for every member
            layers.append(type(first)(**_activation_kwargs(first)))
        if any(c.norm is not None for c in column):
            name = str(len(layers))
            bn = StackedBatchNorm([c.norm for c in column])
            if bn.weight is not None:
                roles[f"layers.{name}.weight"] = roles[f"layers.{name}.bias"] = ROLE_NORM
            layers.append(bn)
        if any(c.keep < 1.0 for c in column):
            layers.append(StackedDropout([c.keep for c in column]))
    return StackedNet(layers, roles, len(nets))


def _activation_kwargs(module: nn.Module) -> dict[str, Any]:
    if isinstance(module, nn.LeakyReLU):
        return {"negative_slope": module.negative_slope}
    if isinstance(module, nn.GELU):
        return {"approximate": module.approximate}
    return {}
