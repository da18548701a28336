"""One optimizer step for a whole population, every member with its own settings.

:class:`PopulationOptimizer` updates stacked parameters (leading member dimension) exactly as
:func:`hpsearch.regularization.make_optimizer` would update each member alone: AdamW, Adam with
decoupled weight decay (the same update) or SGDW (SGD with momentum and decoupled decay), per-member learning rate, weight
decay, momentum, ``l2_mode`` and ``l2_scope``. The ``l2_mode: loss`` term λ·Σw²/2 over each
member's in-scope parameters enters through its gradient λ·w, which :meth:`~PopulationOptimizer.step`
adds to the data gradient (what autograd adds when the term is in the loss);
:meth:`PopulationOptimizer.penalty` gives its value.

A population whose members all use Adam(W), or all SGD, is updated with ``torch._foreach_*``
kernels over all parameters at once (per-member settings as (K, 1, ...) tensors), so a step
costs a fixed number of kernel launches whatever the number of parameters.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from hpsearch.population.stacked import ROLE_BIAS, ROLE_CONV_BIAS, ROLE_CONV_WEIGHT, ROLE_NORM, ROLE_WEIGHT, rows_like
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
            "penalty_grad": _column([r.weight_decay if s and r.l2_mode == "loss" else 0.0 for r, s in zip(regs, scoped)], dev, nd),
            "momentum": _column([r.momentum for r in regs], dev, nd),
            "sgd": _column([float(r.optimizer == "sgd") for r in regs], dev, nd).bool(),
        }
        vectors["shrink"] = 1 - vectors["lr"] * vectors["decay"]
        vectors["inv_lr"] = 1 / vectors["lr"]
        vectors["neg_lr"] = -vectors["lr"]
        self._vectors[id(p)] = vectors
        return vectors

    def penalty(self) -> torch.Tensor:
        """Per-member ``l2_mode: loss`` terms, shape (K,): λ_k·Σw²/2 over member k's in-scope
        parameters (0 for decoupled members). Its gradient is added by :meth:`step`: do not add
        it to the loss that is backpropagated."""
        params = self.param_groups[0]["params"]
        total = torch.zeros(params[0].shape[0], device=params[0].device)
        if self._any_loss:
            for p in params:
                total = total + self._settings(p)["penalty"] * p.detach().pow(2).flatten(1).sum(1) / 2
        return total

    @property
    def _any_sgd(self) -> bool:
        return any(r.optimizer == "sgd" for r in self.regs)

    @property
    def _all_sgd(self) -> bool:
        return all(r.optimizer == "sgd" for r in self.regs)

    @property
    def _any_loss(self) -> bool:
        return any(r.l2_mode == "loss" and r.weight_decay > 0 for r in self.regs)

    @property
    def _any_decay(self) -> bool:
        return any(r.l2_mode == "decoupled" and r.weight_decay > 0 for r in self.regs)

    def _columns(self, params: list[torch.Tensor], key: str) -> list[torch.Tensor]:
        return [self._settings(p)[key] for p in params]

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """One update of every member (AdamW, Adam-decoupled and SGD as torch computes them),
        with the gradient λ·w of the ``l2_mode: loss`` members' penalty added first."""
        self.step_count += 1
        params = [p for p in self.param_groups[0]["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        if self._any_loss:  # grad += λ·w, one pass
            torch._foreach_addcmul_(grads, params, self._columns(params, "penalty_grad"))
        if self._all_sgd:
            self._sgd(params, grads)
        elif not self._any_sgd:
            self._adam(params, grads)
        else:
            self._mixed(params, grads)

    def _adam(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Adam(W) for every member: moments, decoupled decay, then the moment step
        w -= lr/bc1 · m / (√v/bc2 + eps), computed as w -= bc2/bc1 · m / ((√v + eps·bc2)/lr)
        (the same quantity; two passes over the parameters fewer than torch's order)."""
        b1, b2 = BETAS
        t = self.step_count
        bc1, bc2_sqrt = 1 - b1**t, math.sqrt(1 - b2**t)
        ms, vs = self._state_lists(params, ("exp_avg", "exp_avg_sq"))
        torch._foreach_lerp_(ms, grads, 1 - b1)
        torch._foreach_mul_(vs, b2)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(vs)
        torch._foreach_add_(denom, EPS * bc2_sqrt)
        torch._foreach_mul_(denom, self._columns(params, "inv_lr"))
        if self._any_decay:
            torch._foreach_mul_(params, self._columns(params, "shrink"))
        torch._foreach_addcdiv_(params, ms, denom, value=-bc2_sqrt / bc1)

    def _sgd(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """SGDW for every member (hpsearch.regularization.SGDW): the momentum buffer, the decay
        apart from the gradient step (it never enters the buffer), then the step."""
        bufs = self._state_lists(params, ("momentum_buffer",), grads)[0]
        if self.step_count > 1:
            torch._foreach_mul_(bufs, self._columns(params, "momentum"))
            torch._foreach_add_(bufs, grads)
        if self._any_decay:
            torch._foreach_mul_(params, self._columns(params, "shrink"))
        torch._foreach_addcmul_(params, bufs, self._columns(params, "neg_lr"))  # w -= lr·buf, one pass

    def _state_lists(self, params: list[torch.Tensor], keys: Sequence[str],
                     first: list[torch.Tensor] | None = None) -> list[list[torch.Tensor]]:
        """The state tensors ``keys`` of every parameter (zeros, or a copy of ``first``, at the start)."""
        out: list[list[torch.Tensor]] = [[] for _ in keys]
        for i, p in enumerate(params):
            state = self.state[p]
            for j, key in enumerate(keys):
                if key not in state:
                    state[key] = first[i].clone() if first is not None else torch.zeros_like(p)
                out[j].append(state[key])
        return out

    def _mixed(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Adam(W) and SGD members in one population: both updates, each member takes its own."""
        t = self.step_count
        b1, b2 = BETAS
        bc1, bc2_sqrt = 1 - b1**t, math.sqrt(1 - b2**t)
        for p, g in zip(params, grads):
            s = self._settings(p)
            state = self.state[p]
            if not state:
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
                state["momentum_buffer"] = g.clone()
            else:
                state["momentum_buffer"].mul_(s["momentum"]).add_(g)
            lr = s["lr"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            adam = p * s["shrink"] - (lr / bc1) * m / (v.sqrt() / bc2_sqrt + EPS)
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
                new_state[new] = {k: rows_like(v, index) for k, v in state.items()}
        group["params"] = [replaced[id(p)] for p in old_params]
        self.state.clear()
        self.state.update(new_state)
