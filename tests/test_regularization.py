"""The semantics table of DESIGN.md, checked on built modules, optimizer groups and losses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hpsearch.models.base import ClassifierModule
from hpsearch.regularization import (
    Regularization,
    Standardize,
    conv_block,
    dense_block,
    dropout,
    input_layer,
    l2_penalty,
    make_optimizer,
    parameter_groups,
    scoped_parameters,
)


class Net(nn.Module):
    """Conv + BatchNorm + two Linear layers: every kind of parameter a scope must sort."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4 * 8 * 8, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x.view(-1, 1, 8, 8)))).flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))


def names(model: nn.Module, params: list[nn.Parameter]) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net()


ALL = {"conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("all", ALL),
        ("weights", {"conv.weight", "fc1.weight", "fc2.weight"}),
        ("fc", {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}),
    ],
)
def test_scope_selects_parameters_by_role(net: Net, scope: str, expected: set[str]) -> None:
    assert names(net, scoped_parameters(net, scope)) == expected


def test_frozen_parameters_are_out_of_every_scope(net: Net) -> None:
    net.fc1.weight.requires_grad_(False)
    for scope in ("all", "weights", "fc"):
        assert "fc1.weight" not in names(net, scoped_parameters(net, scope))


@pytest.mark.parametrize("scope", ["all", "weights", "fc"])
def test_loss_mode_adds_exactly_half_lambda_sum_of_squares(net: Net, scope: str) -> None:
    reg = Regularization(weight_decay=0.37, l2_mode="loss", l2_scope=scope)
    expected = 0.37 * sum(float((p.detach() ** 2).sum()) for p in scoped_parameters(net, scope)) / 2
    assert float(l2_penalty(net, reg).detach()) == pytest.approx(expected, rel=1e-6)
    groups = parameter_groups(net, reg)
    assert all(g["weight_decay"] == 0.0 for g in groups)
    assert all(g["weight_decay"] == 0.0 for g in make_optimizer(net, reg).param_groups)


def test_loss_mode_matches_tensorflow_l2_loss_formula(net: Net) -> None:
    # TF MNIST example: 5e-4 * (l2_loss(fc1_w) + l2_loss(fc1_b) + l2_loss(fc2_w) + l2_loss(fc2_b)),
    # with tf.nn.l2_loss(t) = sum(t ** 2) / 2.
    reg = Regularization(weight_decay=5e-4, l2_mode="loss", l2_scope="fc")
    tf_l2_loss = lambda t: (t.detach() ** 2).sum() / 2  # noqa: E731
    expected = 5e-4 * (tf_l2_loss(net.fc1.weight) + tf_l2_loss(net.fc1.bias) + tf_l2_loss(net.fc2.weight) + tf_l2_loss(net.fc2.bias))
    assert float(l2_penalty(net, reg).detach()) == pytest.approx(float(expected), rel=1e-6)


def test_training_step_loss_is_data_loss_plus_penalty(net: Net) -> None:
    reg = Regularization(weight_decay=0.1, l2_mode="loss", l2_scope="weights")
    module = ClassifierModule(net, reg)
    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    net.eval()  # fixed BatchNorm statistics so both computations see the same forward pass
    data_loss = nn.functional.cross_entropy(net(x), y)
    total = module.batch_loss((x, y))
    penalty = 0.1 * sum((p ** 2).sum() for p in scoped_parameters(net, "weights")) / 2
    assert float(total.detach()) == pytest.approx(float((data_loss + penalty).detach()), rel=1e-5)


def test_decoupled_mode_has_no_penalty_and_decays_only_in_scope_groups(net: Net) -> None:
    reg = Regularization(weight_decay=0.3, l2_mode="decoupled", l2_scope="fc")
    assert float(l2_penalty(net, reg)) == 0.0
    groups = {g["name"]: g for g in parameter_groups(net, reg)}
    assert names(net, groups["decay"]["params"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert groups["decay"]["weight_decay"] == 0.3
    assert names(net, groups["no_decay"]["params"]) == {"conv.weight", "conv.bias", "bn.weight", "bn.bias"}
    assert groups["no_decay"]["weight_decay"] == 0.0


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_decoupled_decay_shrinks_in_scope_parameters_with_zero_gradient(net: Net, optimizer: str) -> None:
    # With a zero gradient, decoupled decay alone moves a parameter: p <- p * (1 - lr * λ).
    reg = Regularization(learning_rate=0.1, weight_decay=0.5, l2_mode="decoupled", l2_scope="fc", optimizer=optimizer, momentum=0.9)
    opt = make_optimizer(net, reg)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in net.named_parameters():
        factor = 1 - 0.1 * 0.5 if n.startswith("fc") else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor)


def test_optimizer_choice(net: Net) -> None:
    assert isinstance(make_optimizer(net, Regularization(optimizer="adamw")), torch.optim.AdamW)
    adam = make_optimizer(net, Regularization(optimizer="adam"))
    assert type(adam) is torch.optim.Adam and adam.defaults["decoupled_weight_decay"] is True
    sgd = make_optimizer(net, Regularization(optimizer="sgd", momentum=0.8, learning_rate=0.05))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8 and sgd.defaults["lr"] == 0.05


def test_extra_groups_keep_their_learning_rate(net: Net) -> None:
    reg = Regularization(learning_rate=0.01, weight_decay=0.1)
    head = {"name": "head", "params": list(net.fc2.parameters()), "lr": 0.05}
    groups = parameter_groups(net, reg, [head])
    assert [g["name"] for g in groups] == ["decay", "head"]
    assert names(net, groups[0]["params"]) == ALL - {"fc2.weight", "fc2.bias"}
    opt = make_optimizer(net, reg, groups)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.05]


def test_keep_prob_one_builds_no_dropout_module() -> None:
    assert dropout(1.0) is None
    block = dense_block(8, 4, Regularization(keep_prob=1.0))
    assert not any(isinstance(m, nn.Dropout) for m in block.modules())


def test_keep_prob_is_tensorflow_style() -> None:
    block = dense_block(8, 4, Regularization(keep_prob=0.7))
    drops = [m for m in block.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 1 and drops[0].p == pytest.approx(0.3)
    assert isinstance(block[-1], nn.Dropout)


@pytest.mark.parametrize(
    ("placement", "dense", "conv"),
    [
        ("none", [nn.Linear, nn.ReLU], [nn.Conv2d, nn.ReLU, nn.MaxPool2d]),
        ("before_activation", [nn.Linear, nn.BatchNorm1d, nn.ReLU], [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]),
        ("after_activation", [nn.Linear, nn.ReLU, nn.BatchNorm1d], [nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.MaxPool2d]),
    ],
)
def test_batchnorm_placement_order(placement: str, dense: list[type], conv: list[type]) -> None:
    reg = Regularization(batchnorm=placement)
    assert [type(m) for m in dense_block(8, 4, reg)] == dense
    assert [type(m) for m in conv_block(1, 4, reg)] == conv


@pytest.mark.parametrize("placement", ["fc_before_concat", "after_concat"])
def test_concat_placements_are_rejected_by_single_input_blocks(placement: str) -> None:
    with pytest.raises(ValueError, match="two-input"):
        dense_block(8, 4, Regularization(batchnorm=placement))


@pytest.mark.parametrize(
    ("name", "cls"),
    [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("gelu", nn.GELU)],
)
def test_activation_choice(name: str, cls: type) -> None:
    assert type(dense_block(8, 4, Regularization(activation=name))[1]) is cls


def test_input_norm_uses_training_statistics_only() -> None:
    train = torch.tensor([[0.0, 10.0], [2.0, 30.0], [4.0, 20.0]])
    assert isinstance(input_layer(Regularization(input_norm="none"), train), nn.Identity)
    layer = input_layer(Regularization(input_norm="standardize"), train)
    assert isinstance(layer, Standardize)
    torch.testing.assert_close(layer.mean, train.mean(0))
    torch.testing.assert_close(layer(train).mean(0), torch.zeros(2))
    torch.testing.assert_close(layer(train).std(0), torch.ones(2))


def test_constant_feature_is_only_centred() -> None:
    train = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    layer = input_layer(Regularization(input_norm="standardize"), train)
    out = layer(torch.tensor([[2.0, 5.0]]))
    assert torch.isfinite(out).all() and float(out[0, 1]) == 5.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"keep_prob": 0.0},
        {"keep_prob": 1.5},
        {"learning_rate": 0.0},
        {"weight_decay": -1e-4},
        {"l2_mode": "l1"},
        {"l2_scope": "biases"},
        {"batchnorm": "everywhere"},
        {"activation": "swish"},
        {"optimizer": "lbfgs"},
        {"momentum": 1.0},
        {"input_norm": "minmax"},
    ],
)
def test_regularization_rejects_invalid_values(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Regularization(**kwargs)


def _sgd_steps(net: nn.Module, reg: Regularization, steps: int = 5) -> dict[str, torch.Tensor]:
    """``steps`` real optimizer steps on one fixed batch, the l2 penalty in the loss as the mode says."""
    torch.manual_seed(1)
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    opt = make_optimizer(net, reg)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y) + l2_penalty(net, reg)
        loss.backward()
        opt.step()
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def test_sgd_decoupled_is_sgdw_and_differs_from_loss_mode() -> None:
    """Loshchilov & Hutter's SGDW: buf <- μ·buf + g; p <- p - lr·λ·p - lr·buf (decay kept out of
    the momentum buffer); the loss mode is coupled L2 and ends elsewhere."""
    lr, lam, mu, steps = 0.1, 0.05, 0.9, 5
    kw = dict(learning_rate=lr, weight_decay=lam, l2_scope="all", optimizer="sgd", momentum=mu)
    torch.manual_seed(0)
    start = Net().state_dict()
    nets = {}
    for mode in ("decoupled", "loss"):
        nets[mode] = Net()
        nets[mode].load_state_dict(start)
    decoupled = _sgd_steps(nets["decoupled"], Regularization(l2_mode="decoupled", **kw), steps)
    coupled = _sgd_steps(nets["loss"], Regularization(l2_mode="loss", **kw), steps)

    manual = Net()
    manual.load_state_dict(start)
    torch.manual_seed(1)
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    bufs = {n: torch.zeros_like(p) for n, p in manual.named_parameters()}
    for _ in range(steps):
        manual.zero_grad()
        nn.functional.cross_entropy(manual(x), y).backward()
        with torch.no_grad():
            for n, p in manual.named_parameters():
                bufs[n] = mu * bufs[n] + p.grad if _ else p.grad.clone()
                p -= lr * lam * p + lr * bufs[n]
    for n, p in manual.named_parameters():
        torch.testing.assert_close(decoupled[n], p.detach(), rtol=1e-5, atol=1e-6)
    gap = max(float((decoupled[n] - coupled[n]).abs().max()) for n in decoupled)
    assert gap > 1e-4, gap


def _decayed(module: nn.Module, opt: torch.optim.Optimizer) -> set[str]:
    ids = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    return {n for n, p in module.named_parameters() if id(p) in ids}


@pytest.mark.parametrize(("scope", "head_bias_decayed"), [("all", True), ("weights", False), ("fc", True)])
def test_triplet_head_group_respects_l2_scope(scope: str, head_bias_decayed: bool) -> None:
    """The embedding head has its own optimizer group (own learning rate): it decays exactly the
    in-scope parameters like every other group, and a real step shrinks only those."""
    from hpsearch.models.embedding import EmbeddingNet, TripletModule
    from hpsearch.tasks.triplet import new_backbone

    torch.manual_seed(0)
    net = EmbeddingNet(new_backbone(), 8, 0)
    reg = Regularization(learning_rate=0.1, weight_decay=0.5, l2_scope=scope, optimizer="sgd")
    module = TripletModule(net, reg, margin=0.2, head_lr_mult=10.0)
    opt = module.configure_optimizers()
    want = names(net, scoped_parameters(net, scope))
    assert ("head.bias" in want) is head_bias_decayed and "head.weight" in want
    assert _decayed(net, opt) == want
    assert {g["lr"] for g in opt.param_groups if any(p is net.head.weight or p is net.head.bias for p in g["params"])} == {1.0}
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    moved = {n for n, p in net.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert moved == want
