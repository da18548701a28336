"""hpsearch: hyperparameter search for regularization settings.

The package root stays import-light (no torch, lightning or optuna) so that the CLI answers
``--help`` instantly. The notebook API is re-exported lazily from :mod:`hpsearch.api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.tasks.marker import task

from hpsearch.version import __version__

__all__ = ["__version__", "load_study_file", "optimize", "best_trial", "BestResult", "task"]


def __getattr__(name: str) -> Any:
    if name == "task":  # the mark of a custom task factory: @hpsearch.task
        from hpsearch.tasks.marker import task

        return task
    if name in {"load_study_file", "optimize", "best_trial", "BestResult"}:
        from hpsearch import api

        return getattr(api, name)
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
