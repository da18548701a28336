"""Populations: one stacked step equals K single-model steps; dropout rates; runs on a real study."""

from __future__ import annotations

import itertools

import pytest
import torch

from hpsearch.models.base import ClassifierModule
from hpsearch.models.mlp import mlp
from hpsearch.population.module import population_of
from hpsearch.population.stacked import StackedBatchNorm, StackedDropout, StackedLinear, Unsupported, stack
from hpsearch.regularization import Regularization, l2_penalty, make_optimizer

K = 3
_DATA = torch.Generator().manual_seed(0)  # the same data in every process, whatever ran before
X = torch.randn(40, 6, generator=_DATA)
Y = torch.randint(0, 3, (40,), generator=_DATA)


@pytest.fixture
def float64(monkeypatch: pytest.MonkeyPatch):
    """Models and data in float64: a stacked product sums in another order than a single one,
    and in float32 Adam turns that rounding on a near-zero gradient into a visible difference."""
    monkeypatch.setitem(globals(), "X", X.double())
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


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
def test_population_steps_equal_single_steps(optimizer: str, l2_mode: str, l2_scope: str, float64: None) -> None:
    # BN after the activation: a bias right before BN has a zero gradient up to rounding noise,
    # which Adam would amplify into different (equally meaningless) updates
    batchnorm = "after_activation"
    regs = _regs(optimizer, l2_mode, l2_scope, batchnorm)
    singles = [_single(r, seed) for seed, r in enumerate(regs)]
    pop = population_of([_single(r, seed) for seed, r in enumerate(regs)], regs, list(range(K)), batch_size=40)
    assert all(p.dtype == torch.float64 for p in pop.net.parameters())
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
        pop.member_losses(pop(X), Y.expand(K, -1)).sum().backward()  # the penalty gradient comes from opt.step()
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


def test_members_with_different_batchnorm_placements_step_like_single_models() -> None:
    # SGD: a bias right before BN has a zero gradient up to rounding, which Adam would amplify
    regs = [Regularization(learning_rate=0.05, optimizer="sgd", batchnorm=bn, weight_decay=0.01, l2_mode="loss")
            for bn in ("none", "before_activation", "after_activation")]
    singles = [_single(r, seed) for seed, r in enumerate(regs)]
    pop = population_of([_single(r, seed) for seed, r in enumerate(regs)], regs, list(range(K)), batch_size=40)
    opt = pop.configure_optimizers()
    for _ in range(3):
        for model, reg in zip(singles, regs):
            single_opt = getattr(model, "_test_opt", None) or make_optimizer(model.net, reg)
            model._test_opt = single_opt  # type: ignore[attr-defined]
            single_opt.zero_grad()
            (model.loss_fn(model(X), Y) + l2_penalty(model.net, reg)).backward()
            single_opt.step()
        opt.zero_grad()
        pop.member_losses(pop(X), Y.expand(K, -1)).sum().backward()  # the penalty gradient comes from opt.step()
        opt.step()
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
    with pytest.raises(Unsupported):  # depth
        stack([mlp(6, 3, 5, 2, Regularization(), X), mlp(6, 3, 5, 1, Regularization(), X)])
    with pytest.raises(Unsupported):  # output size
        stack([mlp(6, 3, 5, 2, Regularization(), X), mlp(6, 4, 5, 2, Regularization(), X)])
    with pytest.raises(Unsupported):
        stack([torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))])


def _linears(net: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in net.modules() if isinstance(m, (torch.nn.Linear, StackedLinear))]


WIDE = [  # (activation, width, batchnorm, data set): members a population of mixed shapes holds
    ("relu", 8, "none", 0), ("tanh", 3, "after_activation", 1), ("sigmoid", 5, "after_activation", 0),
    ("tanh", 8, "none", 1), ("leaky_relu", 1, "none", 0),
]


@pytest.mark.parametrize("optimizer,l2_mode", list(itertools.product(["adamw", "sgd"], ["decoupled", "loss"])))
def test_an_epoch_of_mixed_widths_activations_and_data_equals_single_epochs(optimizer: str, l2_mode: str, float64: None) -> None:
    # members differ in activation, hidden width, BatchNorm and data set (same shapes): one
    # population epoch (per-member batch order, one stacked step per batch) equals each member's
    # own epoch alone; the units a narrow member lacks stay exactly zero. (BatchNorm after the
    # activation: a bias right before BN has a zero gradient up to rounding, which Adam amplifies)
    data = torch.Generator().manual_seed(1)
    datasets = [(torch.randn(37, 6, generator=data), torch.randint(0, 3, (37,), generator=data)) for _ in range(2)]
    regs = [Regularization(learning_rate=0.03 * (i + 1), weight_decay=0.05, l2_mode=l2_mode, l2_scope=scope, optimizer=optimizer,
                           batchnorm=bn, activation=act, momentum=0.9, input_norm="standardize")
            for i, ((act, _w, bn, _d), scope) in enumerate(zip(WIDE, ["all", "weights", "fc", "all", "all"]))]

    def single(i: int) -> ClassifierModule:
        torch.manual_seed(i)
        return ClassifierModule(mlp(6, 3, WIDE[i][1], 2, regs[i], datasets[WIDE[i][3]][0]), regs[i])

    singles = [single(i) for i in range(len(WIDE))]
    sources = [single(i) for i in range(len(WIDE))]
    pop = population_of(sources, regs, list(range(len(WIDE))), batch_size=8)
    opt = pop.configure_optimizers()
    xs = torch.stack([datasets[d][0] for *_, d in WIDE])
    ys = torch.stack([datasets[d][1] for *_, d in WIDE])
    for _ in range(2):
        pop.train()
        steps = pop.train_epoch(xs, ys, opt, per_member=True)
    assert steps == 5 and pop.optimizer_steps == 0  # optimizer_steps counts Lightning epochs only
    for i, model in enumerate(singles):
        single_opt = make_optimizer(model.net, regs[i])
        x, y = datasets[WIDE[i][3]]
        gen = torch.Generator().manual_seed(i)
        for _ in range(2):
            model.train()
            order = torch.randperm(37, generator=gen)
            for start in range(0, 37, 8):
                index = order[start:start + 8]
                single_opt.zero_grad()
                loss = model.loss_fn(model(x[index]), y[index])
                (loss + l2_penalty(model.net, regs[i])).backward()
                single_opt.step()
        for a, b in zip(_linears(model.net), _linears(pop.net)):
            w = b.weight[i]
            assert torch.allclose(a.weight, w[: a.weight.shape[0], : a.weight.shape[1]], atol=1e-5), (i, a)
            assert torch.allclose(a.bias, b.bias[i, 0, : a.bias.shape[0]], atol=1e-5)
            assert (w[a.weight.shape[0]:] == 0).all() and (w[:, a.weight.shape[1]:] == 0).all()  # masked units
            assert (b.bias[i, 0, a.bias.shape[0]:] == 0).all()
        model.eval()
        pop.eval()
        assert torch.allclose(model(x), pop(xs)[i], atol=1e-5)
        pop.net.write_member(i)  # the member's own network gets its trained weights back
        sources[i].eval()
        assert torch.allclose(model(x), sources[i](x), atol=1e-5)
    metrics = pop.member_metrics(xs, ys, per_member=True)
    for i, model in enumerate(singles):
        x, y = datasets[WIDE[i][3]]
        assert metrics["acc"][i] == model.evaluate(x, y)["acc"]


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


def test_dropping_members_of_mixed_batchnorm_placements_keeps_the_others_and_the_layouts() -> None:
    # members ordered by placement: each stacked BatchNorm runs on its run of members; after
    # dropping members the runs follow, and the transposed weight layout (no copy per step) stays
    placements = ["after_activation", "after_activation", "before_activation", "none"]
    regs = [Regularization(learning_rate=0.05, weight_decay=0.01, batchnorm=bn) for bn in placements]
    pop = population_of([_single(r, s) for s, r in enumerate(regs)], regs, list(range(4)), batch_size=40)
    norms = [m for m in pop.net.modules() if isinstance(m, StackedBatchNorm)]
    assert [n.runs for n in norms[:2]] == [[(0, 2, False), (2, 3, True), (3, 4, False)], [(0, 2, True), (2, 4, False)]]
    opt = pop.configure_optimizers()
    (pop.member_losses(pop(X), Y.expand(4, -1))).sum().backward()
    opt.step()
    pop.eval()
    before = pop(X)[[1, 3]]
    pop.keep([1, 3])
    assert [n.runs for n in norms[:2]] == [[(0, 2, False)], [(0, 1, True), (1, 2, False)]]
    assert torch.allclose(pop(X), before)
    for linear in _linears(pop.net):
        assert linear.weight.stride(1) == 1 and opt.state[linear.weight]["exp_avg"].stride() == linear.weight.stride()
    pop.train()
    opt.zero_grad()
    (pop.member_losses(pop(X), Y.expand(2, -1))).sum().backward()
    assert all(p.grad.stride() == p.stride() for p in pop.net.parameters() if p.grad is not None)
    opt.step()


# --- runs on a real SQLite study ---------------------------------------------------------

from optuna.trial import TrialState  # noqa: E402

from hpsearch.api import load_study_file  # noqa: E402
from hpsearch.errors import ConfigError  # noqa: E402
from hpsearch.population.run import optimize_population  # noqa: E402
from hpsearch.run.runner import run_study  # noqa: E402


@pytest.mark.slow
def test_population_members_are_trials_with_the_results_of_single_trials(write_study, tmp_path) -> None:
    # No dropout: a member trains exactly as the same trial alone (same init, batch order, steps).
    search = {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "weight_decay": [0.0, 0.1],
              "l2_mode": ["loss", "decoupled"], "batchnorm": ["none", "before_activation"]}
    alone = run_study(load_study_file(write_study("a.yaml", trials=3, search=search)), f"sqlite:///{tmp_path / 'a.db'}")
    together = run_study(load_study_file(write_study("b.yaml", trials=3, search=search, population=2)),
                         f"sqlite:///{tmp_path / 'b.db'}", round_runner=optimize_population)
    assert [t.state for t in together.trials] == [TrialState.COMPLETE] * 3
    for a, b in zip(alone.trials, together.trials):
        assert a.params == b.params
        assert b.value == pytest.approx(a.value, abs=0.02)
        assert sorted(b.intermediate_values) == [0, 1]
        assert b.user_attrs["seed"] == a.user_attrs["seed"] and b.user_attrs["epochs"] == 2
        assert b.user_attrs["train_val_gap"] == pytest.approx(b.user_attrs["train_acc"] - b.user_attrs["val_acc"])
        assert b.user_attrs["final_train_loss"] == pytest.approx(a.user_attrs["final_train_loss"], rel=0.05)
        # the result attrs come from the single-trial code: the same names (a member keeps no model), equal counts
        assert set(a.user_attrs) - {"model_artifact"} <= set(b.user_attrs), set(a.user_attrs) - set(b.user_attrs)
        for key in ("optimizer_steps", "param_count", "l2_param_count", "decay_shrinkage"):
            assert b.user_attrs.get(key) == pytest.approx(a.user_attrs.get(key)), key
    sizes = [(t.user_attrs["population"], t.user_attrs["population_index"]) for t in together.trials]
    assert sum(1 for s, _ in sizes if s == 1) >= 1  # the third trial: a round of one
    assert all(0 <= i < s for s, i in sizes)


@pytest.mark.slow
def test_a_nan_member_is_pruned_alone_and_pruned_members_stop(write_study, sqlite_url: str) -> None:
    # Two rounds of three: the median pruner judges the second round by the first's results.
    path = write_study(
        trials=6, max_epochs=3, population=3, seed=8,  # seed 8: each round samples all three rates
        pruner={"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        search={"learning_rate": [0.05, 1e30, 1e-6]},
        fixed={"optimizer": "sgd", "batch_size": 256, "hidden_units": 16, "hidden_layers": 1},
    )
    study = run_study(load_study_file(path), sqlite_url, round_runner=optimize_population)
    by_lr = {lr: [t for t in study.trials if t.params["learning_rate"] == lr] for lr in (0.05, 1e30, 1e-6)}
    assert all(by_lr.values()), {lr: len(ts) for lr, ts in by_lr.items()}
    for t in by_lr[1e30]:
        assert t.state == TrialState.PRUNED and "non-finite" in t.user_attrs["pruned_reason"]
    assert any(t.state == TrialState.COMPLETE and t.user_attrs["epochs"] == 3 for t in by_lr[0.05])
    pruned = [t for t in by_lr[1e-6] if t.state == TrialState.PRUNED]
    assert all(t.user_attrs["epochs"] < 3 and "pruner" in t.user_attrs["pruned_reason"] for t in pruned)


@pytest.mark.slow
def test_a_task_that_cannot_stack_runs_one_trial_at_a_time(write_study, sqlite_url: str, capfd) -> None:
    path = write_study(task="digits-two-input", trials=2, max_epochs=1, population=2, search={"learning_rate": [0.01, 0.001]},
                       fixed={"batch_size": 256, "channels": 2, "hidden_units": 8})
    study = run_study(load_study_file(path), sqlite_url, round_runner=optimize_population)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    err = capfd.readouterr().err
    assert err.count("cannot train populations") == 1, err  # decided once, before the first round


def test_population_must_be_positive(write_study) -> None:
    with pytest.raises(ConfigError, match=r"population: Input should be greater than or equal to 1, got 0"):
        load_study_file(write_study(population=0))


@pytest.mark.slow
def test_interrupted_and_killed_populations_leave_no_member_running(write_study, tmp_path) -> None:
    import os
    import signal

    from faults import by_state, finish, kill_all, start, trials, wait_for

    url = f"sqlite:///{tmp_path / 'kill.db'}"
    study = write_study(study="slow", trials=3, max_epochs=50, population=3,
                        fixed={"optimizer": "adamw", "batch_size": 64, "hidden_units": 16, "hidden_layers": 1})
    args = ["optimize", str(study), "--heartbeat", "1", "--grace", "2"]

    def mid_run() -> bool:
        running = by_state(trials(url), TrialState.RUNNING)
        return len(running) == 3 and all(t.intermediate_values for t in running)

    for sig, code in ((signal.SIGINT, 130), (signal.SIGKILL, -9)):
        proc = start(*args, storage=url)
        try:
            wait_for(mid_run, 300, "three members after their first epoch", (proc,))
            os.kill(proc.pid, sig)
            rc, out, err = finish(proc, 60)
        finally:
            kill_all(proc)
        assert rc == code, err[-2000:]
        running = by_state(trials(url), TrialState.RUNNING)
        if sig == signal.SIGINT:
            assert not running
            assert all("SIGINT" in t.user_attrs["fail_reason"] for t in by_state(trials(url), TrialState.FAIL))
        else:
            assert len(running) == 3  # the fault is real: a killed worker cannot fail its members
    # The next run fails the killed members and re-runs them (one epoch each, to keep the test short).
    proc = start(*args, "--allow-changes", "--max-epochs", "1", storage=url)
    rc, out, err = finish(proc, 240)
    assert rc == 0, err[-2000:]
    final = trials(url)
    assert not by_state(final, TrialState.RUNNING, TrialState.WAITING)
    assert len(by_state(final, TrialState.COMPLETE)) >= 3
    assert sum(1 for t in final if "failed_trial" in t.system_attrs) == 3  # copies with the same parameters


@pytest.mark.parametrize("name", ["digits-mlp", "tabular-mlp", "toy2d-mlp", "digits-cnn"])
def test_which_built_in_tasks_stack(name: str) -> None:
    from hpsearch.study.config import parse_study
    from hpsearch.study.space import settings_for
    from hpsearch.tasks import resolve_task

    task = resolve_task(name)
    config = parse_study(f"study: s\ntask: {name}\ntrials: 1\nmax_epochs: 1\n")
    data = task.data_for(task.load_data(0), settings_for({}, config, task).options)
    regs = [Regularization(keep_prob=0.5, input_norm="standardize"), Regularization(batchnorm="before_activation")]
    singles = [task.build_model(r, settings_for({}, config, task).options, data) for r in regs]
    pop = population_of(singles, regs, [0, 1], 64)
    assert pop(data.val[0]).shape[:2] == (2, len(data.val[1]))
