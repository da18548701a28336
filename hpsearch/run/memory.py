"""Keep freed memory in the process for reuse (glibc ``malloc`` on Linux).

A training step allocates and frees the same large tensors every step. glibc hands blocks of
more than 128 KiB straight back to the kernel (``mmap``/``munmap``, or by trimming the heap),
so the next step's allocation page-faults all of it in again: a stacked CNN population (K
members' activations side by side) spent about 8% of its command time on that (measured,
``docs/benchmarks.md`` §6c). Raising glibc's mmap and trim thresholds makes ``malloc`` reuse
those blocks, as the memory allocators PyTorch recommends for CPU training do (jemalloc,
tcmalloc). The cost: up to :data:`TRIM_THRESHOLD` bytes of freed memory stay with the process.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks up to this size come from the heap (32 MiB: glibc's largest allowed value).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept before it is returned to the system.
TRIM_THRESHOLD = 128 * 1024 * 1024

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process; True if they were set (False on
    another platform or C library, where nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc thresholds %s", "set" if done else "refused")
    return done
