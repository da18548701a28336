"""In-memory batching and the stratified split used by the built-in tasks."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch


class TensorBatches:
    """Mini-batches over in-memory tensors, reshuffled every epoch from a seeded generator.

    A lean replacement for ``DataLoader(TensorDataset(...))`` on data that already sits in
    memory: one ``randperm`` per epoch and tensor slicing, no per-sample collation. Lightning
    accepts it as a dataloader (it is a sized iterable of ``(x, y)`` tuples).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def to(self, device: torch.device) -> "TensorBatches":
        """Move the tensors to ``device`` (once; later calls are free)."""
        if self.x.device != device:
            self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
            x, y = self.x[order], self.y[order]
        else:
            x, y = self.x, self.y
        for start in range(0, n, self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]


class EpochFeed:
    """A one-item-per-epoch "dataloader" handing the whole epoch's :class:`TensorBatches` to
    ``training_step`` (see :class:`~hpsearch.models.base.RegularizedModule`)."""

    def __init__(self, batches: TensorBatches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[TensorBatches]:
        yield self.batches


def stratified_split(
    labels: np.ndarray, seed: int, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a stratified train/validation/test split, a pure function of ``seed``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(
        rest, test_size=val_share, stratify=labels[rest], random_state=seed + 1
    )
    return np.sort(train), np.sort(val), np.sort(test)
