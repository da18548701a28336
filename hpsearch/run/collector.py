"""The garbage collector around a command: paused while the training stack is imported, and
skipped at exit.

Importing torch and Lightning creates millions of long-lived objects, and CPython's cyclic
collector traverses all of them at every full collection: eight full collections while they
are imported (~1 s on a 2-core machine, growing with the heap) and one more while the
interpreter exits (1.2 s, measured). :func:`import_training_stack` imports them with the
collector paused and then freezes what exists (``gc.freeze``: later collections skip it),
:func:`skip_final_collection` freezes everything again in the last exit handler. The other
``atexit`` handlers (logging, ``weakref.finalize``, temporary directories) still run, and
every object freed by reference counting is still finalized; objects that only a reference
cycle keeps alive are not collected once frozen (at exit CPython does not promise that anyway).
"""

from __future__ import annotations

import atexit
import gc
import sys

__all__ = ["import_training_stack", "skip_final_collection"]

_registered = False


def import_training_stack() -> None:
    """Import torch, Lightning and Optuna with the collector paused, then freeze every tracked
    object; nothing at all once Lightning is imported (a process that runs several commands
    freezes once)."""
    if "lightning.pytorch" in sys.modules:
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        import lightning.pytorch  # noqa: F401
        import optuna  # noqa: F401
        import torch  # noqa: F401
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def skip_final_collection() -> None:
    """Freeze every tracked object when the process exits, before CPython's final collection
    (once per process; ``atexit`` runs its handlers last-registered first, so call this early)."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
