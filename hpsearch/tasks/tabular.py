"""``tabular-mlp``: an MLP on scikit-learn's bundled breast-cancer or wine tables, whose
features sit on very different scales (to compare ``input_norm`` with weight decay)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from hpsearch.params import REGULARIZATION_PARAMS, SINGLE_INPUT_BATCHNORM, TRAINING_PARAMS, ParamSpec, positive_int
from hpsearch.tasks.base import DataSplits, Task
from hpsearch.tasks.toy2d import pick_variant

DATASETS = ("breast_cancer", "wine")


@lru_cache(maxsize=8)
def load_tabular_splits(seed: int) -> DataSplits:
    """Both tables, raw features (no scaling), split 60/20/20 stratified by class;
    ``info['variants']`` maps table name → DataSplits. Top level: breast_cancer."""
    import torch
    from sklearn.datasets import load_breast_cancer, load_wine

    from hpsearch.data import stratified_split

    variants = {}
    for name, loader in (("breast_cancer", load_breast_cancer), ("wine", load_wine)):
        bunch = loader()
        x = torch.tensor(bunch.data, dtype=torch.float32)
        y = torch.tensor(bunch.target, dtype=torch.long)
        train, val, test = stratified_split(bunch.target, seed)
        variants[name] = DataSplits(
            train=(x[train], y[train]),
            val=(x[val], y[val]),
            test=(x[test], y[test]),
            info={"dataset": name, "classes": int(y.max()) + 1},
        )
    first = variants[DATASETS[0]]
    return DataSplits(train=first.train, val=first.val, test=first.test, info={"variants": variants})


def _build(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    from hpsearch.models.base import ClassifierModule
    from hpsearch.models.mlp import mlp

    x = data.train[0]
    classes = int(data.info["classes"])
    return ClassifierModule(mlp(x.shape[1], classes, options["hidden_units"], options["hidden_layers"], reg, x), reg)


def tabular_mlp() -> Task:
    """``tabular-mlp``: input_layer (``input_norm``) → dense blocks → logits."""
    return Task(
        name="tabular-mlp",
        description="MLP on scikit-learn's breast-cancer or wine table (raw feature scales)",
        metric="val_acc",
        direction="maximize",
        metrics=("val_acc", "val_loss"),
        params={
            **REGULARIZATION_PARAMS,
            "batchnorm": REGULARIZATION_PARAMS["batchnorm"].narrowed(SINGLE_INPUT_BATCHNORM),
            **TRAINING_PARAMS,
            "hidden_units": positive_int("width of each hidden layer"),
            "hidden_layers": positive_int("number of hidden layers"),
            "dataset": ParamSpec("choice", "bundled table", choices=DATASETS),
        },
        defaults={"batch_size": 32, "hidden_units": 64, "hidden_layers": 2, "dataset": "breast_cancer"},
        load_data=load_tabular_splits,
        build_model=_build,
        pick_data=pick_variant,
    )
