"""Task registry: built-in names and ``package.module:factory`` custom tasks."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Callable

from hpsearch.errors import ConfigError, describe_exception
from hpsearch.tasks.base import DataSplits, Task

__all__ = ["Task", "DataSplits", "resolve_task", "builtin_task_names"]


def _builtin() -> dict[str, Callable[[], Task]]:
    from hpsearch.tasks import bn_placement, digits, seq2seq, tabular, toy2d, triplet

    return {
        "digits-mlp": digits.digits_mlp,
        "digits-cnn": digits.digits_cnn,
        "toy2d-mlp": toy2d.toy2d_mlp,
        "digits-bn": bn_placement.digits_bn,
        "co2-seq2seq": seq2seq.co2_seq2seq,
        "tabular-mlp": tabular.tabular_mlp,
        "digits-triplet": triplet.digits_triplet,
    }


def builtin_task_names() -> list[str]:
    """Names of the built-in tasks."""
    return sorted(_builtin())


def resolve_task(ref: str) -> Task:
    """A built-in task by name, or ``package.module:factory`` (a zero-argument callable
    returning a :class:`Task`). Raises :class:`ConfigError` with the valid names otherwise."""
    builtin = _builtin()
    if ref in builtin:
        return builtin[ref]()
    if ":" not in ref:
        raise ConfigError(
            f"task: unknown task {ref!r}; valid: {', '.join(sorted(builtin))}, "
            "or 'package.module:factory' for a custom task"
        )
    module_name, _, attr = ref.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # custom tasks import from the working directory
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"task: cannot import module {module_name!r} of custom task {ref!r}: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"task: importing module {module_name!r} of custom task {ref!r} failed: {describe_exception(exc)}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"task: {module_name!r} has no callable {attr!r} (custom task {ref!r})")
    if inspect.isbuiltin(factory) or module_name == "builtins":  # os:system, builtins:eval
        raise ConfigError(f"task: {ref!r} is a built-in function of Python, not a task factory")
    try:
        task = factory()
    except (Exception, SystemExit) as exc:  # os:system, builtins:exit, a factory that raises
        raise ConfigError(f"task: the factory of custom task {ref!r} failed: {describe_exception(exc)}") from None
    if not isinstance(task, Task):
        raise ConfigError(f"task: {ref!r} returned {type(task).__name__}, expected hpsearch.tasks.Task")
    return task
