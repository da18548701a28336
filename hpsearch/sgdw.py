"""SGD with decoupled weight decay (Loshchilov & Hutter's SGDW)."""

from __future__ import annotations

from typing import Any

import torch


class SGDW(torch.optim.SGD):
    """SGD (with momentum) and decoupled weight decay, as in Loshchilov & Hutter's SGDW: each step
    ``p <- p - lr·λ·p`` is applied to the parameter apart from the gradient step, so the decay
    never enters the momentum buffer. A group's ``weight_decay`` is that λ (PyTorch's own SGD
    would add λ·p to the gradient instead: coupled L2)."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One step: the decoupled decay of every parameter with a gradient, then plain SGD."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        decays = [group["weight_decay"] for group in self.param_groups]
        for group in self.param_groups:
            lam = group["weight_decay"]
            if lam:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1.0 - group["lr"] * lam)
            group["weight_decay"] = 0.0
        try:
            super().step()
        finally:
            for group, lam in zip(self.param_groups, decays):
                group["weight_decay"] = lam
        return loss
