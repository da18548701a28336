"""Weight norms of the layers whose output goes into a BatchNorm.

With batchnorm after a layer (directly, or after a ReLU, which is positively homogeneous), the
layer's function is unchanged when its weights are scaled: L2 on those weights changes only
their norm, and with it the effective learning rate (van Laarhoven 2017; Zhang et al. 2019).
The norms show whether weight decay acted on them.
"""

from __future__ import annotations

from torch import nn

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity)


def weight_norms_before_batchnorm(net: nn.Module) -> dict[str, float]:
    """``{module name: Frobenius norm of its weight}`` for every Linear/Conv layer whose next
    module in its ``nn.Sequential`` is a BatchNorm (possibly after a ReLU / LeakyReLU)."""
    out: dict[str, float] = {}
    for name, module in net.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for i, (child_name, child) in enumerate(children):
            if not isinstance(child, _LAYERS):
                continue
            rest = [c for _, c in children[i + 1:]]
            while rest and isinstance(rest[0], _HOMOGENEOUS):
                rest = rest[1:]
            if rest and isinstance(rest[0], _NORMS):
                out[f"{name}.{child_name}" if name else child_name] = float(child.weight.detach().norm())
    return out
