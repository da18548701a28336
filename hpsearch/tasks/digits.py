"""Built-in tasks on scikit-learn's bundled 8×8 digits (1,797 images, 10 classes)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from hpsearch.params import REGULARIZATION_PARAMS, SINGLE_INPUT_BATCHNORM, TRAINING_PARAMS, ParamSpec, positive_int
from hpsearch.tasks.base import DataSplits, Task

_COMMON_PARAMS = {
    **REGULARIZATION_PARAMS,
    "batchnorm": REGULARIZATION_PARAMS["batchnorm"].narrowed(SINGLE_INPUT_BATCHNORM),
    **TRAINING_PARAMS,
}


@lru_cache(maxsize=8)
def load_digits_splits(seed: int) -> DataSplits:
    """Digits scaled to [0, 1], split 60/20/20 stratified by class, fixed by ``seed``."""
    import torch
    from sklearn.datasets import load_digits

    from hpsearch.data import stratified_split

    bunch = load_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.long)
    train, val, test = stratified_split(bunch.target, seed)
    return DataSplits(
        train=(x[train], y[train]),
        val=(x[val], y[val]),
        test=(x[test], y[test]),
        info={"train_indices": train, "val_indices": val, "test_indices": test},
    )


def training_subset(data: DataSplits, options: Mapping[str, Any]) -> DataSplits:
    """The splits with only ``train_size`` training examples (0 = all): a class-stratified
    subset of the training split, the same for every trial of a split seed; validation and test
    are untouched. A small training set lets a model overfit, so a regularizer has something to do."""
    size = int(options.get("train_size", 0))
    x, y = data.train
    if size <= 0 or size >= len(y):
        return data
    import numpy as np
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(y)), train_size=size, stratify=y.numpy(), random_state=0)
    keep = np.sort(keep)
    return DataSplits(train=(x[keep], y[keep]), val=data.val, test=data.test, info={**data.info, "train_size": size})


def _build_mlp(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.base import ClassifierModule
    from hpsearch.models.mlp import mlp

    net = mlp(64, 10, options["hidden_units"], options["hidden_layers"], reg, data.train[0])
    return ClassifierModule(net, reg)


def _build_cnn(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.base import ClassifierModule
    from hpsearch.models.cnn import SmallCNN

    net = SmallCNN(8, 10, options["channels"], options["hidden_units"], reg, data.train[0])
    return ClassifierModule(net, reg)


def digits_mlp() -> Task:
    """``digits-mlp``: an MLP (default 2 × 128 hidden units) on the 64 pixel features."""
    return Task(
        name="digits-mlp",
        description="MLP on scikit-learn's 8x8 digits",
        metric="val_acc",
        direction="maximize",
        metrics=("val_acc", "val_loss"),
        params={
            **_COMMON_PARAMS,
            "hidden_units": positive_int("width of each hidden layer"),
            "hidden_layers": positive_int("number of hidden layers"),
        },
        defaults={"batch_size": 64, "hidden_units": 128, "hidden_layers": 2},
        load_data=load_digits_splits,
        build_model=_build_mlp,
    )


def digits_cnn() -> Task:
    """``digits-cnn``: two conv layers (``channels``, 2×``channels``) and two FC layers."""
    return Task(
        name="digits-cnn",
        description="two-conv, two-FC CNN on scikit-learn's 8x8 digits",
        metric="val_acc",
        direction="maximize",
        metrics=("val_acc", "val_loss"),
        params={
            **_COMMON_PARAMS,
            "channels": positive_int("channels of the first conv layer (the second has twice)"),
            "hidden_units": positive_int("width of fc1"),
            "train_size": ParamSpec("int", "training examples used: a class-stratified subset of the training split "
                                           "(0 = all 1,077)", low=0),
        },
        defaults={"batch_size": 64, "channels": 16, "hidden_units": 64, "train_size": 0},
        load_data=load_digits_splits,
        build_model=_build_cnn,
        pick_data=training_subset,
    )
