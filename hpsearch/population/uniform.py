"""Uniform random numbers for a population's dropout masks.

On the CPU in float32 they come from NumPy's PCG64 (``Generator.random``), which fills a
buffer about a third faster than torch's Mersenne Twister (``torch.rand``) at the same 24-bit
resolution; each source is seeded, at its first draw, from torch's global generator, so
``torch.manual_seed`` before training still fixes every mask. Anywhere else (GPU, other
dtypes, memory layouts other than contiguous and channels-last) torch's ``uniform_`` draws them.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["UniformSource"]


class UniformSource:
    """Draws tensors of U[0, 1) numbers (see the module docstring)."""

    def __init__(self) -> None:
        self._rng: np.random.Generator | None = None

    def like(self, x: torch.Tensor) -> torch.Tensor:
        """U[0, 1) numbers of ``x``'s shape, dtype, device and memory layout."""
        return self.fill_(torch.empty_like(x))

    def fill_(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` with U[0, 1) numbers in place; returns it."""
        if out.device.type != "cpu" or out.dtype != torch.float32:
            return out.uniform_()
        if out.is_contiguous():
            dense = out
        elif out.dim() == 4 and out.is_contiguous(memory_format=torch.channels_last):
            dense = out.permute(0, 2, 3, 1)  # the same memory, in its own order
        else:
            return out.uniform_()
        if self._rng is None:
            self._rng = np.random.Generator(np.random.PCG64(int(torch.randint(0, 2**62, (1,)).item())))
        self._rng.random(out=dense.numpy(), dtype=np.float32)
        return out
