"""CNN populations: one stacked step equals K single SmallCNN steps (every optimizer × l2_mode ×
l2_scope, BatchNorm statistics per member), roles match the single-trial scopes, dropout per
member, and a digits-cnn study gives its members the results of single trials."""

from __future__ import annotations

import itertools

import pytest
import torch
from optuna.trial import TrialState

from hpsearch.api import load_study_file
from hpsearch.models.base import ClassifierModule
from hpsearch.models.cnn import SmallCNN
from hpsearch.population.module import population_of
from hpsearch.population.optim import in_scope
from hpsearch.population.run import optimize_population
from hpsearch.population.stacked import Unsupported
from hpsearch.population.stacked_cnn import MemberDropout2d, StackedBatchNorm2d, stack_cnn
from hpsearch.regularization import Regularization, l2_penalty, make_optimizer, scoped_parameters
from hpsearch.run.runner import run_study

K = 3
torch.manual_seed(0)
X = torch.rand(40, 64)
Y = torch.randint(0, 10, (40,))


def _single(reg: Regularization, seed: int, channels: int = 3) -> ClassifierModule:
    torch.manual_seed(seed)
    return ClassifierModule(SmallCNN(8, 10, channels, 6, reg, X), reg)


def _regs(optimizer: str, l2_mode: str, l2_scope: str, batchnorm: str) -> list[Regularization]:
    return [
        Regularization(learning_rate=lr, weight_decay=wd, l2_mode=l2_mode, l2_scope=l2_scope, optimizer=optimizer,
                       batchnorm=batchnorm, input_norm=norm, momentum=mom)
        for lr, wd, norm, mom in [(0.05, 0.1, "standardize", 0.9), (0.01, 0.5, "none", 0.5), (0.1, 0.0, "standardize", 0.0)]
    ]


def _steps(singles: list[ClassifierModule], regs: list[Regularization], pop: object, steps: int = 3) -> None:
    """``steps`` full-batch steps of every single model and of the population."""
    opt = pop.configure_optimizers()  # type: ignore[attr-defined]
    single_opts = [make_optimizer(m.net, r) for m, r in zip(singles, regs)]
    for _ in range(steps):
        for model, reg, single_opt in zip(singles, regs, single_opts):
            single_opt.zero_grad()
            loss = model.loss_fn(model(X), Y)
            if reg.l2_mode == "loss":
                loss = loss + l2_penalty(model.net, reg)
            loss.backward()
            single_opt.step()
        opt.zero_grad()
        (pop.member_losses(pop(X), Y.expand(K, -1)) + opt.penalty()).sum().backward()  # type: ignore[attr-defined]
        opt.step()


@pytest.mark.parametrize(
    "optimizer,l2_mode,l2_scope",
    list(itertools.product(["adamw", "adam", "sgd"], ["decoupled", "loss"], ["all", "weights", "fc"])),
)
def test_cnn_population_steps_equal_single_steps(optimizer: str, l2_mode: str, l2_scope: str) -> None:
    # BN after the activation: a bias right before BN has a zero gradient up to rounding noise,
    # which Adam would amplify into different (equally meaningless) updates
    regs = _regs(optimizer, l2_mode, l2_scope, "after_activation")
    singles = [_single(r, seed) for seed, r in enumerate(regs)]
    pop = population_of([_single(r, seed) for seed, r in enumerate(regs)], regs, list(range(K)), batch_size=40)
    _steps(singles, regs, pop)
    # The grouped convolution sums in another order than a single conv; Adam's division by
    # sqrt(v) turns those rounding differences (~1e-7) into ~1e-5 on near-zero gradients. A
    # wrong decay, scope or learning rate would move a parameter by ~lr (1e-2 to 1e-1).
    atol = 1e-5 if optimizer == "sgd" else 1e-4
    for k, model in enumerate(singles):
        single_params = list(model.net.parameters())
        stacked = [p[k] for p in pop.net.parameters()]
        assert len(single_params) == len(stacked)
        for a, b in zip(single_params, stacked):
            assert torch.allclose(a.reshape(b.shape), b, atol=atol), (k, a.shape)
        single_buffers = [b for n, b in model.net.named_buffers() if "running" in n]
        stacked_buffers = [b[k] for n, b in pop.net.named_buffers() if "running" in n]
        assert len(single_buffers) == len(stacked_buffers) == 6  # mean and var of three BatchNorms
        for a, b in zip(single_buffers, stacked_buffers):
            assert torch.allclose(a.reshape(b.shape), b, atol=atol)
    pop.eval()
    for k, model in enumerate(singles):
        model.eval()
        assert torch.allclose(model(X), pop(X)[k], atol=atol)


def test_members_with_different_batchnorm_placements_step_like_single_models() -> None:
    # SGD: a bias right before BN has a zero gradient up to rounding, which Adam would amplify
    regs = [Regularization(learning_rate=0.05, optimizer="sgd", batchnorm=bn, weight_decay=0.01, l2_mode="loss")
            for bn in ("none", "before_activation", "after_activation")]
    singles = [_single(r, seed) for seed, r in enumerate(regs)]
    sources = [_single(r, seed) for seed, r in enumerate(regs)]
    pop = population_of(sources, regs, list(range(K)), batch_size=40)
    _steps(singles, regs, pop)
    pop.eval()
    for k, model in enumerate(singles):
        model.eval()
        assert torch.allclose(model(X), pop(X)[k], atol=1e-4)
        # a member's trained convolutions, BatchNorms and dense layers go back into its own
        # network (the single-trial code then computes its result attributes from it)
        pop.net.write_member(k)
        sources[k].eval()
        assert torch.allclose(model(X), sources[k](X), atol=1e-4)


def test_stacked_roles_cover_what_the_single_scopes_cover() -> None:
    regs = _regs("adamw", "decoupled", "all", "before_activation")
    net = stack_cnn([_single(r, s).net for s, r in enumerate(regs)])
    single = _single(regs[0], 0).net
    stacked = [net.roles[name] for name, _ in net.named_parameters()]
    assert len(stacked) == len(list(single.parameters()))
    for scope in ("all", "weights", "fc"):
        chosen = {id(p) for p in scoped_parameters(single, scope)}
        assert [in_scope(role, scope) for role in stacked] == [id(p) in chosen for p in single.parameters()], scope


def test_batchnorm_statistics_are_per_member() -> None:
    norms = [torch.nn.BatchNorm2d(2), None, torch.nn.BatchNorm2d(2)]
    bn = StackedBatchNorm2d(norms).train()
    x = torch.randn(5, 6, 3, 3) * torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).view(1, 6, 1, 1)
    out = bn(x)
    for k, norm in enumerate(norms):
        part = x[:, 2 * k:2 * k + 2]
        if norm is None:
            assert torch.equal(out[:, 2 * k:2 * k + 2], part)  # passes through
        else:
            assert torch.allclose(out[:, 2 * k:2 * k + 2], norm.train()(part), atol=1e-6)
            assert torch.allclose(bn.running_var[k], norm.running_var)


def test_dropout_mask_rate_matches_each_members_keep_prob() -> None:
    drop = MemberDropout2d([0.2, 0.5, 1.0]).train()
    out = drop(torch.ones(200, 3 * 4, 5, 5)).view(200, 3, 4, 5, 5)
    kept = (out != 0).float().mean(dim=(0, 2, 3, 4))
    assert torch.allclose(kept, torch.tensor([0.2, 0.5, 1.0]), atol=0.01)
    assert torch.allclose(out[:, 1][out[:, 1] != 0], torch.tensor(2.0))  # kept units scaled by 1/keep
    regs = [Regularization(keep_prob=0.5), Regularization(keep_prob=1.0)]
    net = stack_cnn([_single(r, 0).net for r in regs])
    assert [m.keep.tolist() for m in net.modules() if isinstance(m, MemberDropout2d)] == [[0.5, 1.0]] * 2


def test_different_cnns_do_not_stack() -> None:
    with pytest.raises(Unsupported):
        stack_cnn([_single(Regularization(), 0, channels=3).net, _single(Regularization(), 0, channels=4).net])
    with pytest.raises(Unsupported):
        stack_cnn([_single(Regularization(activation="tanh"), 0).net, _single(Regularization(), 0).net])


def test_dropping_members_keeps_the_others() -> None:
    regs = _regs("adamw", "decoupled", "all", "before_activation")
    pop = population_of([_single(r, s) for s, r in enumerate(regs)], regs, list(range(K)), batch_size=40)
    opt = pop.configure_optimizers()
    pop.member_losses(pop(X), Y.expand(K, -1)).sum().backward()
    opt.step()
    pop.eval()
    before = pop(X)[[0, 2]]
    pop.keep([0, 2])
    assert torch.allclose(pop(X), before, atol=1e-6)
    pop.train()
    opt.zero_grad()
    pop.member_losses(pop(X), Y.expand(2, -1)).sum().backward()
    opt.step()
    assert [m.index for m in pop.members] == [0, 2]


@pytest.mark.parametrize("name", ["digits-cnn", "digits-bn"])
def test_built_in_cnn_tasks_stack(name: str) -> None:
    from hpsearch.study.config import parse_study
    from hpsearch.study.space import settings_for
    from hpsearch.tasks import resolve_task

    task = resolve_task(name)
    config = parse_study(f"study: s\ntask: {name}\ntrials: 1\nmax_epochs: 1\nfixed: {{model: cnn}}\n"
                         if name == "digits-bn" else f"study: s\ntask: {name}\ntrials: 1\nmax_epochs: 1\n")
    options = settings_for({}, config, task).options
    data = task.data_for(task.load_data(0), options)
    regs = [Regularization(keep_prob=0.5, input_norm="standardize"), Regularization(batchnorm="before_activation")]
    singles = [task.build_model(r, options, data) for r in regs]
    pop = population_of(singles, regs, [0, 1], 64)
    assert pop(data.val[0]).shape == (2, len(data.val[1]), 10)


@pytest.mark.slow
def test_cnn_population_members_are_trials_with_the_results_of_single_trials(write_study, tmp_path) -> None:
    # No dropout: a member trains exactly as the same trial alone (same init, batch order, steps).
    search = {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "weight_decay": [0.0, 0.1],
              "l2_mode": ["loss", "decoupled"], "l2_scope": ["all", "weights", "fc"],
              "batchnorm": ["none", "after_activation"]}
    fixed = {"channels": 4, "hidden_units": 16, "batch_size": 64, "optimizer": "adamw"}
    kwargs = {"task": "digits-cnn", "trials": 3, "search": search, "fixed": fixed}
    alone = run_study(load_study_file(write_study("a.yaml", **kwargs)), f"sqlite:///{tmp_path / 'a.db'}")
    together = run_study(load_study_file(write_study("b.yaml", population=3, **kwargs)), f"sqlite:///{tmp_path / 'b.db'}",
                         round_runner=optimize_population)
    assert [t.state for t in together.trials] == [TrialState.COMPLETE] * 3
    for a, b in zip(alone.trials, together.trials):
        assert a.params == b.params
        assert b.value == pytest.approx(a.value, abs=1e-6)
        assert b.user_attrs["final_train_loss"] == pytest.approx(a.user_attrs["final_train_loss"], rel=1e-4)
        assert b.user_attrs["train_acc"] == pytest.approx(a.user_attrs["train_acc"], abs=1e-6)
        assert b.user_attrs["population"] == 3


@pytest.mark.slow
def test_seeds_retrained_as_one_population_score_as_one_at_a_time(write_study) -> None:
    # One configuration, four seeds, BatchNorm before the activation (weight norms recorded),
    # no dropout: the population retrain gives each seed the scores of its retrain alone.
    from hpsearch.analysis.retrain import retrain
    from hpsearch.population.retrain import RetrainJob, retrain_all

    definition = load_study_file(write_study(task="digits-cnn", max_epochs=2, search={"learning_rate": [0.05]}, fixed={
        "channels": 4, "hidden_units": 16, "optimizer": "sgd", "batchnorm": "before_activation", "weight_decay": 0.01}))
    params = {"learning_rate": 0.05}
    seeds = [11, 12, 13, 14]
    alone = [retrain(definition, params, seed, 0) for seed in seeds]
    together = retrain_all([RetrainJob(definition, params, seed, 0) for seed in seeds], population=4)
    assert len({r.seconds for r in together}) == 1  # one stacked fit, its time shared by the members
    for a, b in zip(alone, together):
        assert a.error is None and b.error is None
        assert b.value == pytest.approx(a.value, abs=1e-6)
        assert b.train_value == pytest.approx(a.train_value, abs=1e-6)
        assert b.curve == pytest.approx(a.curve, abs=1e-6)
        assert a.norms and b.norms and set(b.norms) == set(a.norms)
        assert b.norms == pytest.approx(a.norms, rel=1e-4)
    assert len({r.value for r in alone}) > 1  # the seeds differ: the check compares real per-seed results


@pytest.mark.slow
def test_verify_trains_a_configurations_seeds_as_one_population(write_study, sqlite_url: str) -> None:
    from hpsearch.analysis.verify import run_verify, verify_study_name
    from hpsearch.store.queries import load_study

    path = write_study(task="digits-cnn", trials=2, max_epochs=1, search={"learning_rate": [0.01, 0.05]},
                       fixed={"channels": 4, "hidden_units": 16, "batch_size": 128})
    run_study(load_study_file(path), sqlite_url, round_runner=optimize_population)
    stacked = run_verify("tiny", sqlite_url, top=2, seeds=3)
    alone_db = sqlite_url.replace("studies.db", "alone.db")
    run_study(load_study_file(path), alone_db)
    alone = run_verify("tiny", alone_db, top=2, seeds=3, population=1)
    assert [v for c in stacked.configs for v in c.values] == pytest.approx([v for c in alone.configs for v in c.values], abs=1e-6)
    runs = load_study(verify_study_name("tiny"), sqlite_url).trials
    assert len(runs) == 6 and len({t.user_attrs["wall_seconds"] for t in runs}) <= 2  # one stacked fit per configuration
