"""A DataModule over the digits split of the built-in tasks, batched in the built-in order."""

from __future__ import annotations

from typing import Iterator

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from hpsearch.tasks.digits import load_digits_splits


class SeededBatches(Sampler[list[int]]):
    """Index batches of a fresh ``randperm`` per epoch from a generator seeded once (the order
    of ``hpsearch.data.TensorBatches``)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        for start in range(0, self.n, self.batch_size):
            yield order[start:start + self.batch_size]


class DigitsData(pl.LightningDataModule):
    """Digits train/val/test as the built-in tasks split them with ``split_seed``."""

    def __init__(self, batch_size: int = 64, split_seed: int = 0, order_seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.split_seed, self.order_seed = batch_size, split_seed, order_seed

    def setup(self, stage: str) -> None:
        splits = load_digits_splits(self.split_seed)
        self.train, self.val, self.test = (TensorDataset(*getattr(splits, s)) for s in ("train", "val", "test"))

    def train_dataloader(self) -> DataLoader:
        sampler = SeededBatches(len(self.train), self.batch_size, self.order_seed)
        return DataLoader(self.train, batch_sampler=sampler, generator=torch.Generator())

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=512, generator=torch.Generator())

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=512, generator=torch.Generator())


class NormData(DigitsData):
    """Takes ``input_norm`` (a regularization-named setting); records what each instance got."""

    built: list[str] = []

    def __init__(self, batch_size: int = 64, input_norm: str = "none") -> None:
        super().__init__(batch_size)
        self.input_norm = input_norm
        NormData.built.append(input_norm)


class RandomSplitData(DigitsData):
    """Re-splits train + val with ``torch.randperm`` on the global generator; records the
    validation indices of every ``setup``."""

    seen: list[tuple[int, ...]] = []

    def setup(self, stage: str) -> None:
        splits = load_digits_splits(self.split_seed)
        x = torch.cat([splits.train[0], splits.val[0]])
        y = torch.cat([splits.train[1], splits.val[1]])
        order = torch.randperm(len(x))
        cut = len(splits.train[0])
        RandomSplitData.seen.append(tuple(order[cut:].tolist()))
        self.train = TensorDataset(x[order[:cut]], y[order[:cut]])
        self.val = TensorDataset(x[order[cut:]], y[order[cut:]])
        self.test = TensorDataset(*splits.test)


class BadInitData(DigitsData):
    """Its ``__init__`` refuses a negative ``batch_size``."""

    def __init__(self, batch_size: int = 64) -> None:
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        super().__init__(batch_size)
