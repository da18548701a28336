"""Dropout masks for a population, already divided by each unit's keep probability.

On the CPU in float32 (contiguous or channels-last) the masks come from 16 random bits per
unit: NumPy's PCG64 raw output (``random_raw``, 64 bits per call, four units) compared against
each unit's threshold, ``round(keep·2**16)`` values out of 2**16. That costs about half of drawing
a float32 U[0, 1) per unit and comparing it with ``keep`` (measured), and realizes each keep
probability to within 2**-17 (keep 0.5 exactly, keep 1 always). The generator is seeded, at its
first draw, from torch's global generator, so ``torch.manual_seed`` before training still fixes
every mask. Anywhere else (GPU, other dtypes or layouts) the masks come from torch's
``uniform_`` at float resolution.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["DropoutMasks", "LEVELS"]

LEVELS = 1 << 16  # a unit is kept when its 16 random bits fall below round(keep·LEVELS)


class DropoutMasks:
    """Draws dropout scales, mask/keep: 1/keep with probability keep, else 0 (see the module
    docstring)."""

    def __init__(self) -> None:
        self._rng: np.random.Generator | None = None

    def scales_(self, out: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` in place with mask/keep, each unit kept with its probability in ``keep``
        (same number of dimensions as ``out``, broadcastable to it, in (0, 1]); returns ``out``."""
        dense = _dense_view(out)
        if dense is None or keep.device.type != "cpu":
            keep = keep.to(out.dtype)
            return out.uniform_().lt_(keep).div_(keep)
        if self._rng is None:
            self._rng = np.random.Generator(np.random.PCG64(int(torch.randint(0, 2**62, (1,)).item())))
        dense_keep = keep.permute(0, 2, 3, 1) if dense is not out else keep  # in out's memory order
        keep_np = dense_keep.detach().to(torch.float32).numpy()
        # kept when bits <= round(keep·LEVELS) - 1: probability round(keep·LEVELS) / LEVELS
        threshold = (np.clip(np.rint(keep_np * LEVELS), 1, LEVELS) - 1).astype(np.uint16)
        n = dense.numel()
        bits = self._rng.bit_generator.random_raw((n + 3) // 4).view(np.uint16)[:n].reshape(dense.shape)
        np.multiply(np.less_equal(bits, threshold), 1 / keep_np, out=dense.numpy())
        return out


def _dense_view(t: torch.Tensor) -> torch.Tensor | None:
    """``t`` itself when contiguous, its (N, H, W, C) view when channels-last (the same memory
    in its own order), else None; only for CPU float32 tensors."""
    if t.device.type != "cpu" or t.dtype != torch.float32:
        return None
    if t.is_contiguous():
        return t
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1)
    return None
