"""The question tasks build their models as the parameters say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hpsearch.data import TensorBatches
from hpsearch.regularization import Regularization, Standardize, l2_penalty, scoped_parameters
from hpsearch.run.training import fit
from hpsearch.study.space import TrialSettings
from hpsearch.tasks import builtin_task_names, resolve_task


def test_question_tasks_are_registered() -> None:
    assert {"toy2d-mlp", "digits-bn", "co2-seq2seq", "tabular-mlp", "digits-triplet"} <= set(builtin_task_names())


# -- 1. L2 on the FC layers only (digits-cnn) ------------------------------------------------


def test_fc_scope_is_the_classic_tensorflow_penalty() -> None:
    task = resolve_task("digits-cnn")
    data = task.load_data(0)
    reg = Regularization(weight_decay=5e-4, l2_mode="loss", l2_scope="fc")
    net = task.build_model(reg, dict(task.defaults), data).net
    fc = [net.fc1[0].weight, net.fc1[0].bias, net.fc2.weight, net.fc2.bias]
    assert {id(p) for p in scoped_parameters(net, "fc")} == {id(p) for p in fc}
    tf_l2_loss = sum((p**2).sum() / 2 for p in fc)  # tf.nn.l2_loss(t) = sum(t**2) / 2
    torch.testing.assert_close(l2_penalty(net, reg), 5e-4 * tf_l2_loss)


# -- 2. activations on 2-D data (toy2d-mlp) --------------------------------------------------


@pytest.mark.parametrize("act,cls", [("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh), ("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU)])
def test_toy2d_mlp_has_one_hidden_layer_of_the_given_width(act: str, cls: type) -> None:
    task = resolve_task("toy2d-mlp")
    for dataset in ("moons", "circles", "xor"):
        data = task.data_for(task.load_data(0), {"dataset": dataset})
        assert data.train[0].shape[1] == 2 and set(data.train[1].tolist()) == {0, 1}
    model = task.build_model(Regularization(activation=act), {"width": 3, "dataset": "xor"}, data)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(2, 3), (3, 2)]
    assert sum(isinstance(m, cls) for m in model.modules()) == 1


def test_toy2d_sets_differ_and_follow_the_seed() -> None:
    task = resolve_task("toy2d-mlp")
    a = task.load_data(0).info["variants"]
    assert not torch.equal(a["moons"].train[0], a["circles"].train[0])
    assert not torch.equal(a["xor"].train[0], task.load_data(1).info["variants"]["xor"].train[0])


# -- 3. batchnorm placement (digits-bn, digits-two-input) --------------------------------------


def _bn_inputs(model: nn.Module, x: object) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    model.train()
    model(x)
    for h in hooks:
        h.remove()
    return seen


def test_the_one_hot_names_a_task_that_decides_the_label() -> None:
    from hpsearch.tasks.bn_placement import N_TASKS, SHIFT

    data = resolve_task("digits-two-input").load_data(0)
    digits = resolve_task("digits-cnn").load_data(0)
    for name in ("train", "val", "test"):
        (images, one_hot), y = getattr(data, name)
        plain_x, plain_y = getattr(digits, name)
        assert torch.equal(images, plain_x) and one_hot.shape == (len(y), N_TASKS)
        assert torch.equal(one_hot.sum(1), torch.ones(len(y)))
        task = one_hot.argmax(1)
        assert torch.equal(data.info["tasks"][name], task) and torch.equal(data.info["digits"][name], plain_y)
        assert torch.equal(y, (plain_y + SHIFT * task) % 10)
        assert 0.4 < float(task.float().mean()) < 0.6  # both tasks drawn, about equally often
    # the same split seed draws the same tasks; another seed draws others
    again = resolve_task("digits-two-input").load_data.__wrapped__(0)  # type: ignore[attr-defined]
    assert torch.equal(again.train[0][1], data.train[0][1])
    assert not torch.equal(resolve_task("digits-two-input").load_data(1).info["tasks"]["test"][:50], data.info["tasks"]["test"][:50])


def test_neither_input_alone_reaches_the_two_input_accuracy() -> None:
    data = resolve_task("digits-two-input").load_data(0)
    base = {k: v["value"] for k, v in data.info["test_baselines"].items()}
    assert set(base) == {"majority", "one_hot_only", "image_only_trained", "image_only_oracle"}
    (_, one_hot), y = data.test
    task, digit = data.info["tasks"]["test"], data.info["digits"]["test"]
    # the image-only oracle is the test share of one task: the label of the other is never right
    assert base["image_only_oracle"] in (float((task == 0).double().mean()), float((task == 1).double().mean()))
    assert 0.45 < base["image_only_oracle"] < 0.55
    assert base["image_only_trained"] <= base["image_only_oracle"] + 0.02
    assert 0.3 < base["image_only_trained"]  # the image does carry the digit
    assert base["majority"] < 0.15 and base["one_hot_only"] < 0.2  # the one-hot alone: near chance
    # both inputs together determine the label exactly: one label per (digit, task)
    pairs = {(int(d), int(k)): set() for d, k in zip(digit, task)}
    for d, k, label in zip(digit.tolist(), task.tolist(), y.tolist()):
        pairs[(d, k)].add(label)
    assert all(len(labels) == 1 for labels in pairs.values())
    # the image alone leaves two labels for every digit
    assert all(len({lb for (d2, _), lbs in pairs.items() if d2 == d for lb in lbs}) == 2 for d in range(10))


def test_two_input_splits_pass_the_data_check_and_a_ragged_tuple_does_not() -> None:
    from dataclasses import replace

    from hpsearch.errors import ConfigError
    from hpsearch.tasks.checked import check_splits, load_checked_data

    data = load_checked_data(resolve_task("digits-two-input"), 0)
    (images, one_hot), y = data.val
    with pytest.raises(ConfigError, match="val x is a tuple of inputs with different numbers of rows"):
        check_splits(replace(data, val=((images, one_hot[:-1]), y)), "digits-two-input")
    with pytest.raises(ConfigError, match=r"val x\[1\] is numpy.ndarray"):
        check_splits(replace(data, val=((images, one_hot.numpy()), y)), "digits-two-input")


def test_digits_bn_reports_the_majority_baseline() -> None:
    data = resolve_task("digits-bn").load_data(0)
    counts = torch.bincount(data.train[1])
    expected = float((data.test[1] == counts.argmax()).double().mean())
    assert data.info["test_baselines"]["majority"]["value"] == expected


@pytest.mark.parametrize("placement", ["none", "fc_before_concat", "after_concat"])
def test_one_hot_is_never_normalized_unless_after_concat(placement: str) -> None:
    task = resolve_task("digits-two-input")
    options = {**task.defaults, "batchnorm": placement}
    data = task.splits(0, options)
    (images, one_hot), _ = data.train
    model = task.build_model(Regularization(batchnorm=placement), options, data)
    batch = (images[:32], one_hot[:32])
    inputs = _bn_inputs(model, batch)
    hidden, side = options["hidden_units"], one_hot.shape[1]
    if placement == "none":
        assert inputs == []
    elif placement == "fc_before_concat":
        assert [t.shape[1] for t in inputs] == [hidden]  # image features only
    else:
        assert [t.shape[1] for t in inputs] == [hidden + side]
        torch.testing.assert_close(inputs[0][:, hidden:], batch[1])  # the one-hot columns, normalized
    assert model(batch).shape == (32, 10)


@pytest.mark.parametrize("task_name,placement", [("digits-two-input", "before_activation"), ("digits-bn", "after_concat")])
def test_each_task_refuses_the_other_models_placements(task_name: str, placement: str, tmp_path: Path) -> None:
    from hpsearch.api import load_study_file
    from hpsearch.errors import ConfigError

    path = tmp_path / "x.yaml"
    path.write_text(f"study: x\ntask: {task_name}\ntrials: 1\nmax_epochs: 1\n"
                    f"search: {{learning_rate: {{low: 1.0e-3, high: 1.0e-2}}}}\nfixed: {{batchnorm: {placement}}}\n")
    with pytest.raises(ConfigError, match=f"batchnorm.*{placement}"):
        load_study_file(path)


@pytest.mark.parametrize("model_name,bn_type", [("fc", nn.BatchNorm1d), ("cnn", nn.BatchNorm2d)])
@pytest.mark.parametrize("placement", ["none", "before_activation", "after_activation"])
def test_single_input_placements(model_name: str, bn_type: type, placement: str) -> None:
    task = resolve_task("digits-bn")
    options = {**task.defaults, "model": model_name}
    data = task.splits(0, options)
    model = task.build_model(Regularization(batchnorm=placement), options, data)
    assert model.reg.batchnorm == placement
    blocks = [m for m in model.modules() if isinstance(m, nn.Sequential) and any(isinstance(c, bn_type) for c in m)]
    if placement == "none":
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        return
    assert len(blocks) == 2
    for block in blocks:
        kinds = [type(c) for c in block]
        bn_at, act_at = kinds.index(bn_type), kinds.index(nn.ReLU)
        assert (bn_at < act_at) == (placement == "before_activation")


def test_two_input_batches_stay_aligned_and_training_is_reproducible() -> None:
    task = resolve_task("digits-two-input")
    options = dict(task.defaults)
    data = task.splits(0, options)
    (images, one_hot), y = data.train
    for (bx, bh), by in TensorBatches((images, one_hot), y, batch_size=100, seed=3):
        rows = [int((images == row).all(1).nonzero()[0]) for row in bx[:5]]
        assert torch.equal(one_hot[rows], bh[:5]) and torch.equal(y[rows], by[:5])
    settings = TrialSettings(Regularization(batchnorm="after_concat"), options)
    a = fit(task, settings, data, max_epochs=1, seed=5, accelerator="cpu")
    b = fit(task, settings, data, max_epochs=1, seed=5, accelerator="cpu")
    assert a.error is None and a.metrics == b.metrics


# -- 4. seq2seq on the CO2 series (co2-seq2seq) ------------------------------------------------


@pytest.mark.parametrize("keep_prob", [1.0, 0.7])
def test_dropout_between_stacked_lstm_layers_and_before_the_head_follows_keep_prob(keep_prob: float) -> None:
    task = resolve_task("co2-seq2seq")
    data = task.load_data(0)
    model = task.build_model(Regularization(keep_prob=keep_prob), {**task.defaults, "layers": 3}, data)
    assert model.net.encoder.num_layers == 3
    assert model.net.encoder.dropout == pytest.approx(1.0 - keep_prob)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert [d.p for d in drops] == ([] if keep_prob == 1.0 else [pytest.approx(1.0 - keep_prob)])
    if drops:
        assert model.net.out_dropout is drops[0]  # the last hidden state, before the head
    assert model(data.val[0][:4]).shape == (4, 12)
    assert not any(isinstance(m, nn.LSTM) for name, m in model.net.named_modules() if "decoder" in name)


def test_the_head_forecasts_all_twelve_months_at_once_and_nothing_is_fed_back() -> None:
    """The forecast of month h never depends on the forecasts of months < h: the head is one
    Linear on the encoder's last hidden state, whose Jacobian w.r.t. that state is the head's
    weight (nothing predicted goes back into the network); in eval mode dropout is off and two
    calls agree."""
    task = resolve_task("co2-seq2seq")
    data = task.load_data(0)
    torch.manual_seed(0)
    model = task.build_model(Regularization(keep_prob=0.5), dict(task.defaults), data)
    model.eval()
    x = data.val[0][:3]
    states: list[torch.Tensor] = []
    model.net.head.register_forward_pre_hook(lambda _m, args: states.append(args[0]))
    out = model(x)
    torch.testing.assert_close(out, states[0] @ model.net.head.weight.T + model.net.head.bias)
    torch.testing.assert_close(model(x), out)
    assert states[0].shape == (3, task.defaults["hidden_units"])


def test_single_layer_lstm_drops_the_state_before_the_head_in_training_only() -> None:
    """Zaremba et al.: with one layer there is no between-layer connection, but the state
    before the head is dropped, so keep_prob < 1 still regularizes (half the head's inputs are
    zero in training at keep_prob 0.5; none at evaluation)."""
    task = resolve_task("co2-seq2seq")
    data = task.load_data(0)
    torch.manual_seed(0)
    model = task.build_model(Regularization(keep_prob=0.5), {**task.defaults, "layers": 1}, data)
    seen: list[torch.Tensor] = []
    model.net.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    x = data.val[0][:16]
    model.train()
    a, b = model(x), model(x)
    assert not torch.equal(a, b)
    zeros = float(torch.cat(seen).eq(0).float().mean())
    assert 0.4 < zeros < 0.6, zeros
    seen.clear()
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    assert float(torch.cat(seen).eq(0).float().mean()) < 0.01


def test_l2_scopes_on_the_lstm_forecaster_cover_head_lstm_weights_and_everything() -> None:
    """hidden 32, 2 layers, 36 months in, 12 out: the head has 32·12 + 12 parameters; each
    LSTM layer has weight_ih (128 × in), weight_hh (128 × 32) and two biases of 128."""
    task = resolve_task("co2-seq2seq")
    data = task.load_data(0)
    net = task.build_model(Regularization(), {**task.defaults, "hidden_units": 32, "layers": 2}, data).net
    count = lambda scope: sum(p.numel() for p in scoped_parameters(net, scope))  # noqa: E731
    head_w, head_b = 32 * 12, 12
    lstm_w = 128 * 1 + 128 * 32 + 128 * 32 + 128 * 32  # layer 0 (input 1), layer 1 (input 32)
    lstm_b = 4 * 128
    assert count("fc") == head_w + head_b
    assert count("weights") == lstm_w + head_w
    assert count("all") == lstm_w + lstm_b + head_w + head_b == sum(p.numel() for p in net.parameters())
    names = {id(p): n for n, p in net.named_parameters()}
    assert sorted(names[id(p)] for p in scoped_parameters(net, "weights")) == [
        "encoder.weight_hh_l0", "encoder.weight_hh_l1", "encoder.weight_ih_l0", "encoder.weight_ih_l1", "head.weight"]


def test_seasonal_baselines_match_a_hand_computation() -> None:
    """A 36-month window of 10 + month index + a season of +1 in January, forecast 12 ahead:
    seasonal naive repeats the last 12 months, the drift adds 12 (the yearly growth)."""
    from hpsearch.tasks.seq2seq import baselines, seasonal_naive, seasonal_naive_drift

    t = np.arange(48, dtype=float)
    series = 10 + t + (t % 12 == 0)
    x, y = series[None, :36], series[None, 36:]
    np.testing.assert_allclose(seasonal_naive(x), series[None, 24:36])
    np.testing.assert_allclose(seasonal_naive_drift(x), series[None, 24:36] + 12)
    assert baselines(x, y) == {"seasonal_naive": pytest.approx(144.0), "seasonal_naive_drift": pytest.approx(0.0)}
    # a flat series with a season: drift adds nothing, both baselines are exact
    flat = np.tile([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 4)[None]
    assert baselines(flat[:, :36], flat[:, 36:]) == {"seasonal_naive": 0.0, "seasonal_naive_drift": 0.0}
    # each window gets its own growth: 1 ppm a month in the first, 2 in the second
    two = np.stack([t, 2 * t])
    assert seasonal_naive_drift(two[:, :36])[:, 0].tolist() == [24 + 12, 48 + 24]


def test_co2_windows_are_chronological_and_the_baselines_are_scored_on_val_and_test() -> None:
    from hpsearch.tasks.seq2seq import HORIZON, INPUT_MONTHS, co2_monthly, windows

    series = co2_monthly()
    assert len(series) > 500 and 300 < series.min() < series.max() < 400  # ppm, 1958-2001
    data = resolve_task("co2-seq2seq").load_data(0)
    n = len(series)
    vx, vy = windows(series, int(n * 0.70), int(n * 0.85))
    assert vx.shape[1] == INPUT_MONTHS and vy.shape[1] == HORIZON and len(vx) == len(data.val[0])
    expected = float(np.mean((vx[:, -12:] - vy) ** 2))
    assert data.info["study_user_attrs"]["baseline_val_mse"] == pytest.approx(expected)
    tx, ty = windows(series, int(n * 0.85), n)
    assert len(tx) == len(data.test[0]) == 68
    growth = tx[:, -12:].mean(1, keepdims=True) - tx[:, -24:-12].mean(1, keepdims=True)
    tests = data.info["test_baselines"]
    assert tests["seasonal_naive"]["value"] == pytest.approx(float(np.mean((tx[:, -12:] - ty) ** 2)))
    assert tests["seasonal_naive_drift"]["value"] == pytest.approx(float(np.mean((tx[:, -12:] + growth - ty) ** 2)))
    assert tests["seasonal_naive_drift"]["value"] < tests["seasonal_naive"]["value"]  # the test period rises
    assert all("ppm^2" in b["about"] for b in tests.values())
    scale = data.info["scale"]
    torch.testing.assert_close(data.val[1] * scale, torch.tensor(vy - vx[:, -1:], dtype=torch.float32), atol=1e-4, rtol=0)


# -- 5. weight decay vs input normalization (tabular-mlp) ------------------------------------


@pytest.mark.parametrize("dataset", ["breast_cancer", "wine"])
def test_standardization_uses_training_statistics_only(dataset: str) -> None:
    task = resolve_task("tabular-mlp")
    options = {**task.defaults, "dataset": dataset}
    data = task.data_for(task.load_data(0), options)
    model = task.build_model(Regularization(input_norm="standardize"), options, data)
    std = next(m for m in model.modules() if isinstance(m, Standardize))
    torch.testing.assert_close(std.mean, data.train[0].mean(0))
    torch.testing.assert_close(std.std, data.train[0].std(0))
    everything = torch.cat([data.train[0], data.val[0], data.test[0]])
    assert not torch.allclose(std.mean, everything.mean(0))
    raw = task.build_model(Regularization(input_norm="none"), options, data)
    assert not any(isinstance(m, Standardize) for m in raw.modules())
    assert model(data.val[0][:3]).shape == (3, data.info["classes"])
    spread = data.train[0].std(0)
    assert float(spread.max() / spread.min()) > 100  # features on very different scales


# -- 6. triplet loss with semi-hard mining (digits-triplet) ----------------------------------


@pytest.fixture
def triplet_task(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hpsearch-cache"))
    return resolve_task("digits-triplet")


@pytest.mark.slow
@pytest.mark.parametrize("frozen", [0, 2, 3])
def test_frozen_layers_get_no_gradient_and_head_lr_is_multiplied(triplet_task, frozen: int) -> None:
    task = triplet_task
    data = task.load_data(0)
    reg = Regularization(optimizer="sgd", learning_rate=0.01, momentum=0.5, weight_decay=1e-4)
    model = task.build_model(reg, {**task.defaults, "frozen_layers": frozen, "head_lr_mult": 4.0}, data)
    net = model.net
    lower = [net.conv1, net.conv2, net.fc1]
    before = [p.detach().clone() for p in net.parameters()]
    opt = model.configure_optimizers()
    x, y = data.train[0][:128], data.train[1][:128]
    loss = model.loss_fn(model(x), y)
    assert float(loss.detach()) > 0  # the batch has semi-hard triplets
    loss.backward()
    opt.step()
    for i, layer in enumerate(lower):
        for p in layer.parameters():
            if i < frozen:
                assert not p.requires_grad and p.grad is None
            else:
                assert p.grad is not None and float(p.grad.abs().sum()) > 0
    changed = [not torch.equal(a, b) for a, b in zip(before, net.parameters())]
    n_frozen = sum(len(list(layer.parameters())) for layer in lower[:frozen])
    assert not any(changed[:n_frozen]) and all(changed[n_frozen:])
    head = [g for g in opt.param_groups if g.get("name") == "head"]
    assert len(head) == 1 and head[0]["lr"] == pytest.approx(4.0 * 0.01)
    assert {id(p) for p in head[0]["params"]} == {id(p) for p in net.head.parameters()}
    assert all(g["lr"] == pytest.approx(0.01) for g in opt.param_groups if g.get("name") != "head")
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) not in in_opt for layer in lower[:frozen] for p in layer.parameters())


def test_semihard_miner_and_pretrained_backbone_cache(triplet_task) -> None:
    from pytorch_metric_learning import losses, miners

    task = triplet_task
    data = task.load_data(0)
    path = Path(data.info["backbone"])
    assert path.exists() and "seed0" in path.name
    mtime = path.stat().st_mtime_ns
    model = task.build_model(Regularization(optimizer="sgd"), dict(task.defaults), data)
    assert isinstance(model.loss_fn.miner, miners.TripletMarginMiner)
    assert model.loss_fn.miner.type_of_triplets == "semihard"
    assert isinstance(model.loss_fn.loss, losses.TripletMarginLoss)
    state = torch.load(path, weights_only=True)
    torch.testing.assert_close(model.net.conv1[0].weight, state["conv1.0.weight"])
    from hpsearch.tasks.triplet import cached_backbone

    assert cached_backbone(data.train, 0) == path and path.stat().st_mtime_ns == mtime  # no retraining
    emb = model(data.val[0])
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(emb)))
    recall = float(model.evaluate(data.val[0], data.val[1])["recall_at_1"])
    assert recall > 0.8  # the pretrained backbone already separates digits
