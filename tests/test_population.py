"""Populations: one stacked step equals K single-model steps; dropout rates; runs on a real study."""

from __future__ import annotations

import itertools

import pytest
import torch

from hpsearch.models.base import ClassifierModule
from hpsearch.models.mlp import mlp
from hpsearch.population.module import population_of
from hpsearch.population.stacked import StackedDropout, Unsupported, stack
from hpsearch.regularization import Regularization, l2_penalty, make_optimizer

K = 3
X = torch.randn(40, 6)
Y = torch.randint(0, 3, (40,))


def _single(reg: Regularization, seed: int) -> ClassifierModule:
    torch.manual_seed(seed)
    return ClassifierModule(mlp(6, 3, 5, 2, reg, X), reg)


def _regs(optimizer: str, l2_mode: str, l2_scope: str, batchnorm: str) -> list[Regularization]:
    return [
        Regularization(
            learning_rate=lr, weight_decay=wd, l2_mode=l2_mode, l2_scope=l2_scope, optimizer=optimizer,
            batchnorm=batchnorm, input_norm=norm, momentum=mom,
        )
        for lr, wd, norm, mom in [(0.05, 0.1, "standardize", 0.9), (0.01, 0.5, "none", 0.5), (0.1, 0.0, "standardize", 0.0)]
    ]


@pytest.mark.parametrize(
    "optimizer,l2_mode,l2_scope",
    list(itertools.product(["adamw", "adam", "sgd"], ["decoupled", "loss"], ["all", "weights", "fc"])),
)
def test_population_steps_equal_single_steps(optimizer: str, l2_mode: str, l2_scope: str) -> None:
    # BN after the activation: a bias right before BN has a zero gradient up to rounding noise,
    # which Adam would amplify into different (equally meaningless) updates
    batchnorm = "after_activation"
    regs = _regs(optimizer, l2_mode, l2_scope, batchnorm)
    singles = [_single(r, seed) for seed, r in enumerate(regs)]
    pop = population_of([_single(r, seed) for seed, r in enumerate(regs)], regs, list(range(K)), batch_size=40)
    opt = pop.configure_optimizers()
    for _ in range(3):  # a few steps: moments, momentum buffers and BN running stats matter
        for model, reg in zip(singles, regs):
            single_opt = getattr(model, "_test_opt", None) or make_optimizer(model.net, reg)
            model._test_opt = single_opt  # type: ignore[attr-defined]
            single_opt.zero_grad()
            loss = model.loss_fn(model(X), Y)
            if reg.l2_mode == "loss":
                loss = loss + l2_penalty(model.net, reg)
            loss.backward()
            single_opt.step()
        opt.zero_grad()
        (pop.member_losses(pop(X), Y.expand(K, -1)) + opt.penalty()).sum().backward()
        opt.step()
    for k, model in enumerate(singles):
        single_params = [p for p in model.net.parameters()]
        stacked = [p[k] for p in pop.net.parameters()]
        assert len(single_params) == len(stacked)
        for a, b in zip(single_params, stacked):
            assert torch.allclose(a.reshape(b.shape), b, atol=1e-6), (k, a.shape)
        single_buffers = [b for n, b in model.net.named_buffers() if "running" in n]
        stacked_buffers = [b[k] for n, b in pop.net.named_buffers() if "running" in n]
        for a, b in zip(single_buffers, stacked_buffers):
            assert torch.allclose(a, b, atol=1e-6)
    pop.eval()
    for k, model in enumerate(singles):
        model.eval()
        assert torch.allclose(model(X), pop(X)[k], atol=1e-5)


def test_dropout_mask_rate_matches_keep_prob() -> None:
    drop = StackedDropout([0.2, 0.5, 0.9, 1.0]).train()
    out = drop(torch.ones(4, 500, 100))
    kept = (out != 0).float().mean(dim=(1, 2))
    assert torch.allclose(kept, torch.tensor([0.2, 0.5, 0.9, 1.0]), atol=0.01)
    assert torch.allclose(out[1][out[1] != 0], torch.tensor(2.0))  # kept units scaled by 1/keep


def test_dropout_members_stack_with_members_without_dropout() -> None:
    regs = [Regularization(keep_prob=0.5), Regularization(keep_prob=1.0)]
    net = stack([mlp(6, 3, 5, 2, r, X) for r in regs])
    drops = [m for m in net.modules() if isinstance(m, StackedDropout)]
    assert len(drops) == 2 and drops[0].keep.flatten().tolist() == [0.5, 1.0]


def test_different_graphs_do_not_stack() -> None:
    with pytest.raises(Unsupported):
        stack([mlp(6, 3, 5, 2, Regularization(), X), mlp(6, 3, 5, 2, Regularization(batchnorm="before_activation"), X)])
    with pytest.raises(Unsupported):
        stack([torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))])


def test_dropping_members_keeps_the_others() -> None:
    regs = _regs("adamw", "decoupled", "all", "before_activation")
    pop = population_of([_single(r, s) for s, r in enumerate(regs)], regs, list(range(K)), batch_size=40)
    opt = pop.configure_optimizers()
    (pop.member_losses(pop(X), Y.expand(K, -1))).sum().backward()
    opt.step()
    pop.eval()
    before = pop(X)[[0, 2]]
    pop.keep([0, 2])
    assert torch.allclose(pop(X), before)
    pop.train()
    opt.zero_grad()
    (pop.member_losses(pop(X), Y.expand(2, -1))).sum().backward()
    opt.step()  # optimizer state follows the members
    assert [m.index for m in pop.members] == [0, 2]
