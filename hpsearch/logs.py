"""Logging set-up: quiet by default, details with ``-v`` or in a log file.

:func:`setup_logging` runs once per command (the CLI group does it) and stays import-light;
Optuna's own logger is routed to the same handlers by :func:`route_optuna_logging` when Optuna
is first used (opening a storage), so ``--help`` never imports it.
"""

from __future__ import annotations

import logging
import sys
import warnings


class MaskingFormatter(logging.Formatter):
    """Formats records (tracebacks included) with every registered password masked as ``***``."""

    def format(self, record: logging.LogRecord) -> str:
        from hpsearch.store.urls import mask_secrets

        return mask_secrets(super().format(record))


class _State:
    verbose: int | None = None  # None until setup_logging ran
    optuna_routed = False


def setup_logging(verbose: int, log_file: str | None) -> None:
    """Route Optuna, Lightning and Python warnings through the root logger.

    stderr shows errors and hpsearch's own warnings, or INFO (``-v``) / DEBUG (``-vv``);
    ``log_file`` gets INFO and above, every Lightning/Optuna message included.
    """
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_hpsearch", False):
            root.removeHandler(handler)
    for handler in _handlers(verbose, log_file):
        handler._hpsearch = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    _State.verbose, _State.optuna_routed = verbose, False
    if "optuna" in sys.modules:
        route_optuna_logging()


def _handlers(verbose: int, log_file: str | None) -> list[logging.Handler]:
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
    return handlers


def route_optuna_logging() -> None:
    """Send Optuna's messages through the root logger set up by :func:`setup_logging`
    (instead of Optuna's own stderr handler). A no-op before set-up or once done."""
    if _State.verbose is None or _State.optuna_routed:
        return
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(logging.DEBUG if _State.verbose > 1 else logging.INFO)
    _State.optuna_routed = True
