"""Stacked CNNs: K :class:`~hpsearch.models.cnn.SmallCNN` members as one :class:`StackedNet`.

The members' images travel side by side on the channel axis: member k's channels are
``k*C .. (k+1)*C - 1`` of one ``(B, K*C, H, W)`` tensor in channels-last memory. A conv layer
is one grouped convolution (``groups=K``) over the members' kernels stacked on a leading
member dimension; BatchNorm2d over the K*C channels keeps statistics per member and channel,
as each member alone would; max-pooling is per channel anyway; dropout draws each member's
mask with its own keep probability. After the conv blocks the features go to the member
layout ``(K, B, F)`` of :mod:`hpsearch.population.stacked` (flattened in the single model's
order, channel, row, column) and the FC part is stacked by :func:`hpsearch.population.stacked.stack`.

Members may differ in ``batchnorm`` placement, ``keep_prob``, ``input_norm`` and every
optimizer setting; the layer graph (channels, widths, kernels, activation) must be equal.
Parameter roles (which ``l2_scope`` covers what) come from
:func:`hpsearch.regularization.scoped_parameters` on a member, so a member's decay and L2 term
cover exactly what they cover for a single trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, cast

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.models.cnn import SmallCNN
from hpsearch.population.dropout_masks import DropoutMasks
from hpsearch.population.stacked import (
    ROLE_BIAS,
    ROLE_CONV_BIAS,
    ROLE_CONV_WEIGHT,
    ROLE_NORM,
    ROLE_WEIGHT,
    StackedNet,
    StackedStandardize,
    Unsupported,
    members_batch_norm,
    running_affine,
    signature,
    stack,
)
from hpsearch.regularization import Standardize, scoped_parameters

__all__ = ["stack_cnn", "is_cnn", "cnn_signature", "StackedConv2d", "StackedBatchNorm2d", "MemberDropout2d"]

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU)

#: The role of a parameter by the ``l2_scope`` values that cover it for a single trial.
_ROLE_BY_SCOPES = {
    frozenset({"all", "weights", "fc"}): ROLE_WEIGHT,
    frozenset({"all", "fc"}): ROLE_BIAS,
    frozenset({"all", "weights"}): ROLE_CONV_WEIGHT,
}


def is_cnn(net: nn.Module) -> bool:
    """Whether ``net`` is a :class:`SmallCNN` (exactly: a subclass may change ``forward``)."""
    return type(net) is SmallCNN


class ToImages(nn.Module):
    """(K, B, side²) member features → (B, K, side, side) images, channels-last in memory."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, b, _ = x.shape
        # (B, side, side, K) in memory is (B, K, side, side) channels-last: one copy
        return x.permute(1, 2, 0).reshape(b, self.side, self.side, k).permute(0, 3, 1, 2)


class FromImages(nn.Module):
    """(B, K*C, H, W) → (K, B, C*H*W), each member's features in ``flatten(1)`` order."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, kc, h, w = x.shape
        k = kc // self.channels
        return x.reshape(b, k, self.channels * h * w).transpose(0, 1)


class StackedConv2d(nn.Module):
    """K Conv2d layers as one grouped convolution: ``weight`` (K, out, in, kh, kw), ``bias``
    (K, out); input (B, K*in, H, W), output (B, K*out, H', W')."""

    def __init__(self, layers: Sequence[nn.Conv2d]) -> None:
        super().__init__()
        first = layers[0]
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.weight = nn.Parameter(torch.stack([c.weight.detach() for c in layers]).clone())
        biases = [c.bias for c in layers]
        self.bias = (nn.Parameter(torch.stack([b.detach() for b in biases if b is not None]).clone())
                     if all(b is not None for b in biases) else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, out, inp, kh, kw = self.weight.shape
        x = x.contiguous(memory_format=torch.channels_last)
        weight = self.weight.reshape(k * out, inp, kh, kw)
        bias = None if self.bias is None else self.bias.reshape(k * out)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups=k)


class StackedBatchNorm2d(nn.Module):
    """K BatchNorm2d layers over the members' channels side by side: affine parameters and
    running statistics (K, C). Members without a BatchNorm at this place pass their input
    through (their BatchNorm parameters stay unused)."""

    running_mean: torch.Tensor
    running_var: torch.Tensor
    use: torch.Tensor

    def __init__(self, layers: Sequence[nn.BatchNorm2d | None]) -> None:
        super().__init__()
        first = next(b for b in layers if b is not None)
        fresh = nn.BatchNorm2d(first.num_features, first.eps, first.momentum, first.affine, first.track_running_stats)
        norms = [b if b is not None else fresh for b in layers]
        self.eps, self.momentum = first.eps, first.momentum
        self.weight = nn.Parameter(torch.stack([b.weight.detach() for b in norms]).clone()) if first.affine else None
        self.bias = nn.Parameter(torch.stack([b.bias.detach() for b in norms]).clone()) if first.affine else None
        if first.track_running_stats:
            self.register_buffer("running_mean", torch.stack([b.running_mean for b in norms]).clone())  # type: ignore[misc]
            self.register_buffer("running_var", torch.stack([b.running_var for b in norms]).clone())  # type: ignore[misc]
        else:
            self.running_mean = self.running_var = None  # type: ignore[assignment]
        self.register_buffer("use", torch.tensor([b is not None for b in layers]))
        self.everyone = all(b is not None for b in layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.everyone and x.device.type == "cpu" and x.dtype == torch.float32 and self.weight is not None:
            # members with and without a BatchNorm here: one affine pass (measured faster on the
            # CPU than normalizing every member and blending; with every member normalized the
            # native kernel is faster)
            return _members_batch_norm_2d(self, x)
        out = members_batch_norm(self, x)
        if self.everyone:
            return out
        # a blend rather than torch.where: where on channels-last tensors with a per-channel
        # mask was the slowest op of the whole step (measured)
        k = self.use.numel()
        use = self.use.to(x.dtype).view(k, 1).expand(k, x.shape[1] // k).reshape(1, -1, 1, 1)
        return torch.lerp(x, out, use)


def _members_batch_norm_2d(norm: StackedBatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``norm`` applied to (B, K*C, H, W) ``x`` where only some members have a BatchNorm: each
    channel is x·scale + shift, with scale 1 and shift 0 for the channels of members without
    one. In training (or without running statistics) scale and shift come from the batch
    (:class:`_ChannelsBatchNorm`) and the running statistics are updated as ``F.batch_norm``
    updates them; in eval mode they come from the running statistics."""
    if not norm.training and norm.running_mean is not None:
        scale, shift = running_affine(norm)
        return torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))
    weight, bias = cast(torch.Tensor, norm.weight).reshape(-1), cast(torch.Tensor, norm.bias).reshape(-1)
    k = norm.use.numel()
    use = norm.use.view(k, 1).expand(k, x.shape[1] // k).reshape(-1)
    y, mean, var = _ChannelsBatchNorm.apply(x, weight, bias, use, norm.eps)
    if norm.training and norm.running_mean is not None:
        n = x.numel() // x.shape[1]
        momentum = norm.momentum if norm.momentum is not None else 0.1
        with torch.no_grad():  # as F.batch_norm: the running variance is the unbiased one
            norm.running_mean.view(-1).mul_(1 - momentum).add_(mean, alpha=momentum)
            norm.running_var.view(-1).mul_(1 - momentum).add_(var * (n / (n - 1)), alpha=momentum)
    return y


class _ChannelsBatchNorm(torch.autograd.Function):
    """Batch statistics BatchNorm of (B, C, H, W) ``x`` on the channels where ``use`` (C,) is
    true, identity on the others, computed on x as an (B·H·W, C) matrix (a view when ``x`` is
    channels-last). Returns (y, batch mean, biased batch variance); the gradient is the
    BatchNorm gradient on the used channels, the identity on the others."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, use: torch.Tensor,
                eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(-1, c)
        n = rows.shape[0]
        if n == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        mean = rows.sum(0).div_(n)
        centered = rows - mean
        var = centered.mul_(centered).sum(0).div_(n)
        invstd = (var + eps).rsqrt_()
        scale = torch.where(use, invstd * weight, 1.0)
        shift = torch.where(use, bias - mean * scale, 0.0)
        y = torch.addcmul(shift, rows, scale).view(b, h, w, c).permute(0, 3, 1, 2)
        ctx.save_for_backward(rows, mean, invstd, scale, use)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dy: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        rows, mean, invstd, scale, use = ctx.saved_tensors
        b, c, h, w = dy.shape
        grad = dy.permute(0, 2, 3, 1).reshape(-1, c)
        n = rows.shape[0]
        dbias = grad.sum(0)
        dweight = invstd * ((grad * rows).sum(0) - mean * dbias)  # Σ dy·x̂
        # dx = scale·(dy - Σdy/n - x̂·Σ(dy·x̂)/n), written as dy·scale + x·slope + offset
        slope = torch.where(use, -scale * invstd * dweight / n, 0.0)
        offset = torch.where(use, scale * (invstd * dweight * mean - dbias) / n, 0.0)
        dx = torch.addcmul(offset, grad, scale).addcmul_(rows, slope).view(b, h, w, c).permute(0, 3, 1, 2)
        return dx, torch.where(use, dweight, 0.0), torch.where(use, dbias, 0.0), None, None


class MemberDropout2d(nn.Module):
    """Element-wise dropout (``nn.Dropout`` on conv features) with a keep probability per
    member; input (B, K*C, H, W). Kept units are scaled by 1/keep."""

    keep: torch.Tensor

    def __init__(self, keep: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("keep", torch.tensor(list(keep), dtype=torch.float32))
        self.masks = DropoutMasks()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        k = self.keep.numel()
        keep = self.keep.to(x.dtype).repeat_interleave(x.shape[1] // k).view(1, -1, 1, 1)  # each member's channels
        return x * self.masks.scales_(torch.empty_like(x), keep)  # x's memory format (channels-last): no reshaping copy


@dataclass
class _Slot:
    """One layer of a conv block with the BatchNorm and dropout that follow it."""

    layer: nn.Module
    name: str
    norm: nn.BatchNorm2d | None = None
    norm_name: str = ""
    keep: float = 1.0


def _slots(block: nn.Module, prefix: str) -> list[_Slot]:
    """A :func:`~hpsearch.regularization.conv_block`'s layers as slots (the BatchNorm and the
    dropout attach to the layer before them, as in :mod:`hpsearch.population.stacked`)."""
    if not isinstance(block, nn.Sequential):
        raise Unsupported(f"{type(block).__name__} is not an nn.Sequential conv block")
    slots: list[_Slot] = []
    for name, leaf in block.named_children():
        full = f"{prefix}.{name}"
        if isinstance(leaf, nn.Dropout):
            if not slots:
                raise Unsupported("dropout before the first layer cannot be stacked")
            slots[-1].keep *= 1.0 - leaf.p
        elif isinstance(leaf, nn.BatchNorm2d):
            if not slots or slots[-1].norm is not None or slots[-1].keep < 1.0:
                raise Unsupported("this BatchNorm placement cannot be stacked")
            slots[-1].norm, slots[-1].norm_name = leaf, full
        elif isinstance(leaf, (nn.Conv2d, nn.MaxPool2d, *_ACTIVATIONS)):
            slots.append(_Slot(leaf, full))
        else:
            raise Unsupported(f"layer {type(leaf).__name__} cannot be stacked in a conv block")
    return slots


def _key(layer: nn.Module) -> tuple[Any, ...]:
    """What must match between members at one slot."""
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise Unsupported("only plain zero-padded, ungrouped Conv2d layers can be stacked")
        return ("conv", layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                layer.dilation, layer.bias is not None)
    if isinstance(layer, nn.MaxPool2d):
        return ("pool", layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
    extra = getattr(layer, "negative_slope", None) if isinstance(layer, nn.LeakyReLU) else getattr(layer, "approximate", None)
    return (type(layer).__name__, extra)


def _copy_activation(layer: nn.Module) -> nn.Module:
    if isinstance(layer, nn.LeakyReLU):
        return nn.LeakyReLU(layer.negative_slope)
    if isinstance(layer, nn.GELU):
        return nn.GELU(layer.approximate)
    return type(layer)()


class _Builder:
    """Collects the stacked layers and each stacked parameter's role."""

    def __init__(self, nets: Sequence[SmallCNN]) -> None:
        self.nets = nets
        self.layers: list[nn.Module] = []
        self.roles: dict[str, str] = {}
        # per member: (its own Conv2d/BatchNorm2d/Linear/BatchNorm1d, the stacked layer), for write_member
        self.sources: list[list[tuple[nn.Module, nn.Module]]] = [[] for _ in nets]
        # the scopes covering each of member 0's parameters, as a single trial decides them
        named = dict(nets[0].named_parameters())
        self.scopes: dict[str, set[str]] = {name: set() for name in named}
        for scope in ("all", "weights", "fc"):
            chosen = {id(p) for p in scoped_parameters(nets[0], scope)}
            for name, p in named.items():
                if id(p) in chosen:
                    self.scopes[name].add(scope)

    def add(self, layer: nn.Module, roles: dict[str, str]) -> None:
        """Append ``layer`` with the roles of its parameters (by attribute name)."""
        index = len(self.layers)
        self.layers.append(layer)
        for own, role in roles.items():
            if getattr(layer, own, None) is not None:
                self.roles[f"layers.{index}.{own}"] = role

    def role(self, member_name: str) -> str:
        """The role of member 0's parameter ``member_name``, from the scopes that cover it."""
        return _ROLE_BY_SCOPES.get(frozenset(self.scopes[member_name]), ROLE_CONV_BIAS)

    def conv_block(self, prefix: str) -> int:
        """Stack the members' ``prefix`` conv blocks; returns the block's output channels."""
        columns = [_slots(getattr(net, prefix), prefix) for net in self.nets]
        if len({tuple(_key(s.layer) for s in column) for column in columns}) != 1:
            raise Unsupported("the members' conv blocks differ")
        channels = 0
        for i in range(len(columns[0])):
            column = [c[i] for c in columns]
            first = column[0].layer
            if isinstance(first, nn.Conv2d):
                channels = first.out_channels
                name = column[0].name
                conv = StackedConv2d([cast(nn.Conv2d, c.layer) for c in column])
                self.add(conv, {"weight": self.role(f"{name}.weight"), "bias": self.role(f"{name}.bias") if first.bias is not None else ""})
                for k, c in enumerate(column):
                    self.sources[k].append((c.layer, conv))
            elif isinstance(first, nn.MaxPool2d):
                self.layers.append(nn.MaxPool2d(first.kernel_size, first.stride, first.padding, first.dilation,
                                                ceil_mode=first.ceil_mode))
            else:
                self.layers.append(_copy_activation(first))
            if any(c.norm is not None for c in column):
                norm = StackedBatchNorm2d([c.norm for c in column])
                self.add(norm, {"weight": ROLE_NORM, "bias": ROLE_NORM})
                for k, c in enumerate(column):
                    if c.norm is not None:
                        self.sources[k].append((c.norm, norm))
            if any(c.keep < 1.0 for c in column):
                self.layers.append(MemberDropout2d([c.keep for c in column]))
        return channels

    def dense(self) -> None:
        """Stack ``fc1`` and ``fc2`` with the MLP stacker, keeping its roles."""
        inner = stack([nn.Sequential(net.fc1, net.fc2) for net in self.nets])
        offset = len(self.layers)
        for name, role in inner.roles.items():
            _, index, own = name.split(".")
            self.roles[f"layers.{int(index) + offset}.{own}"] = role
        self.layers.extend(inner.layers)
        for mine, theirs in zip(self.sources, inner.sources):
            mine.extend(theirs)


def cnn_signature(net: nn.Module) -> tuple[Any, ...]:
    """What :class:`SmallCNN` members stacked together must share: the image size, the layers of
    both conv blocks (BatchNorm and dropout may differ per member) and the dense part's
    :func:`~hpsearch.population.stacked.signature`; raises :class:`Unsupported`."""
    if not is_cnn(net):
        raise Unsupported(f"{type(net).__name__} is not a SmallCNN")
    cnn = cast(SmallCNN, net)
    blocks = tuple(tuple(_key(slot.layer) for slot in _slots(getattr(cnn, name), name)) for name in ("conv1", "conv2"))
    return ("cnn", cnn.side, blocks, signature(nn.Sequential(cnn.fc1, cnn.fc2)))


def stack_cnn(nets: Sequence[nn.Module]) -> StackedNet:
    """Stack K :class:`SmallCNN` members with equal layer graphs; raises :class:`Unsupported`."""
    if not nets:
        raise ValueError("a population needs at least one member")
    if not all(is_cnn(n) for n in nets):
        raise Unsupported("not every member is a SmallCNN")
    cnns = [cast(SmallCNN, n) for n in nets]
    if len({n.side for n in cnns}) != 1:
        raise Unsupported("the members' image sizes differ")
    build = _Builder(cnns)
    inputs = [n.input for n in cnns]
    if any(isinstance(layer, Standardize) for layer in inputs):
        build.layers.append(StackedStandardize(inputs, cnns[0].side ** 2))
    elif not all(isinstance(layer, nn.Identity) for layer in inputs):
        raise Unsupported("unknown input layer")
    build.layers.append(ToImages(cnns[0].side))
    build.conv_block("conv1")
    channels = build.conv_block("conv2")
    build.layers.append(FromImages(channels))
    build.dense()
    return StackedNet(build.layers, build.roles, len(cnns), build.sources)
