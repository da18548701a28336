"""Generated glyph identities for metric learning: each identity is a random glyph (a few
strokes), each sample renders it under strong nuisance transforms (rotation, scale, shift,
stroke width, contrast, inversion, a background ramp, noise), so that raw pixels are a poor
metric and an embedding has something to learn. Everything is a pure function of the recipe
and a seed: nothing is downloaded.

The identities are split into disjoint train / validation / test sets: the test identities
are never seen in training (nor in the backbone's pretraining)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class GlyphRecipe:
    """How the glyph data set is generated (every field is part of the cache key)."""

    side: int = 16  # images are side × side pixels
    identities: int = 100  # glyphs in all (split into train / validation / test identities)
    train_identities: int = 50
    val_identities: int = 25  # the rest (25) are the test identities
    samples: int = 48  # renderings per identity
    strokes: int = 3  # segments per glyph (a random polyline)
    max_rotation: float = 0.5  # radians, uniform ±
    scale: tuple[float, float] = (0.75, 1.15)
    max_shift: float = 0.3  # of the half-width, uniform ± per axis
    width: tuple[float, float] = (0.06, 0.16)  # stroke half-width, in half-widths of the image
    contrast: tuple[float, float] = (0.4, 1.0)
    invert: float = 0.5  # probability that a sample is rendered dark on light
    noise: float = 0.15  # Gaussian pixel noise (std)
    distractor: bool = False  # one random extra stroke per sample
    gradient: float = 1.0  # amplitude of a random linear background ramp (uniform 0..gradient)
    glyph_seed: int = 1234  # which glyphs are drawn (fixed: the split seed only splits them)

    def key(self) -> str:
        """A short stable text of the recipe, for cache file names."""
        import hashlib

        return hashlib.sha1(repr(sorted(asdict(self).items())).encode()).hexdigest()[:10]


def glyph_prototypes(recipe: GlyphRecipe) -> np.ndarray:
    """The identities' glyphs: ``(identities, strokes, 2, 2)`` segment end points in [-0.65, 0.65]²,
    each glyph one polyline of ``strokes`` segments."""
    rng = np.random.default_rng(recipe.glyph_seed)
    points = rng.uniform(-0.65, 0.65, size=(recipe.identities, recipe.strokes + 1, 2))
    return np.stack([points[:, :-1], points[:, 1:]], axis=2)


def _segment_distance(px: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Distance from points ``px`` (P, 2) to segments ``seg`` (N, S, 2, 2): (N, S, P)."""
    a, b = seg[:, :, None, 0], seg[:, :, None, 1]  # (N, S, 1, 2)
    ab = b - a
    t = np.clip(((px - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.sqrt(((px - nearest) ** 2).sum(-1))


def render(recipe: GlyphRecipe, glyphs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One rendering of each glyph in ``glyphs`` (N, S, 2, 2) under random nuisance transforms:
    float32 images (N, side*side), pixel values roughly in [0, 1] plus noise."""
    n = len(glyphs)
    centers = (np.arange(recipe.side) + 0.5) / recipe.side * 2 - 1
    yy, xx = np.meshgrid(centers, centers, indexing="ij")
    px = np.stack([xx.ravel(), yy.ravel()], axis=1)  # (P, 2)
    angle = rng.uniform(-recipe.max_rotation, recipe.max_rotation, n)
    scale = rng.uniform(*recipe.scale, n)
    shift = rng.uniform(-recipe.max_shift, recipe.max_shift, (n, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (N, 2, 2)
    segs = np.einsum("nij,nskj->nski", rot, glyphs) * scale[:, None, None, None] + shift[:, None, None, :]
    if recipe.distractor:
        extra = rng.uniform(-1.0, 1.0, size=(n, 1, 2, 2))
        segs = np.concatenate([segs, extra], axis=1)
    dist = _segment_distance(px, segs).min(axis=1)  # (N, P)
    width = rng.uniform(*recipe.width, n)[:, None]
    ink = np.clip((width - dist) / (2.0 / recipe.side) + 0.5, 0.0, 1.0)
    contrast = rng.uniform(*recipe.contrast, n)[:, None]
    inverted = rng.random(n)[:, None] < recipe.invert
    image = np.where(inverted, 1.0 - contrast * ink, contrast * ink)
    direction = rng.uniform(0.0, 2 * np.pi, n)
    ramp = np.cos(direction)[:, None] * px[None, :, 0] + np.sin(direction)[:, None] * px[None, :, 1]
    image = image + rng.uniform(0.0, recipe.gradient, n)[:, None] * ramp / 2
    image = image + rng.normal(0.0, recipe.noise, image.shape)
    return image.astype(np.float32)


def glyph_dataset(recipe: GlyphRecipe) -> tuple[np.ndarray, np.ndarray]:
    """Every identity's ``samples`` renderings: images (identities*samples, side*side) and
    identity labels, identity-major. A pure function of the recipe."""
    glyphs = glyph_prototypes(recipe)
    rng = np.random.default_rng(recipe.glyph_seed + 1)
    labels = np.repeat(np.arange(recipe.identities), recipe.samples)
    return render(recipe, glyphs[labels], rng), labels


def identity_split(recipe: GlyphRecipe, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint train / validation / test identity sets (sorted), a pure function of ``seed``."""
    order = np.random.default_rng(seed).permutation(recipe.identities)
    a, b = recipe.train_identities, recipe.train_identities + recipe.val_identities
    if not 0 < a < b < recipe.identities:
        raise ValueError(f"identities: {recipe.identities} cannot be split {a} / {recipe.val_identities} / rest")
    return np.sort(order[:a]), np.sort(order[a:b]), np.sort(order[b:])
