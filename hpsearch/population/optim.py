"""One optimizer step for a whole population, every member with its own settings.

:class:`PopulationOptimizer` updates stacked parameters (leading member dimension) exactly as
:func:`hpsearch.regularization.make_optimizer` would update each member alone: AdamW, Adam with
decoupled weight decay (the same update) or SGDW (SGD with momentum and decoupled decay), per-member learning rate, weight
decay, momentum, ``l2_mode`` and ``l2_scope``. :meth:`PopulationOptimizer.penalty` is the
per-member ``l2_mode: loss`` term λ·Σw²/2 over each member's in-scope parameters.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from hpsearch.population.stacked import ROLE_BIAS, ROLE_CONV_BIAS, ROLE_CONV_WEIGHT, ROLE_NORM, ROLE_WEIGHT
from hpsearch.regularization import Regularization

__all__ = ["PopulationOptimizer", "in_scope"]

BETAS = (0.9, 0.999)
EPS = 1e-8


def in_scope(role: str, scope: str) -> bool:
    """Whether ``l2_scope`` = ``scope`` covers a parameter of ``role`` (see ``scoped_parameters``)."""
    if scope == "all":
        return True
    if scope == "weights":
        return role in (ROLE_WEIGHT, ROLE_CONV_WEIGHT)
    return role in (ROLE_WEIGHT, ROLE_BIAS)  # "fc"


def _column(values: Sequence[float], device: torch.device, ndim: int) -> torch.Tensor:
    """A (K, 1, ..., 1) tensor broadcasting over a stacked parameter of ``ndim`` dimensions."""
    return torch.tensor(list(values), dtype=torch.float32, device=device).view(-1, *([1] * (ndim - 1)))


class PopulationOptimizer(torch.optim.Optimizer):
    """Vectorized AdamW/Adam/SGD over stacked parameters with per-member settings.

    ``params`` pairs each stacked parameter with its role (``ROLE_WEIGHT`` / ``ROLE_BIAS`` /
    ``ROLE_NORM``); ``regs`` holds one :class:`Regularization` per member, in stacking order.
    """

    def __init__(self, params: Sequence[tuple[torch.nn.Parameter, str]], regs: Sequence[Regularization]) -> None:
        self.roles = {id(p): role for p, role in params}
        super().__init__([p for p, _ in params], {})
        self.regs = list(regs)
        self.step_count = 0
        for _p, role in params:
            if role not in (ROLE_WEIGHT, ROLE_BIAS, ROLE_NORM, ROLE_CONV_WEIGHT, ROLE_CONV_BIAS):
                raise ValueError(f"unknown parameter role {role!r}")
        self._vectors: dict[int, dict[str, torch.Tensor]] = {}

    def _settings(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-member setting columns for parameter ``p`` (cached until members are dropped)."""
        cached = self._vectors.get(id(p))
        if cached is not None:
            return cached
        role, regs, dev, nd = self.roles[id(p)], self.regs, p.device, p.dim()
        scoped = [in_scope(role, r.l2_scope) for r in regs]
        vectors = {
            "lr": _column([r.learning_rate for r in regs], dev, nd),
            "decay": _column([r.weight_decay if s and r.l2_mode == "decoupled" else 0.0 for r, s in zip(regs, scoped)], dev, nd),
            "penalty": _column([r.weight_decay if s and r.l2_mode == "loss" else 0.0 for r, s in zip(regs, scoped)], dev, 1),
            "momentum": _column([r.momentum for r in regs], dev, nd),
            "sgd": _column([float(r.optimizer == "sgd") for r in regs], dev, nd).bool(),
        }
        vectors["shrink"] = 1 - vectors["lr"] * vectors["decay"]
        self._vectors[id(p)] = vectors
        return vectors

    def penalty(self) -> torch.Tensor:
        """Per-member ``l2_mode: loss`` terms, shape (K,): λ_k·Σw²/2 over member k's in-scope
        parameters (0 for decoupled members)."""
        total: torch.Tensor | None = None
        for p in self.param_groups[0]["params"] if self._any_loss else ():
            coef = self._settings(p)["penalty"]
            term = coef * p.pow(2).flatten(1).sum(1) / 2
            total = term if total is None else total + term
        if total is None:
            first = self.param_groups[0]["params"][0]
            return torch.zeros(first.shape[0], device=first.device)
        return total

    @property
    def _any_sgd(self) -> bool:
        return any(r.optimizer == "sgd" for r in self.regs)

    @property
    def _any_loss(self) -> bool:
        return any(r.l2_mode == "loss" and r.weight_decay > 0 for r in self.regs)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """One update of every member (AdamW, Adam-decoupled and SGD as torch computes them)."""
        self.step_count += 1
        t = self.step_count
        b1, b2 = BETAS
        bc1, bc2_sqrt = 1 - b1**t, math.sqrt(1 - b2**t)
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            g, s = p.grad, self._settings(p)
            state = self.state[p]
            if not state:
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
                state["momentum_buffer"] = g.clone()
            elif self._any_sgd:
                state["momentum_buffer"].mul_(s["momentum"]).add_(g)
            lr = s["lr"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            if not self._any_sgd:
                # Adam(W) in place: decoupled decay, then the moment step
                p.mul_(s["shrink"]).sub_(m.div(v.sqrt().div_(bc2_sqrt).add_(EPS)).mul_(lr / bc1))
                continue
            adam = p * s["shrink"] - (lr / bc1) * m / (v.sqrt() / bc2_sqrt + EPS)
            # SGD is SGDW (hpsearch.regularization.SGDW): the decay shrinks the parameter apart
            # from the gradient step and never enters the momentum buffer
            buf = state["momentum_buffer"]
            p.copy_(torch.where(s["sgd"], p * s["shrink"] - lr * buf, adam))

    def keep_members(self, index: torch.Tensor, replaced: dict[int, torch.nn.Parameter]) -> None:
        """Keep only the members at ``index`` in the state and settings; ``replaced`` maps the
        old parameters to the new ones (from ``StackedNet.keep_members``)."""
        self.regs = [self.regs[i] for i in index.tolist()]
        self._vectors.clear()
        group = self.param_groups[0]
        old_params = list(group["params"])
        new_state: dict[Any, dict[str, Any]] = {}
        for p in old_params:
            new = replaced[id(p)]
            self.roles[id(new)] = self.roles.pop(id(p))
            state = self.state.get(p)
            if state:
                new_state[new] = {k: v.index_select(0, index.to(v.device)).clone() for k, v in state.items()}
        group["params"] = [replaced[id(p)] for p in old_params]
        self.state.clear()
        self.state.update(new_state)
