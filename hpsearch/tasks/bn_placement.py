"""Where BatchNorm goes: ``digits-bn`` (an FC net or a shallow CNN, ``batchnorm`` none /
before / after the activation) and ``digits-two-input`` (CNN image features concatenated with a
one-hot side input, ``batchnorm`` none / on the image branch before the concat / after the
concat, one-hot columns included).

In ``digits-two-input`` the one-hot carries what the image lacks: each example draws one of
``N_TASKS`` tasks at random, the one-hot names it, and the task decides the label (task 0: the
digit; task 1: the digit + 5, mod 10). The image alone leaves the label ambiguous between two
classes, the one-hot alone says nothing about the digit; both are needed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from hpsearch.params import (
    REGULARIZATION_PARAMS,
    SINGLE_INPUT_BATCHNORM,
    TRAINING_PARAMS,
    TWO_INPUT_BATCHNORM,
    ParamSpec,
    positive_int,
)
from hpsearch.tasks.base import DataSplits, Task

#: The tasks an example can draw; task ``k`` labels a digit ``d`` as ``(d + k * SHIFT) % 10``.
N_TASKS = 2
SHIFT = 5
MODELS = ("fc", "cnn")


def task_labels(digits: Any, tasks: Any) -> Any:
    """The label of each example: its digit shifted by ``SHIFT`` per task index, mod 10."""
    return (digits + SHIFT * tasks) % 10


def _accuracy(predicted: Any, y: Any) -> float:
    return float((predicted == y).double().mean())


def majority_baseline(train_y: Any, test_y: Any) -> float:
    """Test accuracy of always predicting the training split's most frequent label."""
    import torch

    return _accuracy(torch.full_like(test_y, int(torch.bincount(train_y).argmax())), test_y)


def one_hot_only_baseline(train: tuple[Any, Any], test: tuple[Any, Any]) -> float:
    """Test accuracy of the best predictor that sees only the one-hot: for each task, the
    training split's most frequent label of that task."""
    import torch

    (_, train_side), train_y = train
    (_, test_side), test_y = test
    train_task, test_task = train_side.argmax(1), test_side.argmax(1)
    best = torch.stack([torch.bincount(train_y[train_task == k], minlength=10).argmax() for k in range(N_TASKS)])
    return _accuracy(best[test_task], test_y)


def image_only_baselines(train: tuple[Any, Any], test: tuple[Any, Any], test_digits: Any) -> dict[str, float]:
    """Two image-only test accuracies: ``trained`` (multinomial logistic regression on the 64
    pixels, fitted to the training split's labels) and ``oracle`` (knows each test image's true
    digit and predicts the label of the training split's most frequent task: the most any
    image-only predictor can expect, 1 / N_TASKS, up to the test split's task draw)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    (train_x, train_side), train_y = train
    (test_x, test_side), test_y = test
    model = LogisticRegression(max_iter=2000).fit(train_x.numpy(), train_y.numpy())
    trained = _accuracy(torch.as_tensor(model.predict(test_x.numpy())), test_y)
    common = int(torch.bincount(train_side.argmax(1), minlength=N_TASKS).argmax())
    oracle = _accuracy(task_labels(test_digits, torch.full_like(test_digits, common)), test_y)
    return {"trained": trained, "oracle": oracle}


@lru_cache(maxsize=8)
def load_bn_splits(seed: int) -> DataSplits:
    """The digits split of ``digits-cnn``, with the majority-class test baseline."""
    from hpsearch.tasks.digits import load_digits_splits

    digits = load_digits_splits(seed)
    chance = majority_baseline(digits.train[1], digits.test[1])
    baselines = {"majority": {"value": chance, "about": "always the training split's most frequent digit"}}
    return DataSplits(train=digits.train, val=digits.val, test=digits.test, info={**digits.info, "test_baselines": baselines})


@lru_cache(maxsize=8)
def load_two_input_splits(seed: int) -> DataSplits:
    """The digits split of ``digits-cnn`` with inputs ``(image, one-hot task)`` and the task's
    label; every example's task is drawn uniformly at random (fixed by ``seed``).

    ``info['tasks']`` holds each split's task indices and ``info['digits']`` its digits;
    ``info['test_baselines']`` the majority, one-hot-only and image-only test accuracies."""
    import torch

    from hpsearch.tasks.digits import load_digits_splits

    digits = load_digits_splits(seed)
    draw = torch.Generator().manual_seed(10_007 * seed + 1)
    tasks = {name: torch.randint(0, N_TASKS, (len(split[1]),), generator=draw)
             for name, split in (("train", digits.train), ("val", digits.val), ("test", digits.test))}

    def paired(name: str, split: tuple[Any, Any]) -> tuple[Any, Any]:
        side = torch.nn.functional.one_hot(tasks[name], N_TASKS).float()
        return (split[0], side), task_labels(split[1], tasks[name])

    train, val, test = paired("train", digits.train), paired("val", digits.val), paired("test", digits.test)
    image = image_only_baselines(train, test, digits.test[1])
    baselines = {
        "majority": {"value": majority_baseline(train[1], test[1]), "about": "always the training split's most frequent label"},
        "one_hot_only": {"value": one_hot_only_baseline(train, test),
                         "about": "one-hot only: each task's most frequent training label"},
        "image_only_trained": {"value": image["trained"],
                               "about": "image only: logistic regression on the pixels, fitted to the training labels"},
        "image_only_oracle": {"value": image["oracle"],
                              "about": f"image only, knowing the true digit: the most common task's label "
                                       f"(expected {1 / N_TASKS:.2f})"},
    }
    info = {"tasks": tasks, "digits": {"train": digits.train[1], "val": digits.val[1], "test": digits.test[1]},
            "test_baselines": baselines}
    return DataSplits(train=train, val=val, test=test, info=info)


def _build_single(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.base import ClassifierModule
    from hpsearch.models.cnn import SmallCNN
    from hpsearch.models.mlp import mlp

    hidden = options["hidden_units"]
    if options["model"] == "fc":
        return ClassifierModule(mlp(64, 10, hidden, 2, reg, data.train[0]), reg)
    return ClassifierModule(SmallCNN(8, 10, options["channels"], hidden, reg, data.train[0]), reg)


def _build_two_input(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.base import ClassifierModule
    from hpsearch.models.two_input import TwoInputNet

    images, side = data.train[0]
    net = TwoInputNet(8, side.shape[1], 10, options["channels"], options["hidden_units"], reg, images)
    return ClassifierModule(net, reg)


def _params(placements: tuple[str, ...]) -> dict[str, ParamSpec]:
    return {
        **REGULARIZATION_PARAMS,
        "batchnorm": REGULARIZATION_PARAMS["batchnorm"].narrowed(placements),
        **TRAINING_PARAMS,
        "channels": positive_int("channels of the first conv layer (the second has twice)"),
        "hidden_units": positive_int("width of the FC layers"),
    }


def digits_bn() -> Task:
    """``digits-bn``: an FC net (2 hidden layers) or a shallow CNN (2 conv + 2 FC), chosen by
    ``model``, with ``batchnorm`` none / before_activation / after_activation in every block."""
    return Task(
        name="digits-bn",
        description="batchnorm placement in an FC net or a shallow CNN on digits",
        metric="val_acc",
        direction="maximize",
        metrics=("val_acc", "val_loss"),
        params={
            **_params(SINGLE_INPUT_BATCHNORM),
            "model": ParamSpec("choice", "fc: 2 hidden layers of hidden_units; cnn: 2 conv + 2 FC", choices=MODELS),
        },
        defaults={"batch_size": 64, "model": "fc", "channels": 16, "hidden_units": 64},
        load_data=load_bn_splits,
        build_model=_build_single,
    )


def digits_two_input() -> Task:
    """``digits-two-input``: CNN image features → FC, concatenated with a one-hot of the
    example's task (which decides its label), → FC → out; ``batchnorm`` none /
    fc_before_concat / after_concat."""
    return Task(
        name="digits-two-input",
        description="batchnorm around the concat of CNN image features and a one-hot task input on digits",
        metric="val_acc",
        direction="maximize",
        metrics=("val_acc", "val_loss"),
        params=_params(TWO_INPUT_BATCHNORM),
        defaults={"batch_size": 64, "channels": 16, "hidden_units": 64},
        load_data=load_two_input_splits,
        build_model=_build_two_input,
    )
