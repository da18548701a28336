"""``digits-triplet``: fine-tune an embedding network with triplet loss on semi-hard triplets,
starting from a CNN pretrained on digit classification (pretrained by the task, cached on disk
per seed)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from hpsearch.params import REGULARIZATION_PARAMS, TRAINING_PARAMS, ParamSpec, positive_int
from hpsearch.tasks.base import DataSplits, Task

CACHE_ENV = "HPSEARCH_CACHE_DIR"
#: The pretraining recipe; part of the cache file name, so changing it retrains.
PRETRAIN: dict[str, Any] = {"channels": 16, "hidden_units": 64, "epochs": 15, "batch_size": 64, "lr": 1e-3}
PRETRAIN_KEY = "c{channels}-h{hidden_units}-e{epochs}-b{batch_size}-lr{lr:g}-v1".format(**PRETRAIN)


def cache_dir() -> Path:
    """Where pretrained backbones are kept: ``$HPSEARCH_CACHE_DIR``, else ``~/.cache/hpsearch``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hpsearch")


def new_backbone() -> Any:
    """A fresh SmallCNN of the pretraining recipe (no batchnorm, no dropout)."""
    import torch

    from hpsearch.models.cnn import SmallCNN
    from hpsearch.regularization import Regularization

    return SmallCNN(8, 10, PRETRAIN["channels"], PRETRAIN["hidden_units"], Regularization(), torch.zeros(1, 64))


def pretrain_backbone(train: tuple[Any, Any], seed: int) -> dict[str, Any]:
    """Train the backbone on digit classification (training split only); its state dict."""
    import torch

    from hpsearch.data import TensorBatches

    torch.manual_seed(seed)
    net = new_backbone()
    opt = torch.optim.Adam(net.parameters(), lr=PRETRAIN["lr"])
    batches = TensorBatches(*train, batch_size=PRETRAIN["batch_size"], seed=seed)
    net.train()
    for _ in range(PRETRAIN["epochs"]):
        for x, y in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    return net.state_dict()


def cached_backbone(train: tuple[Any, Any], seed: int) -> Path:
    """Path of the pretrained backbone for ``seed``; pretrains and writes it (atomically) when
    the cache has none, so parallel workers at worst both train the same weights."""
    import torch

    path = cache_dir() / f"digits-backbone-{PRETRAIN_KEY}-seed{seed}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(pretrain_backbone(train, seed), tmp)
        os.replace(tmp, path)
    return path


@lru_cache(maxsize=4)
def load_triplet_splits(seed: int) -> DataSplits:
    """The digits split; ``info['backbone']`` is the cached pretrained backbone's path."""
    from hpsearch.tasks.digits import load_digits_splits

    digits = load_digits_splits(seed)
    path = cached_backbone(digits.train, seed)
    return DataSplits(train=digits.train, val=digits.val, test=digits.test, info={"backbone": str(path)})


def _build(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    import torch

    from hpsearch.models.embedding import EmbeddingNet, TripletModule

    backbone = new_backbone()
    backbone.load_state_dict(torch.load(data.info["backbone"], weights_only=True))
    net = EmbeddingNet(backbone, options["embedding_dim"], options["frozen_layers"])
    return TripletModule(net, reg, options["margin"], options["head_lr_mult"])


def digits_triplet() -> Task:
    """``digits-triplet``: pretrained conv1, conv2, fc1 + new embedding head; metric Recall@1."""
    keep = {k: REGULARIZATION_PARAMS[k] for k in ("learning_rate", "weight_decay", "l2_mode", "l2_scope", "optimizer", "momentum")}
    return Task(
        name="digits-triplet",
        description="triplet loss (semi-hard mining) fine-tuning of a CNN pretrained on digits",
        metric="val_recall_at_1",
        direction="maximize",
        metrics=("val_recall_at_1",),
        params={
            **keep,
            **TRAINING_PARAMS,
            "frozen_layers": ParamSpec("int", "lower layers (conv1, conv2, fc1) kept frozen", low=0, high=3),
            "head_lr_mult": ParamSpec("float", "learning rate of the embedding head ÷ the base rate", low=0.0, low_open=True),
            "embedding_dim": positive_int("size of the embedding"),
            "margin": ParamSpec("float", "triplet margin (miner and loss)", low=0.0, low_open=True),
        },
        defaults={"batch_size": 128, "frozen_layers": 0, "head_lr_mult": 1.0, "embedding_dim": 32, "margin": 0.2, "optimizer": "sgd"},
        load_data=load_triplet_splits,
        build_model=_build,
    )
