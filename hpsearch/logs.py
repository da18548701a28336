"""Logging set-up: quiet by default, details with ``-v`` or in a log file."""

from __future__ import annotations

import logging
import warnings


class MaskingFormatter(logging.Formatter):
    """Formats records (tracebacks included) with every registered password masked as ``***``."""

    def format(self, record: logging.LogRecord) -> str:
        from hpsearch.storage import mask_secrets

        return mask_secrets(super().format(record))


def setup_logging(verbose: int, log_file: str | None) -> None:
    """Route Optuna, Lightning and Python warnings through the root logger.

    stderr shows errors and hpsearch's own warnings, or INFO (``-v``) / DEBUG (``-vv``); ``log_file`` gets INFO and
    above, every Lightning/Optuna message included.
    """
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(logging.DEBUG if verbose > 1 else logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_hpsearch", False):
            root.removeHandler(handler)
    fmt = MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = logging.StreamHandler()
    if verbose == 0:
        # errors, plus hpsearch's own warnings (database unavailable / retrying, worker notes)
        console.setLevel(logging.WARNING)
        console.addFilter(lambda r: r.levelno >= logging.ERROR or r.name.startswith("hpsearch"))
    else:
        console.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    console.setFormatter(fmt)
    handlers: list[logging.Handler] = [console]
    if log_file:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(logging.INFO)
        file_handler.setFormatter(fmt)
        handlers.append(file_handler)
    for handler in handlers:
        handler._hpsearch = True  # type: ignore[attr-defined]
        root.addHandler(handler)
