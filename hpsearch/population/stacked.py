"""Stacked networks: K models of one architecture as one module with a leading member dimension.

:func:`stack` takes K single-model networks built by a task (each initialized from its own
seed) and returns a :class:`StackedNet` whose parameters are the members' parameters stacked on
a new first dimension. Linear layers become one ``torch.baddbmm`` over the members; BatchNorm
keeps running statistics per member; dropout has a keep probability per member (one mask draw
per step for all dropout layers); input standardization has per-member statistics
(``input_norm: none`` members get mean 0, std 1).

Members may differ in activation (each activation runs on its members' slice) and in hidden
widths: a narrower member lives inside the widest layer with its extra units masked — their
weights, biases and BatchNorm parameters start at zero and the masked inputs of the next layer
are zeroed, so they get no gradient, no penalty, no decay and no output, and the member computes
exactly what it computes alone. Depth, input and output sizes must match.

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

from hpsearch.population.dropout_masks import DropoutMasks
from hpsearch.regularization import Standardize

__all__ = ["Unsupported", "StackedNet", "signature", "stack", "rows_like", "member_runs", "members_batch_norm",
           "running_affine",
           "ROLE_WEIGHT", "ROLE_BIAS", "ROLE_NORM", "ROLE_CONV_WEIGHT", "ROLE_CONV_BIAS"]

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
    """What members stacked together must share: the layer graph of ``net`` without dropout and
    BatchNorm (both may differ per member: a member without BatchNorm at a place where another
    has one passes its input through), with any activation at an activation's place and only
    the input size of the first and the output size of the last Linear (hidden widths may
    differ: narrower members are masked inside the widest)."""
    keys = [k for k in (_leaf_key(leaf) for leaf in _leaves(net)) if k is not None and k[0] != "bn"]
    linear = [i for i, k in enumerate(keys) if k[0] == "linear"]
    out: list[tuple[Any, ...]] = []
    for i, k in enumerate(keys):
        if k[0] == "linear":
            out.append(("linear", k[1] if i == linear[0] else None, k[2] if i == linear[-1] else None, k[3]))
        elif k[0] == "input":
            out.append(k)
        else:
            out.append(("activation",))
    return tuple(out)


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
    """K Linear layers: ``weight`` (K, out, in), ``bias`` (K, 1, out); input (K, B, in). Narrower
    members' weights and biases are zero-padded to the widest. The weight is laid out (K, in, out)
    in memory (a transposed view), so that ``baddbmm`` reads it and autograd writes its gradient
    without a transposing copy."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        out = max(layer.out_features for layer in layers)
        inp = max(layer.in_features for layer in layers)
        weight = torch.stack([_padded(layer.weight.detach(), (out, inp)) for layer in layers])
        self.weight = nn.Parameter(weight.transpose(1, 2).contiguous().transpose(1, 2))
        biases = [layer.bias for layer in layers]
        self.bias = (
            nn.Parameter(torch.stack([_padded(b.detach(), (out,)) for b in biases if b is not None]).unsqueeze(1))
            if all(b is not None for b in biases)
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # the same input for every member
            x = x.unsqueeze(0).expand(self.weight.shape[0], -1, -1)
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias, x, self.weight.transpose(1, 2))


def rows_like(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A new tensor of ``t``'s rows ``index`` (dimension 0), laid out in memory as ``t`` is
    (e.g. a transposed weight stays transposed)."""
    picked = t.index_select(0, index.to(t.device))
    strides = t.stride()
    order = sorted(range(t.dim()), key=lambda d: -strides[d])  # outermost dimension first
    inverse = sorted(range(t.dim()), key=lambda d: order[d])
    return picked.permute(order).contiguous().permute(inverse)


def _padded(t: torch.Tensor, shape: tuple[int, ...], fill: float = 0.0) -> torch.Tensor:
    """A copy of ``t`` in the leading corner of a ``shape`` tensor filled with ``fill``."""
    out = torch.full(shape, fill, dtype=t.dtype, device=t.device)
    out[tuple(slice(0, n) for n in t.shape)] = t
    return out


class StackedUnits(nn.Module):
    """Zeroes the units a member does not have (``mask`` (K, 1, F), 1 for a member's own units):
    placed before a Linear whose members have different input widths."""

    mask: torch.Tensor

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        top = max(widths)
        self.register_buffer("mask", (torch.arange(top).view(1, 1, -1) < torch.tensor(list(widths)).view(-1, 1, 1)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class StackedActivation(nn.Module):
    """One activation per member: each run of consecutive members with the same activation is
    computed on its slice of the member dimension."""

    def __init__(self, acts: Sequence[nn.Module]) -> None:
        super().__init__()
        self.acts = list(acts)
        self._runs()

    def _runs(self) -> None:
        runs: list[tuple[int, int, nn.Module]] = []
        for i, act in enumerate(self.acts):
            if runs and _activation_key(runs[-1][2]) == _activation_key(act):
                runs[-1] = (runs[-1][0], i + 1, runs[-1][2])
            else:
                runs.append((i, i + 1, act))
        self.runs = runs

    def keep_members(self, index: torch.Tensor) -> None:
        self.acts = [self.acts[i] for i in index.tolist()]
        self._runs()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.runs) == 1:
            return self.runs[0][2](x)
        parts = x.split([b - a for a, b, _ in self.runs])  # (its backward is one cat, not a zero-filled copy per slice)
        return torch.cat([act(part) for part, (_, _, act) in zip(parts, self.runs)])


def member_runs(flags: Sequence[bool]) -> list[tuple[int, int, bool]]:
    """Consecutive members with the same flag, as ``(start, end, flag)``."""
    runs: list[tuple[int, int, bool]] = []
    for i, flag in enumerate(flags):
        if runs and runs[-1][2] == flag:
            runs[-1] = (runs[-1][0], i + 1, flag)
        else:
            runs.append((i, i + 1, flag))
    return runs


def running_affine(norm: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm of a stacked BatchNorm layer ``norm`` (running statistics (K, C)) as
    x·scale + shift, both flattened to the K·C features side by side: scale 1 and shift 0 on
    the features of members without a BatchNorm at this place (``norm.use`` false)."""
    scale = torch.rsqrt(norm.running_var.reshape(-1) + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.reshape(-1)
    shift = -norm.running_mean.reshape(-1) * scale
    if norm.bias is not None:
        shift = shift + norm.bias.reshape(-1)
    use = norm.use.view(-1, 1).expand_as(norm.running_mean).reshape(-1)
    return torch.where(use, scale, 1.0), torch.where(use, shift, 0.0)


def members_batch_norm(norm: Any, x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
    """``F.batch_norm`` over the features of members ``start:end`` side by side on dimension 1
    ((end - start)·C of them), with those members' rows of ``norm``'s (K, C) affine parameters and
    running statistics flattened to match: each member's channels keep their own statistics (the
    running statistics are updated in place). ``norm`` is a stacked BatchNorm layer."""
    rows = slice(start, end)

    def flat(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[rows].reshape(-1)

    return F.batch_norm(
        x,
        None if norm.running_mean is None else norm.running_mean[rows].view(-1),
        None if norm.running_var is None else norm.running_var[rows].view(-1),
        flat(norm.weight),
        flat(norm.bias),
        norm.training or norm.running_mean is None,
        norm.momentum if norm.momentum is not None else 0.1,
        norm.eps,
    )


class StackedBatchNorm(nn.Module):
    """K BatchNorm1d layers with their own affine parameters and running statistics; one
    ``F.batch_norm`` over the features of each run of consecutive members that have a BatchNorm
    here, laid side by side. Members without one pass their input through untouched (their
    BatchNorm parameters stay unused), so a population ordered by BatchNorm placement normalizes
    each member once, at its own place."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    use: torch.Tensor

    def __init__(self, layers: Sequence[nn.BatchNorm1d | None], features: int = 0) -> None:
        super().__init__()
        first = next(b for b in layers if b is not None)
        features = max(features, *(b.num_features for b in layers if b is not None))
        fresh = nn.BatchNorm1d(features, first.eps, first.momentum, first.affine, first.track_running_stats)
        norms = [b if b is not None else fresh for b in layers]
        self.eps, self.momentum = first.eps, first.momentum
        top = features

        def pad(ts: list[torch.Tensor], fill: float = 0.0) -> torch.Tensor:  # masked units: zero parameters
            return torch.stack([_padded(t.detach(), (top,), fill) for t in ts])

        self.weight = nn.Parameter(pad([b.weight for b in norms])) if first.affine else None
        self.bias = nn.Parameter(pad([b.bias for b in norms])) if first.affine else None
        if first.track_running_stats:
            self.register_buffer("running_mean", pad([b.running_mean for b in norms]))  # type: ignore[misc]
            self.register_buffer("running_var", pad([b.running_var for b in norms], 1.0))  # type: ignore[misc]
        else:
            self.running_mean = self.running_var = None  # type: ignore[assignment]
        self.register_buffer("use", torch.tensor([b is not None for b in layers]))
        self.members_kept()

    def members_kept(self) -> None:
        """Recompute the runs of members with a BatchNorm here (after members were dropped)."""
        self.runs = member_runs(self.use.view(-1).tolist())

    def _norm(self, x: torch.Tensor, start: int, end: int, contiguous: bool = True) -> torch.Tensor:
        m, b, f = x.shape
        out = members_batch_norm(self, x.transpose(0, 1).reshape(b, m * f), start, end)
        out = out.reshape(b, m, f).transpose(0, 1)
        return out.contiguous() if contiguous else out  # contiguous: the next product reads it faster

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.running_mean is not None:
            # one pass over x instead of a transposing copy in, a normalization and a copy out per run
            scale, shift = running_affine(self)
            return torch.addcmul(shift.view(x.shape[0], 1, -1), x, scale.view(x.shape[0], 1, -1))
        if len(self.runs) == 1:
            return self._norm(x, 0, x.shape[0]) if self.runs[0][2] else x
        parts = x.split([e - a for a, e, _ in self.runs])  # (its backward is one cat)
        # (cat writes one contiguous tensor: no copy of each normalized run first)
        return torch.cat([self._norm(part, a, e, contiguous=False) if used else part for part, (a, e, used) in zip(parts, self.runs)])


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
    """Dropout with a keep probability per member (TensorFlow-style: kept units scaled by 1/keep).
    Inside a :class:`StackedNet` the scale (mask/keep) of every dropout layer comes from one draw
    per step (:attr:`scale`); alone, the layer draws its own."""

    keep: torch.Tensor

    def __init__(self, keep: Sequence[float], width: int = 0) -> None:
        super().__init__()
        self.register_buffer("keep", torch.tensor(list(keep), dtype=torch.float32).view(-1, 1, 1))
        self.width = width
        self.scale: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        scale, self.scale = self.scale, None
        if scale is None:
            keep = self.keep.to(x.dtype)
            scale = (torch.rand_like(x) < keep) / keep
        return x * scale


class StackedNet(nn.Module):
    """K networks of one layer graph as one module; ``forward`` maps (B, F) or (K, B, F) to
    (K, B, out). :attr:`roles` gives the role of each parameter (for ``l2_scope``).
    :meth:`inputs` and :meth:`body` split ``forward`` so that a training epoch standardizes its
    data once rather than every step."""

    keep_all: torch.Tensor

    def __init__(self, layers: list[nn.Module], roles: dict[str, str], size: int,
                 sources: list[list[tuple[nn.Module, nn.Module]]] | None = None) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        # per member: (its own Linear/Conv2d/BatchNorm, the stacked layer holding it), for write_member
        self.sources = sources if sources is not None else [[] for _ in range(size)]
        # plain tuples (not submodules): views into self.layers
        self._standardize = tuple(layers[:1]) if layers and isinstance(layers[0], StackedStandardize) else ()
        self._body = tuple(layers[len(self._standardize):])
        self.roles = roles
        self.size = size
        self.drops = [m for m in layers if isinstance(m, StackedDropout)]
        self.masks = DropoutMasks()
        if self.drops and all(d.width for d in self.drops):  # one draw per step for every dropout layer
            self.register_buffer("keep_all", torch.cat([d.keep.expand(-1, 1, d.width) for d in self.drops], 2))
        else:
            self.drops = []

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The members' standardized inputs (K, N, F); ``x`` itself (N, F) when no member
        standardizes and the members share it."""
        return self._standardize[0](x) if self._standardize else x

    def body(self, h: torch.Tensor) -> torch.Tensor:
        """Everything after :meth:`inputs`: (N, F) or (K, N, F) to (K, N, out)."""
        if h.dim() == 2:
            h = h.unsqueeze(0).expand(self.size, *h.shape)
        if self.training and self.drops:
            scale = self.masks.scales_(h.new_empty(h.shape[0], h.shape[1], self.keep_all.shape[2]), self.keep_all)
            start = 0
            for drop in self.drops:
                drop.scale = scale[..., start:start + drop.width]
                start += drop.width
        for layer in self._body:
            h = layer(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.inputs(x))

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
                        new = nn.Parameter(rows_like(p.detach(), index))
                        module._parameters[name] = new
                        replaced[id(p)] = new
                for name, buf in list(module._buffers.items()):
                    if buf is not None:
                        module._buffers[name] = rows_like(buf, index)
                if isinstance(module, StackedActivation):
                    module.keep_members(index)
                elif isinstance(module, StackedBatchNorm):  # its runs of members
                    module.members_kept()
        self.sources = [self.sources[i] for i in index.tolist()]
        self.size = int(index.numel())
        return replaced

    @torch.no_grad()
    def write_member(self, pos: int) -> None:
        """Copy member ``pos``'s trained parameters and BatchNorm statistics back into the
        single network it was stacked from (its own widths: the masked units are left out)."""
        for single, stacked in self.sources[pos]:
            if isinstance(single, nn.Conv2d):  # a StackedConv2d: (K, out, in, kh, kw) kernels, (K, out) biases
                single.weight.copy_(cast(nn.Parameter, stacked.weight)[pos])
                if single.bias is not None:
                    single.bias.copy_(cast(nn.Parameter, stacked.bias)[pos])
                continue
            if isinstance(single, nn.Linear):
                out, inp = single.weight.shape
                linear = cast(StackedLinear, stacked)
                single.weight.copy_(linear.weight[pos, :out, :inp])
                if single.bias is not None and linear.bias is not None:
                    single.bias.copy_(linear.bias[pos, 0, :out])
                continue
            f = cast(nn.BatchNorm1d, single).num_features  # BatchNorm1d or BatchNorm2d: (K, features)
            for name in ("weight", "bias", "running_mean", "running_var"):
                mine, theirs = getattr(single, name), getattr(stacked, name)
                if mine is not None and theirs is not None:
                    mine.copy_(theirs[pos, :f])


def stack(nets: Sequence[nn.Module]) -> StackedNet:
    """Stack K single networks with equal :func:`signature`; raises :class:`Unsupported`."""
    if not nets:
        raise ValueError("a population needs at least one member")
    if len({signature(n) for n in nets}) != 1:
        raise Unsupported("the members' layer graphs differ")
    parsed = [_slots(n) for n in nets]
    layers: list[nn.Module] = []
    roles: dict[str, str] = {}
    sources: list[list[tuple[nn.Module, nn.Module]]] = [[] for _ in nets]
    width = 0  # units of the latest Linear (the widest member's)
    for i in range(len(parsed[0])):
        column = [slots[i] for slots in parsed]
        first = column[0].layer
        name = str(len(layers))
        if isinstance(first, (nn.Identity, Standardize)):
            standardized = [c.layer for c in column if isinstance(c.layer, Standardize)]
            if standardized:
                layers.append(StackedStandardize([c.layer for c in column], cast(Standardize, standardized[0]).mean.numel()))
        elif isinstance(first, nn.Linear):
            linears = [cast(nn.Linear, c.layer) for c in column]
            if len({lin.in_features for lin in linears}) > 1:  # zero the units narrower members lack
                layers.append(StackedUnits([lin.in_features for lin in linears]))
            name = str(len(layers))
            layer = StackedLinear(linears)
            width = layer.weight.shape[1]
            roles[f"layers.{name}.weight"] = ROLE_WEIGHT
            if layer.bias is not None:
                roles[f"layers.{name}.bias"] = ROLE_BIAS
            layers.append(layer)
            for mine, c in zip(sources, column):
                mine.append((c.layer, layer))
        elif len({_activation_key(c.layer) for c in column}) == 1:  # one activation for every member
            layers.append(type(first)(**_activation_kwargs(first)))
        else:
            layers.append(StackedActivation([type(c.layer)(**_activation_kwargs(c.layer)) for c in column]))
        if any(c.norm is not None for c in column):
            name = str(len(layers))
            bn = StackedBatchNorm([c.norm for c in column], width)
            if bn.weight is not None:
                roles[f"layers.{name}.weight"] = roles[f"layers.{name}.bias"] = ROLE_NORM
            layers.append(bn)
            for mine, c in zip(sources, column):
                if c.norm is not None:
                    mine.append((c.norm, bn))
        if any(c.keep < 1.0 for c in column):
            layers.append(StackedDropout([c.keep for c in column], width))
    return StackedNet(layers, roles, len(nets), sources)


def _activation_key(module: nn.Module) -> tuple[Any, ...]:
    return (type(module).__name__, *sorted(_activation_kwargs(module).items()))


def _activation_kwargs(module: nn.Module) -> dict[str, Any]:
    if isinstance(module, nn.LeakyReLU):
        return {"negative_slope": module.negative_slope}
    if isinstance(module, nn.GELU):
        return {"approximate": module.approximate}
    return {}
