"""Write a small image data set to disk: 16x16 RGB PNG files in class folders.

    data/images/{train,val,test}/{stripes,checks,blob}/NNNN.png

Three classes of noisy patterns with random colours, phases and positions, drawn locally from
a fixed seed (nothing is downloaded). Run it once before ``hpsearch optimize study.yaml``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("stripes", "checks", "blob")
SIZE = 16
#: Images per class in each split: a small training set, so a regularizer has something to do.
COUNTS = {"train": 40, "val": 40, "test": 100}


def draw(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One HxWx3 uint8 image of class ``kind``."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    period = rng.uniform(3.0, 6.0)
    if kind == "stripes":  # stripes at a random angle
        angle = rng.uniform(0, np.pi)
        pattern = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period + rng.uniform(0, 6.3))
    elif kind == "checks":
        pattern = np.sin(xx * 2 * np.pi / period + rng.uniform(0, 6.3)) * np.sin(yy * 2 * np.pi / period + rng.uniform(0, 6.3)) * 2
    else:  # a soft blob somewhere
        cy, cx, r = rng.uniform(3, SIZE - 3), rng.uniform(3, SIZE - 3), rng.uniform(2.0, 5.0)
        pattern = 2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) - 1
    pattern = np.clip(pattern, -1, 1)
    fg = rng.uniform(0, 1, 3)
    bg = (fg + rng.uniform(0.35, 0.65, 3)) % 1.0  # a colour that contrasts with fg in every channel
    weight = (pattern[..., None] + 1) / 2
    image = weight * fg + (1 - weight) * bg + rng.normal(0, 0.15, (SIZE, SIZE, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/images", help="where to write the images [data/images]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    root = Path(args.root)
    total = 0
    for split, count in COUNTS.items():
        for kind in CLASSES:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(draw(kind, rng)).save(folder / f"{i:04d}.png")
                total += 1
    print(f"wrote {total} PNG files under {root}/ (train/val/test x {', '.join(CLASSES)})")


if __name__ == "__main__":
    main()
