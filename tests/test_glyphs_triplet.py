"""The glyphs-triplet task: generated identities (deterministic, disjoint splits), the triplet
miners against brute force, and the test baselines."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_cache_dir

from hpsearch.regularization import Regularization
from hpsearch.tasks import resolve_task
from hpsearch.tasks.glyphs import GlyphRecipe, glyph_dataset, glyph_prototypes, identity_split

SMALL = GlyphRecipe(identities=12, train_identities=6, val_identities=3, samples=5)


def test_glyph_data_is_a_pure_function_of_the_recipe() -> None:
    x1, y1 = glyph_dataset(SMALL)
    x2, y2 = glyph_dataset(SMALL)
    assert x1.shape == (12 * 5, SMALL.side**2) and x1.dtype == np.float32
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, np.repeat(np.arange(12), 5))
    x3, _ = glyph_dataset(dataclasses.replace(SMALL, glyph_seed=SMALL.glyph_seed + 7))
    assert not np.allclose(x1, x3)
    assert not np.allclose(glyph_prototypes(SMALL), glyph_prototypes(dataclasses.replace(SMALL, glyph_seed=1)))
    assert SMALL.key() == GlyphRecipe(identities=12, train_identities=6, val_identities=3, samples=5).key()
    assert SMALL.key() != dataclasses.replace(SMALL, noise=0.3).key()
    # renderings of one identity differ (nuisance transforms), and some are inverted
    assert not np.allclose(x1[0], x1[1])
    clean, _ = glyph_dataset(dataclasses.replace(SMALL, noise=0.0, gradient=0.0))
    assert 0.2 < float((np.median(clean, axis=1) > 0.5).mean()) < 0.8


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_identity_split_is_disjoint_and_covers_every_identity(seed: int) -> None:
    train, val, test = identity_split(SMALL, seed)
    assert (len(train), len(val), len(test)) == (6, 3, 3)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert sorted([*train, *val, *test]) == list(range(12))
    for a, b in zip((train, val, test), identity_split(SMALL, seed)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip((train, val, test), identity_split(SMALL, seed + 100)))
    with pytest.raises(ValueError, match="cannot be split"):
        identity_split(dataclasses.replace(SMALL, train_identities=10), seed)


def _brute_force(emb: torch.Tensor, labels: torch.Tensor, keep) -> set[tuple[int, int, int]]:  # noqa: ANN001
    dist = torch.cdist(emb, emb)
    out = set()
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n] and keep(float(dist[a, p]), float(dist[a, n])):
            out.add((a, p, n))
    return out


MARGIN = 0.2
RULES = {
    "easy_semihard": lambda ap, an: ap < an,
    "semihard": lambda ap, an: 0 < an - ap <= MARGIN,
    "hard": lambda ap, an: an - ap <= 0,
    "all": lambda ap, an: an - ap <= MARGIN,
}


@pytest.mark.parametrize("mining", list(RULES))
def test_miners_keep_exactly_their_triplets_and_the_loss_is_their_mean(mining: str) -> None:
    from hpsearch.models.embedding import MinedTripletLoss

    torch.manual_seed(3)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4])
    emb = torch.nn.functional.normalize(torch.randn(len(labels), 4), dim=1)
    loss_fn = MinedTripletLoss(MARGIN, mining)
    a, p, n = loss_fn.miner(emb, labels)
    mined = {(int(i), int(j), int(k)) for i, j, k in zip(a, p, n)}
    want = _brute_force(emb, labels, RULES[mining])
    assert mined == want and len(want) > 0
    dist = torch.cdist(emb, emb)
    terms = [max(float(dist[i, j] - dist[i, k]) + MARGIN, 0.0) for i, j, k in sorted(want)]
    assert float(loss_fn(emb, labels)) == pytest.approx(float(np.mean(terms)), rel=1e-4, abs=1e-6)


def test_easy_semihard_keeps_satisfied_triplets_that_semihard_drops() -> None:
    """The question's filter differs from the library's semi-hard type: it also keeps triplets
    already satisfied by more than the margin, whose zero loss lowers the mean."""
    from hpsearch.models.embedding import MinedTripletLoss, easy_semihard_mask

    assert easy_semihard_mask(torch.tensor([0.1, 0.5, 0.5]), torch.tensor([0.9, 0.6, 0.4])).tolist() == [True, True, False]
    torch.manual_seed(0)
    labels = torch.arange(6).repeat_interleave(4)
    emb = torch.nn.functional.normalize(torch.randn(len(labels), 3), dim=1)
    filt, semi = MinedTripletLoss(MARGIN, "easy_semihard"), MinedTripletLoss(MARGIN, "semihard")
    assert len(filt.miner(emb, labels)[0]) > len(semi.miner(emb, labels)[0]) > 0
    assert 0 < float(filt(emb, labels)) < float(semi(emb, labels))
    with pytest.raises(ValueError, match="mining"):
        MinedTripletLoss(MARGIN, "batch_hard")


@pytest.fixture
def glyph_task(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(shared_cache_dir(tmp_path_factory)))
    return resolve_task("glyphs-triplet")


def _recall_brute(x: torch.Tensor, y: torch.Tensor) -> float:
    hits = 0
    for i in range(len(y)):
        d = ((x - x[i]) ** 2).sum(1)
        d[i] = float("inf")
        hits += int(y[int(d.argmin())] == y[i])
    return hits / len(y)


@pytest.mark.slow
def test_glyph_splits_hold_unseen_identities_and_baselines(glyph_task) -> None:
    from hpsearch.tasks.glyphs import GlyphRecipe
    from hpsearch.tasks.triplet import GLYPH_PRETRAIN, cached_backbone, new_backbone, pretrained_features

    recipe = GlyphRecipe()
    data = glyph_task.load_data(0)
    ids = data.info["identities"]
    assert [len(ids[k]) for k in ("train", "val", "test")] == [50, 25, 25]
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["val"]) & set(ids["test"])
    assert not set(ids["train"]) & set(ids["val"])
    images, labels = glyph_dataset(recipe)
    test_rows = np.isin(labels, ids["test"])
    torch.testing.assert_close(data.test[0], torch.from_numpy(images[test_rows]))
    assert sorted(set(data.train[1].tolist())) == list(range(50)) and sorted(set(data.test[1].tolist())) == list(range(25))
    assert len(data.train[1]) == 50 * recipe.samples and len(data.test[1]) == 25 * recipe.samples
    # the backbone was pretrained on the train identities: a 50-way classifier, cached by recipe
    path = Path(data.info["backbone"])
    assert path.exists() and recipe.key() in path.name and "seed0" in path.name
    mtime = path.stat().st_mtime_ns
    assert cached_backbone(data.train, 0, f"glyphs-{recipe.key()}", 16, 50, GLYPH_PRETRAIN) == path
    assert path.stat().st_mtime_ns == mtime
    # baselines, recomputed by brute force
    base = data.info["test_baselines"]
    assert set(base) == {"raw_pixels", "pretrained_features"} and all(b["about"] for b in base.values())
    assert base["raw_pixels"]["value"] == pytest.approx(_recall_brute(*data.test), abs=1e-6)
    feats = pretrained_features(data.test[0], path, new_backbone(16, 50, GLYPH_PRETRAIN))
    assert feats.shape == (len(data.test[1]), GLYPH_PRETRAIN["hidden_units"])
    assert base["pretrained_features"]["value"] == pytest.approx(_recall_brute(feats, data.test[1]), abs=1e-6)
    # raw pixels fail on these identities; the pretrained features do far better
    assert base["raw_pixels"]["value"] < 0.35 < base["pretrained_features"]["value"]
    # a model built on the split starts from the pretrained weights and trains on the chosen miner
    model = glyph_task.build_model(Regularization(optimizer="sgd"), {**glyph_task.defaults, "mining": "hard"}, data)
    assert model.loss_fn.mining == "hard"
    torch.testing.assert_close(model.net.conv1[0].weight, torch.load(path, weights_only=True)["conv1.0.weight"])
    assert model(data.val[0][:4]).shape == (4, 32)


@pytest.mark.slow
def test_weight_decay_at_the_top_of_the_searched_range_acts(glyph_task) -> None:
    """lr·λ·steps must be large enough for the searched decay to matter: λ = 0.3 (the top of
    the studies' range) at lr 0.05 over 8 epochs shrinks the weights and costs validation
    Recall@1, where λ = 1e-5 (the bottom) leaves the run as without decay."""
    from hpsearch.data import TensorBatches

    data = glyph_task.load_data(0)
    scores = {}
    for wd in (1e-5, 0.3):
        torch.manual_seed(0)
        reg = Regularization(optimizer="sgd", learning_rate=0.05, momentum=0.9, weight_decay=wd, l2_mode="decoupled")
        model = glyph_task.build_model(reg, {**glyph_task.defaults, "mining": "all"}, data)
        opt = model.configure_optimizers()
        for x, y in itertools.chain.from_iterable(TensorBatches(*data.train, batch_size=128, seed=e) for e in range(8)):
            opt.zero_grad()
            model.loss_fn(model(x), y).backward()
            opt.step()
        scores[wd] = (model.score(*data.val)["recall_at_1"], float(model.net.fc1[0].weight.detach().norm()))
    assert scores[0.3][1] < 0.5 * scores[1e-5][1]  # decay shrank fc1 (lr·λ·steps ≈ 2.3)
    assert scores[0.3][0] < scores[1e-5][0] - 0.05
