"""``digits-bn``: where BatchNorm goes in an FC net, a shallow CNN, and around the concat of a
two-input model (CNN image features + a one-hot side input).

The searched ``placement`` names the model and the batchnorm placement together
(``fc/none``, ``cnn/before_activation``, ``two_input/after_concat``...), so every sampled
combination is a valid model; the model is built with ``batchnorm`` set from it.
"""

from __future__ import annotations

from dataclasses import replace
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

PLACEMENTS = (
    *(f"fc/{b}" for b in SINGLE_INPUT_BATCHNORM),
    *(f"cnn/{b}" for b in SINGLE_INPUT_BATCHNORM),
    *(f"two_input/{b}" for b in TWO_INPUT_BATCHNORM),
)
INK_BINS = 4


def ink_one_hot(images: Any, edges: Any) -> Any:
    """One-hot (``INK_BINS`` columns) of each image's total ink, binned at ``edges``."""
    import torch

    return torch.nn.functional.one_hot(torch.bucketize(images.sum(dim=1), edges), INK_BINS).float()


@lru_cache(maxsize=8)
def load_bn_splits(seed: int) -> DataSplits:
    """The digits split of ``digits-cnn``; ``info['variants']['two_input']`` carries inputs
    ``(image, one-hot ink quartile)`` with quartile edges from the training split only."""
    import torch

    from hpsearch.tasks.digits import load_digits_splits

    digits = load_digits_splits(seed)
    ink = digits.train[0].sum(dim=1)
    edges = torch.quantile(ink, torch.tensor([0.25, 0.5, 0.75]))

    def paired(split: tuple[Any, Any]) -> tuple[Any, Any]:
        return (split[0], ink_one_hot(split[0], edges)), split[1]

    two = DataSplits(train=paired(digits.train), val=paired(digits.val), test=paired(digits.test), info={"ink_edges": edges})
    return DataSplits(
        train=digits.train,
        val=digits.val,
        test=digits.test,
        info={"variants": {"fc": digits, "cnn": digits, "two_input": two}},
    )


def _pick(data: DataSplits, options: Mapping[str, Any]) -> DataSplits:
    return data.info["variants"][options["placement"].split("/")[0]]


def _build(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.base import ClassifierModule
    from hpsearch.models.cnn import SmallCNN
    from hpsearch.models.mlp import mlp
    from hpsearch.models.two_input import TwoInputNet

    model, _, batchnorm = options["placement"].partition("/")
    reg = replace(reg, batchnorm=batchnorm)
    hidden, channels = options["hidden_units"], options["channels"]
    net: Any
    if model == "fc":
        net = mlp(64, 10, hidden, 2, reg, data.train[0])
    elif model == "cnn":
        net = SmallCNN(8, 10, channels, hidden, reg, data.train[0])
    else:
        images, side = data.train[0]
        net = TwoInputNet(8, side.shape[1], 10, channels, hidden, reg, images)
    return ClassifierModule(net, reg)


def digits_bn() -> Task:
    """``digits-bn``: FC net (2 hidden layers), shallow CNN (2 conv + 2 FC), or the two-input
    model, with the batchnorm placement named by ``placement``."""
    params = {k: v for k, v in REGULARIZATION_PARAMS.items() if k != "batchnorm"}
    return Task(
        name="digits-bn",
        description="batchnorm placement: FC net, shallow CNN, two-input CNN + one-hot model on digits",
        metric="val_acc",
        direction="maximize",
        metrics=("val_acc", "val_loss"),
        params={
            **params,
            **TRAINING_PARAMS,
            "placement": ParamSpec("choice", "model/batchnorm placement (sets batchnorm)", choices=PLACEMENTS),
            "channels": positive_int("channels of the first conv layer (cnn, two_input)"),
            "hidden_units": positive_int("width of the FC layers"),
        },
        defaults={"batch_size": 64, "placement": "fc/none", "channels": 16, "hidden_units": 64},
        load_data=load_bn_splits,
        build_model=_build,
        pick_data=_pick,
    )
