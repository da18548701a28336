"""``toy2d-mlp``: a one-hidden-layer MLP on 2-D classification sets from scikit-learn
generators (moons, circles, an XOR-like set of four blobs)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from hpsearch.params import REGULARIZATION_PARAMS, SINGLE_INPUT_BATCHNORM, TRAINING_PARAMS, ParamSpec, positive_int
from hpsearch.tasks.base import DataSplits, Task

DATASETS = ("moons", "circles", "xor")
N_POINTS = 600


def make_points(name: str, seed: int) -> tuple[Any, Any]:
    """``N_POINTS`` 2-D points and 0/1 labels of the named set, generated from ``seed``."""
    import numpy as np
    from sklearn.datasets import make_blobs, make_circles, make_moons

    if name == "moons":
        return make_moons(N_POINTS, noise=0.2, random_state=seed)
    if name == "circles":
        return make_circles(N_POINTS, noise=0.1, factor=0.5, random_state=seed)
    if name == "xor":  # four blobs at (±1, ±1); opposite corners share a class
        x, blob = make_blobs(N_POINTS, centers=[[-1, -1], [1, 1], [-1, 1], [1, -1]], cluster_std=0.45, random_state=seed)
        return x, (blob >= 2).astype(np.int64)
    raise ValueError(f"dataset: got {name!r}; valid: {', '.join(DATASETS)}")


@lru_cache(maxsize=8)
def load_toy2d_splits(seed: int) -> DataSplits:
    """Every set, split 60/20/20 stratified; ``info['variants']`` maps set name → DataSplits.
    The top-level splits are those of ``moons``."""
    import torch

    from hpsearch.data import stratified_split

    variants = {}
    for name in DATASETS:
        points, labels = make_points(name, seed)
        x = torch.tensor(points, dtype=torch.float32)
        y = torch.tensor(labels, dtype=torch.long)
        train, val, test = stratified_split(labels, seed)
        variants[name] = DataSplits(train=(x[train], y[train]), val=(x[val], y[val]), test=(x[test], y[test]), info={"dataset": name})
    first = variants[DATASETS[0]]
    return DataSplits(train=first.train, val=first.val, test=first.test, info={"variants": variants})


def pick_variant(data: DataSplits, options: Mapping[str, Any]) -> DataSplits:
    """The splits of ``options['dataset']`` from a multi-dataset :class:`DataSplits`."""
    return data.info["variants"][options["dataset"]]


def _build(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.base import ClassifierModule
    from hpsearch.models.mlp import mlp

    return ClassifierModule(mlp(2, 2, options["width"], 1, reg, data.train[0]), reg)


def toy2d_mlp() -> Task:
    """``toy2d-mlp``: 2 inputs → one hidden layer of ``width`` units → 2 logits."""
    return Task(
        name="toy2d-mlp",
        description="one-hidden-layer MLP on 2-D moons / circles / XOR (scikit-learn generators)",
        metric="val_acc",
        direction="maximize",
        metrics=("val_acc", "val_loss"),
        params={
            **REGULARIZATION_PARAMS,
            "batchnorm": REGULARIZATION_PARAMS["batchnorm"].narrowed(SINGLE_INPUT_BATCHNORM),
            **TRAINING_PARAMS,
            "width": positive_int("units of the single hidden layer"),
            "dataset": ParamSpec("choice", "2-D data set", choices=DATASETS),
        },
        defaults={"batch_size": 32, "width": 10, "dataset": "moons"},
        load_data=load_toy2d_splits,
        build_model=_build,
        pick_data=pick_variant,
    )
