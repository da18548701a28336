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

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "FALLBACK_MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks up to this size come from the heap, where freed blocks are reused (glibc's own
#: threshold adapts to the blocks freed but never passes 32 MiB, so larger ones were mapped and
#: faulted in afresh at every allocation); :data:`FALLBACK_MMAP_THRESHOLD` where a C library
#: refuses it.
MMAP_THRESHOLD = 256 * 1024 * 1024
FALLBACK_MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept before it is returned to the system.
TRIM_THRESHOLD = 512 * 1024 * 1024

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
    mapped = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) or bool(mallopt(_M_MMAP_THRESHOLD, FALLBACK_MMAP_THRESHOLD))
    done = mapped and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc thresholds %s", "set" if done else "refused")
    return done
