"""Triplet-loss tasks: fine-tune an embedding network with triplet loss on mined triplets,
starting from a CNN the task pretrains on classification (cached on disk per seed).

``digits-triplet``: 8×8 digits, the same ten classes in train, validation and test.
``glyphs-triplet``: generated glyph identities under strong nuisance transforms
(:mod:`hpsearch.tasks.glyphs`); validation and test identities are never seen in training or
pretraining, and the task reports raw-pixel and pretrained-feature Recall@1 on the test
identities as baselines."""

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
#: The glyph backbone's recipe: wider, and longer trained (50 identities, 3,200 images).
GLYPH_PRETRAIN: dict[str, Any] = {"channels": 32, "hidden_units": 128, "epochs": 30, "batch_size": 64, "lr": 1e-3}


def pretrain_key(recipe: Mapping[str, Any]) -> str:
    """The pretraining recipe as text, for cache file names."""
    return "c{channels}-h{hidden_units}-e{epochs}-b{batch_size}-lr{lr:g}-v1".format(**recipe)


PRETRAIN_KEY = pretrain_key(PRETRAIN)


def cache_dir() -> Path:
    """Where pretrained backbones are kept: ``$HPSEARCH_CACHE_DIR``, else ``~/.cache/hpsearch``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hpsearch")


def new_backbone(side: int = 8, classes: int = 10, recipe: Mapping[str, Any] = PRETRAIN) -> Any:
    """A fresh SmallCNN of the pretraining ``recipe`` (no batchnorm, no dropout) for
    ``side``×``side`` images and ``classes`` classes (default: the digits)."""
    import torch

    from hpsearch.models.cnn import SmallCNN
    from hpsearch.regularization import Regularization

    return SmallCNN(side, classes, recipe["channels"], recipe["hidden_units"], Regularization(), torch.zeros(1, side * side))


def pretrain_backbone(
    train: tuple[Any, Any], seed: int, side: int = 8, classes: int = 10, recipe: Mapping[str, Any] = PRETRAIN
) -> dict[str, Any]:
    """Train the backbone on classification of the training split only (labels 0..classes-1);
    its state dict."""
    import torch

    from hpsearch.data import TensorBatches

    torch.manual_seed(seed)
    net = new_backbone(side, classes, recipe)
    opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
    batches = TensorBatches(*train, batch_size=recipe["batch_size"], seed=seed)
    net.train()
    for _ in range(recipe["epochs"]):
        for x, y in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    return net.state_dict()


def cached_backbone(
    train: tuple[Any, Any],
    seed: int,
    data_key: str = "digits",
    side: int = 8,
    classes: int = 10,
    recipe: Mapping[str, Any] = PRETRAIN,
) -> Path:
    """Path of the pretrained backbone for ``seed`` on the data named ``data_key`` (its recipe);
    pretrains and writes it (atomically) when the cache has none, so parallel workers at worst
    both train the same weights."""
    import torch

    path = cache_dir() / f"{data_key}-backbone-{pretrain_key(recipe)}-seed{seed}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(pretrain_backbone(train, seed, side, classes, recipe), tmp)
        os.replace(tmp, path)
    return path


@lru_cache(maxsize=4)
def load_triplet_splits(seed: int) -> DataSplits:
    """The digits split; ``info['backbone']`` is the cached pretrained backbone's path."""
    from hpsearch.tasks.digits import load_digits_splits

    digits = load_digits_splits(seed)
    path = cached_backbone(digits.train, seed)
    return DataSplits(train=digits.train, val=digits.val, test=digits.test, info={"backbone": str(path)})


@lru_cache(maxsize=4)
def load_glyph_splits(seed: int) -> DataSplits:
    """The glyph identities split by ``seed`` into disjoint train / validation / test
    identities (labels renumbered 0..k-1 within each split); the backbone is pretrained on the
    train identities only. ``info``: the backbone's path, the identity sets and
    ``test_baselines`` (Recall@1 on the test identities of raw pixels and of the pretrained
    backbone's features)."""
    import numpy as np
    import torch

    from hpsearch.tasks.glyphs import GlyphRecipe, glyph_dataset, identity_split

    recipe = GlyphRecipe()
    images, labels = glyph_dataset(recipe)
    ids = identity_split(recipe, seed)

    def part(keep: np.ndarray) -> tuple[Any, Any]:
        mask = np.isin(labels, keep)
        return torch.from_numpy(images[mask]), torch.from_numpy(np.searchsorted(keep, labels[mask]))

    train, val, test = (part(k) for k in ids)
    path = cached_backbone(train, seed, f"glyphs-{recipe.key()}", recipe.side, recipe.train_identities, GLYPH_PRETRAIN)
    return DataSplits(
        train=train,
        val=val,
        test=test,
        info={
            "backbone": str(path),
            "side": recipe.side,
            "classes": recipe.train_identities,
            "pretrain": dict(GLYPH_PRETRAIN),
            "identities": {name: [int(i) for i in k] for name, k in zip(("train", "val", "test"), ids)},
            "test_baselines": recall_baselines(test, path, new_backbone(recipe.side, recipe.train_identities, GLYPH_PRETRAIN)),
        },
    )


def pretrained_features(x: Any, backbone_path: str | Path, backbone: Any) -> Any:
    """The fc1 features of ``x`` under the pretrained weights at ``backbone_path`` loaded into
    ``backbone`` (what a head-less, fully frozen embedding network sees), without gradients."""
    import torch

    backbone.load_state_dict(torch.load(backbone_path, weights_only=True))
    backbone.eval()
    with torch.no_grad():
        h = backbone.input(x).view(-1, 1, backbone.side, backbone.side)
        return backbone.fc1(backbone.conv2(backbone.conv1(h)).flatten(1))


def recall_baselines(test: tuple[Any, Any], backbone_path: str | Path, backbone: Any) -> dict[str, dict[str, Any]]:
    """Recall@1 on the test split without any triplet training: 1-nearest-neighbour on raw
    pixels, and on the pretrained backbone's fc1 features."""
    from hpsearch.models.embedding import recall_at_1

    x, y = test
    feats = pretrained_features(x, backbone_path, backbone)
    return {
        "raw_pixels": {"value": float(recall_at_1(x, y)), "about": "1-NN on raw pixels (Euclidean), test identities"},
        "pretrained_features": {
            "value": float(recall_at_1(feats, y)),
            "about": "1-NN on the pretrained backbone's fc1 features (no head, no triplet training), test identities",
        },
    }


def _build(reg: Any, options: Mapping[str, Any], data: DataSplits) -> Any:
    import torch

    from hpsearch.models.embedding import EmbeddingNet, TripletModule

    backbone = new_backbone(data.info.get("side", 8), data.info.get("classes", 10), data.info.get("pretrain", PRETRAIN))
    backbone.load_state_dict(torch.load(data.info["backbone"], weights_only=True))
    net = EmbeddingNet(backbone, options["embedding_dim"], options["frozen_layers"])
    return TripletModule(net, reg, options["margin"], options["head_lr_mult"], options["mining"])


def _params() -> dict[str, ParamSpec]:
    from hpsearch.models.embedding import MINING

    keep = {k: REGULARIZATION_PARAMS[k] for k in ("learning_rate", "weight_decay", "l2_mode", "l2_scope", "optimizer", "momentum")}
    return {
        **keep,
        **TRAINING_PARAMS,
        "frozen_layers": ParamSpec("int", "lower layers (conv1, conv2, fc1) kept frozen", low=0, high=3),
        "head_lr_mult": ParamSpec("float", "learning rate of the embedding head ÷ the base rate", low=0.0, low_open=True),
        "embedding_dim": positive_int("size of the embedding"),
        "margin": ParamSpec("float", "triplet margin (miner and loss)", low=0.0, low_open=True),
        "mining": ParamSpec("choice", "which triplets of a batch the loss uses", choices=MINING),
    }


_DEFAULTS = {"batch_size": 128, "frozen_layers": 0, "head_lr_mult": 1.0, "embedding_dim": 32, "margin": 0.2,
             "optimizer": "sgd", "mining": "semihard"}


def _triplet_task(name: str, description: str, load_data: Any) -> Task:
    return Task(name=name, description=description, metric="val_recall_at_1", direction="maximize",
                metrics=("val_recall_at_1",), params=_params(), defaults=_DEFAULTS, load_data=load_data, build_model=_build)


def digits_triplet() -> Task:
    """``digits-triplet``: pretrained conv1, conv2, fc1 + new embedding head; metric Recall@1."""
    return _triplet_task("digits-triplet", "triplet loss (mined triplets) fine-tuning of a CNN pretrained on digits",
                         load_triplet_splits)


def glyphs_triplet() -> Task:
    """``glyphs-triplet``: the same network on generated glyph identities; validation and test
    identities unseen in training; metric Recall@1 over the split's own identities."""
    return _triplet_task("glyphs-triplet", "triplet loss (mined triplets) on glyph identities unseen in training, "
                         "CNN pretrained on the training identities", load_glyph_splits)
