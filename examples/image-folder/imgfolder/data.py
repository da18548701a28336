"""A LightningDataModule over ``root/{train,val,test}/<class>/*.png``, read from disk by
DataLoader workers, with random flips and shifts on the training split."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class ImageFolder(Dataset):
    """The PNG files of one split; each is opened when a batch needs it (nothing preloaded)."""

    def __init__(self, folder: Path, augment: bool) -> None:
        self.classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        self.samples = [(path, label) for label, name in enumerate(self.classes) for path in sorted((folder / name).glob("*.png"))]
        if not self.samples:
            raise FileNotFoundError(f"no PNG files under {folder}/<class>/ (run make_images.py first)")
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        if self.augment:
            if torch.rand(()) < 0.5:
                x = x.flip(2)
            dy, dx = torch.randint(-2, 3, (2,)).tolist()  # a shift of up to 2 pixels
            x = torch.roll(x, shifts=(dy, dx), dims=(1, 2))
        return (x - 0.5) / 0.25, label


class ImageFolderData(pl.LightningDataModule):
    """Train/val/test folders of class folders of PNG files."""

    def __init__(self, root: str = "data/images", batch_size: int = 32, num_workers: int = 2) -> None:
        super().__init__()
        self.root = Path(root)
        self.batch_size = batch_size
        self.num_workers = num_workers

    def setup(self, stage: str) -> None:
        self.train = ImageFolder(self.root / "train", augment=True)
        self.val = ImageFolder(self.root / "val", augment=False)
        self.test = ImageFolder(self.root / "test", augment=False)

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test, shuffle=False)
