"""In-memory batching and the stratified split used by the built-in tasks."""

from __future__ import annotations

from typing import Any, Iterator, Union

import numpy as np
import torch

#: Model inputs: one tensor, or a tuple of tensors with the same first dimension (two-input models).
Inputs = Union[torch.Tensor, tuple[torch.Tensor, ...]]


def n_rows(x: Inputs) -> int:
    """Number of samples in ``x`` (a tensor or a tuple of tensors)."""
    return len(x[0]) if isinstance(x, tuple) else len(x)


def take(x: Inputs, index: Any) -> Inputs:
    """``x[index]``, applied to every tensor of a tuple."""
    return tuple(t[index] for t in x) if isinstance(x, tuple) else x[index]


def to_device(x: Inputs, device: Any) -> Inputs:
    """``x`` moved to ``device`` (every tensor of a tuple)."""
    return tuple(t.to(device) for t in x) if isinstance(x, tuple) else x.to(device)


class TensorBatches:
    """Mini-batches over in-memory tensors, reshuffled every epoch from a seeded generator.

    A lean replacement for ``DataLoader(TensorDataset(...))`` on data that already sits in
    memory: one ``randperm`` per epoch and tensor slicing, no per-sample collation. Lightning
    accepts it as a dataloader (it is a sized iterable of ``(x, y)`` tuples). ``x`` may be a
    tuple of tensors (a two-input model); each batch then carries a tuple sliced alike.
    """

    def __init__(
        self,
        x: Inputs,
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
        return (n_rows(self.x) + self.batch_size - 1) // self.batch_size

    def to(self, device: torch.device) -> "TensorBatches":
        """Move the tensors to ``device`` (once; later calls are free)."""
        first = self.x[0] if isinstance(self.x, tuple) else self.x
        if first.device != device:
            self.x, self.y = to_device(self.x, device), self.y.to(device)
        return self

    def __iter__(self) -> Iterator[tuple[Inputs, torch.Tensor]]:
        n = n_rows(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
            x, y = take(self.x, order), self.y[order]
        else:
            x, y = self.x, self.y
        for start in range(0, n, self.batch_size):
            window = slice(start, start + self.batch_size)
            yield take(x, window), y[window]


class Epoch:
    """One epoch's data for :meth:`~hpsearch.models.base.RegularizedModule.training_step`: the
    shuffled training mini-batches and the whole validation split ``(x, y)``."""

    def __init__(self, train: TensorBatches, val: tuple[Inputs, torch.Tensor]) -> None:
        self.train, self.val = train, val

    def to(self, device: torch.device) -> "Epoch":
        """Move the training tensors and the validation split to ``device`` (once; later calls
        are free). Lightning calls this when it hands the epoch to the module."""
        self.train.to(device)
        x, y = self.val
        if y.device != device:
            self.val = to_device(x, device), y.to(device)
        return self


class EpochFeed:
    """A one-item-per-epoch "dataloader" handing the whole :class:`Epoch` (training batches and
    validation split) to ``training_step`` (see :class:`~hpsearch.models.base.RegularizedModule`)."""

    def __init__(self, train: TensorBatches, val: tuple[Inputs, torch.Tensor]) -> None:
        self.epoch = Epoch(train, val)

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Epoch]:
        yield self.epoch


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
