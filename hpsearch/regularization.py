"""The Regularization value object and the helpers that apply it to any PyTorch model.

Every regularization parameter means the same thing for every model because the helpers pick
parameters by their role (nanoGPT-style parameter groups), not by model-specific names:

- :func:`scoped_parameters` — the parameters an ``l2_scope`` covers;
- :func:`parameter_groups` / :func:`make_optimizer` — decoupled decay through optimizer groups
  (:class:`SGDW` for SGD);
- :func:`l2_penalty` — the ``l2_mode: loss`` term, λ·Σw²/2 over the in-scope parameters;
- :func:`dense_block`, :func:`conv_block`, :func:`dropout`, :func:`activation`,
  :func:`input_layer` — layer builders honouring ``batchnorm``, ``keep_prob``, ``activation``
  and ``input_norm``.

A user's own LightningModule can call these directly (see docs/tasks.md, "Reusing the regularization helpers").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, cast

import torch
from torch import nn

from hpsearch.params import REGULARIZATION_DEFAULTS, REGULARIZATION_PARAMS, SINGLE_INPUT_BATCHNORM
from hpsearch.sgdw import SGDW

__all__ = [
    "Regularization",
    "scoped_parameters",
    "parameter_groups",
    "make_optimizer",
    "SGDW",
    "l2_penalty",
    "decay_shrinkage",
    "activation",
    "dropout",
    "dense_block",
    "conv_block",
    "input_layer",
    "Standardize",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


@dataclass(frozen=True)
class Regularization:
    """The regularization settings of one trial (each field's meaning: ``hpsearch.params.REGULARIZATION_PARAMS``)."""

    learning_rate: float = REGULARIZATION_DEFAULTS["learning_rate"]
    weight_decay: float = REGULARIZATION_DEFAULTS["weight_decay"]
    l2_mode: str = REGULARIZATION_DEFAULTS["l2_mode"]
    l2_scope: str = REGULARIZATION_DEFAULTS["l2_scope"]
    keep_prob: float = REGULARIZATION_DEFAULTS["keep_prob"]
    batchnorm: str = REGULARIZATION_DEFAULTS["batchnorm"]
    activation: str = REGULARIZATION_DEFAULTS["activation"]
    optimizer: str = REGULARIZATION_DEFAULTS["optimizer"]
    momentum: float = REGULARIZATION_DEFAULTS["momentum"]
    input_norm: str = REGULARIZATION_DEFAULTS["input_norm"]

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _checked(f.name, getattr(self, f.name)))

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the settings."""
        return asdict(self)


def _checked(name: str, value: Any) -> Any:
    """``value`` checked against the parameter table, or ``ValueError("name: got ...")``."""
    try:
        return REGULARIZATION_PARAMS[name].check(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def scoped_parameters(model: nn.Module, scope: str) -> list[nn.Parameter]:
    """The trainable parameters that ``l2_scope`` = ``scope`` covers.

    ``all``: every trainable parameter. ``weights``: weight matrices and kernels (ndim >= 2)
    outside normalization layers — no biases, no norm scales. ``fc``: weight and bias of every
    ``nn.Linear``.
    """
    _checked("l2_scope", scope)
    if scope == "all":
        return [p for p in model.parameters() if p.requires_grad]
    chosen: list[nn.Parameter] = []
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if scope == "weights":
            if not isinstance(module, _NORM_TYPES):
                chosen.extend(p for p in own if p.ndim >= 2)
        elif isinstance(module, nn.Linear):  # scope "fc"
            chosen.extend(own)
    return chosen


def l2_penalty(model: nn.Module, reg: Regularization) -> torch.Tensor:
    """The ``l2_mode: loss`` term λ·Σw²/2 over the in-scope parameters (0 otherwise).

    Same formula as TensorFlow's ``weight_decay * tf.nn.l2_loss(w)`` summed over parameters.
    """
    params = scoped_parameters(model, reg.l2_scope) if reg.l2_mode == "loss" else []
    if not params or reg.weight_decay == 0.0:
        first = next(model.parameters(), None)
        return torch.zeros((), device=first.device if first is not None else None)
    squares = cast(torch.Tensor, sum(p.pow(2).sum() for p in params))
    return reg.weight_decay * squares / 2


def parameter_groups(
    model: nn.Module,
    reg: Regularization,
    extra_groups: Iterable[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: in-scope parameters decay, the rest do not.

    With ``l2_mode: decoupled`` the in-scope group gets ``weight_decay = λ``; with
    ``l2_mode: loss`` every group gets 0 (the penalty is in the loss instead). Each group carries
    a ``"name"`` key ("decay" / "no_decay"). ``extra_groups`` (e.g. a head with its own learning
    rate) take their parameters out of the default groups and are split by ``l2_scope`` the
    same way: ``NAME`` holds the in-scope parameters (decayed), ``NAME_no_decay`` the others,
    both with the group's other options. An extra group that sets ``weight_decay`` itself is
    kept whole with that value.
    """
    extra_groups = [dict(g) for g in extra_groups]
    taken = {id(p) for g in extra_groups for p in g["params"]}
    in_scope = {id(p) for p in scoped_parameters(model, reg.l2_scope)}
    decay = reg.weight_decay if reg.l2_mode == "decoupled" else 0.0
    decayed: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad or id(p) in taken:
            continue
        (decayed if id(p) in in_scope else plain).append(p)
    groups = [
        {"name": "decay", "params": decayed, "weight_decay": decay},
        {"name": "no_decay", "params": plain, "weight_decay": 0.0},
    ]
    extra = [h for g in extra_groups for h in _scoped_group(g, in_scope, decay)]
    return [g for g in groups + extra if g["params"]]


def _scoped_group(group: dict[str, Any], in_scope: set[int], decay: float) -> list[dict[str, Any]]:
    """A custom group as is when it sets ``weight_decay``, else split by scope: ``NAME`` with
    the in-scope parameters (decayed by ``decay``), ``NAME_no_decay`` with the others."""
    if "weight_decay" in group:
        return [group]
    params, name = list(group["params"]), str(group.get("name", "extra"))
    return [{**group, "name": name, "params": [p for p in params if id(p) in in_scope], "weight_decay": decay},
            {**group, "name": f"{name}_no_decay", "params": [p for p in params if id(p) not in in_scope], "weight_decay": 0.0}]


def make_optimizer(
    model: nn.Module,
    reg: Regularization,
    groups: list[dict[str, Any]] | None = None,
) -> torch.optim.Optimizer:
    """The optimizer ``reg.optimizer`` over :func:`parameter_groups` (or the given groups).

    Every optimizer applies a group's ``weight_decay`` λ decoupled from the gradient,
    ``p <- p - lr·λ·p`` per step: ``adamw`` is AdamW; ``adam`` is Adam with
    ``decoupled_weight_decay=True`` (so ``l2_mode: decoupled`` means the same for both); ``sgd``
    is :class:`SGDW` with ``reg.momentum``. (``l2_mode: loss`` puts λ·Σw²/2 in the loss instead,
    which for SGD is classic coupled L2 and for Adam is scaled by the adaptive step.)
    """
    if groups is None:
        groups = parameter_groups(model, reg)
    else:  # a group without weight_decay gets exactly what its scope says (never AdamW's 0.01)
        in_scope = {id(p) for p in scoped_parameters(model, reg.l2_scope)}
        decay = reg.weight_decay if reg.l2_mode == "decoupled" else 0.0
        groups = [h for g in groups for h in _scoped_group(dict(g), in_scope, decay) if h["params"]]
    lr = reg.learning_rate
    if reg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if reg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, decoupled_weight_decay=True)
    return SGDW(groups, lr=lr, momentum=reg.momentum)  # "sgd" (reg is validated)


def decay_shrinkage(reg: Regularization, steps: int, groups: Iterable[dict[str, Any]] = ()) -> float | None:
    """Total decoupled decay of a run: lr·λ·steps (with ``p <- p - lr·λ·p`` per step the
    weights shrink by a factor (1 - lr·λ)^steps ≈ exp(-lr·λ·steps) apart from the gradient),
    with each optimizer group's own lr and λ when ``groups`` are given (the largest over the
    groups); ``None`` for ``l2_mode: loss``, where the decay is not a fixed factor. Values far
    below ~0.01 mean the decay cannot have changed the model."""
    if reg.l2_mode != "decoupled":
        return None
    rates = [float(g.get("lr", reg.learning_rate)) * float(g.get("weight_decay", 0.0)) for g in groups]
    return max(rates, default=reg.learning_rate * reg.weight_decay) * steps


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of ``params.ACTIVATIONS``)."""
    return _ACTIVATIONS[_checked("activation", name)]()


def dropout(keep_prob: float) -> nn.Dropout | None:
    """``nn.Dropout(p = 1 - keep_prob)``, or ``None`` when ``keep_prob`` is 1.0 (no module)."""
    _checked("keep_prob", keep_prob)
    return None if keep_prob == 1.0 else nn.Dropout(p=1.0 - keep_prob)


def _normalized(layer: nn.Module, norm: nn.Module, reg: Regularization) -> list[nn.Module]:
    act = activation(reg.activation)
    if reg.batchnorm == "before_activation":
        return [layer, norm, act]
    if reg.batchnorm == "after_activation":
        return [layer, act, norm]
    if reg.batchnorm == "none":
        return [layer, act]
    raise ValueError(
        f"batchnorm: {reg.batchnorm!r} applies to two-input models only; "
        f"valid here: {', '.join(SINGLE_INPUT_BATCHNORM)}"
    )


def dense_block(in_features: int, out_features: int, reg: Regularization) -> nn.Sequential:
    """Linear → activation with BatchNorm1d placed as ``reg.batchnorm`` says, then dropout."""
    layers = _normalized(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), reg)
    drop = dropout(reg.keep_prob)
    return nn.Sequential(*layers, *([drop] if drop is not None else []))


def conv_block(
    in_channels: int,
    out_channels: int,
    reg: Regularization,
    kernel_size: int = 3,
    pool: int | None = 2,
) -> nn.Sequential:
    """Conv2d ('same' padding) → activation with BatchNorm2d as ``reg.batchnorm`` says,
    then max-pooling (``pool``) and dropout."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    layers = _normalized(conv, nn.BatchNorm2d(out_channels), reg)
    if pool:
        layers.append(nn.MaxPool2d(pool))
    drop = dropout(reg.keep_prob)
    return nn.Sequential(*layers, *([drop] if drop is not None else []))


class Standardize(nn.Module):
    """Fixed feature standardization (x - mean) / std with statistics stored as buffers.

    A feature that is constant in the training split (std 0) is only centred.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", torch.where(std > 0, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def input_layer(reg: Regularization, train_x: torch.Tensor) -> nn.Module:
    """``Standardize`` fitted on the training split only (``input_norm: standardize``),
    or ``nn.Identity`` (``input_norm: none``). Statistics are per feature (over dim 0)."""
    if _checked("input_norm", reg.input_norm) == "none":
        return nn.Identity()
    return Standardize(train_x.mean(dim=0), train_x.std(dim=0))
