"""Task registry, the digits split, the built-in models and custom tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hpsearch.errors import ConfigError
from hpsearch.models.cnn import SmallCNN
from hpsearch.regularization import Regularization, Standardize
from hpsearch.tasks import builtin_task_names, resolve_task
from hpsearch.tasks.digits import load_digits_splits


def test_builtin_tasks() -> None:
    assert {"digits-mlp", "digits-cnn"} <= set(builtin_task_names())


def test_digits_split_is_stratified_disjoint_and_fixed_by_seed() -> None:
    a, b, other = load_digits_splits(0), load_digits_splits(0), load_digits_splits(1)
    idx = [a.info[k] for k in ("train_indices", "val_indices", "test_indices")]
    assert sum(len(i) for i in idx) == 1797
    assert len(set(np.concatenate(idx))) == 1797
    assert all(np.array_equal(x, y) for x, y in zip(idx, [b.info[k] for k in ("train_indices", "val_indices", "test_indices")]))
    assert not np.array_equal(idx[2], other.info["test_indices"])
    for split in (a.train, a.val, a.test):
        shares = torch.bincount(split[1], minlength=10).float() / len(split[1])
        assert float(shares.max() - shares.min()) < 0.02  # every class ~10% in every split
    assert float(a.train[0].max()) <= 1.0 and float(a.train[0].min()) >= 0.0


def test_digits_mlp_model_follows_settings() -> None:
    task = resolve_task("digits-mlp")
    data = task.load_data(0)
    reg = Regularization(batchnorm="after_activation", keep_prob=0.5, input_norm="standardize")
    model = task.build_model(reg, {"hidden_units": 32, "hidden_layers": 3, "batch_size": 64}, data)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linear] == [32, 32, 32, 10]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 3
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 3
    standardize = next(m for m in model.modules() if isinstance(m, Standardize))
    torch.testing.assert_close(standardize.mean, data.train[0].mean(0))
    assert model(data.val[0][:5]).shape == (5, 10)


def test_digits_cnn_has_two_conv_and_two_fc_layers() -> None:
    task = resolve_task("digits-cnn")
    data = task.load_data(0)
    model = task.build_model(Regularization(batchnorm="before_activation"), dict(task.defaults), data)
    assert isinstance(model.net, SmallCNN)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2
    assert model(data.val[0][:3]).shape == (3, 10)


def test_custom_task_by_reference() -> None:
    task = resolve_task("custom_tasks:toy_regression")
    assert task.name == "toy-regression" and task.direction == "minimize"


@pytest.mark.parametrize("ref", ["nope", "no_such_module:f", "custom_tasks:missing", "custom_tasks:returns_wrong_type"])
def test_bad_task_references(ref: str) -> None:
    with pytest.raises(ConfigError, match="task"):
        resolve_task(ref)


def test_digits_cnn_train_size_is_a_stratified_subset_of_the_training_split_only() -> None:
    task = resolve_task("digits-cnn")
    full = task.splits(0, {})
    small = task.splits(0, {"train_size": 200})
    assert len(small.train[1]) == 200 and small.train[1].bincount().tolist() == [20] * 10
    assert small.val[0] is full.val[0] and small.test[0] is full.test[0]  # validation and test untouched
    rows = {tuple(r.tolist()) for r in full.train[0]}
    assert all(tuple(r.tolist()) in rows for r in small.train[0])  # drawn from the training split
    again = task.splits(0, {"train_size": 200})
    assert (again.train[0] == small.train[0]).all()  # the same subset for every trial of a split seed
