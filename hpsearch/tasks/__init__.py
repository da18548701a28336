"""Task registry: built-in names and ``package.module:factory`` custom tasks (marked with ``@hpsearch.task``)."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Callable

from hpsearch.errors import ConfigError, describe_exception
from hpsearch.tasks.base import DataSplits, Task
from hpsearch.tasks.marker import check_source_marks, is_marked, task, unmarked

__all__ = ["Task", "DataSplits", "resolve_task", "builtin_task_names", "task"]


def _builtin() -> dict[str, Callable[[], Task]]:
    from hpsearch.tasks import bn_placement, digits, seq2seq, tabular, toy2d, triplet

    return {
        "digits-mlp": digits.digits_mlp,
        "digits-cnn": digits.digits_cnn,
        "toy2d-mlp": toy2d.toy2d_mlp,
        "digits-bn": bn_placement.digits_bn,
        "digits-two-input": bn_placement.digits_two_input,
        "co2-seq2seq": seq2seq.co2_seq2seq,
        "tabular-mlp": tabular.tabular_mlp,
        "digits-triplet": triplet.digits_triplet,
        "glyphs-triplet": triplet.glyphs_triplet,
    }


def builtin_task_names() -> list[str]:
    """Names of the built-in tasks."""
    return sorted(_builtin())


def resolve_task(ref: str) -> Task:
    """A built-in task by name, or ``package.module:factory``: a zero-argument function marked
    with ``@hpsearch.task`` that returns a :class:`Task`. Anything else is refused with a
    :class:`ConfigError` before it is imported or called (see :mod:`hpsearch.tasks.marker`)."""
    builtin = _builtin()
    if ref in builtin:
        return builtin[ref]()
    if ref.startswith("lightning:"):
        raise ConfigError(f"task: {ref!r} is a task of Lightning classes: it is rebuilt from its study's task block, not by name")
    if ":" not in ref:
        raise ConfigError(
            f"task: unknown task {ref!r}; valid: {', '.join(sorted(builtin))}, "
            "or 'package.module:factory' for a custom task"
        )
    module_name, _, attr = ref.partition(":")
    if not attr.isidentifier() or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigError(f"task: {ref!r} is not a custom task reference 'package.module:factory'")
    module = sys.modules.get(module_name)
    if module is None:
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:  # custom tasks import from the working directory
            sys.path.append(cwd)
        check_source_marks(module_name, attr, ref)  # reads the source; imports nothing
        module = _import(module_name, ref)
    factory = getattr(module, "__dict__", {}).get(attr)
    if factory is None:
        raise ConfigError(f"task: {module_name!r} has no function {attr!r} (custom task {ref!r})")
    if not is_marked(factory):
        raise ConfigError(unmarked(ref))
    try:
        task = factory()
    except (Exception, SystemExit) as exc:  # a factory that raises or exits
        raise ConfigError(f"task: the factory of custom task {ref!r} failed: {describe_exception(exc)}") from None
    if not isinstance(task, Task):
        raise ConfigError(f"task: {ref!r} returned {type(task).__name__}, expected hpsearch.tasks.Task")
    return task


def _import(module_name: str, ref: str) -> ModuleType:
    """Import the module of a custom task; its failure is a :class:`ConfigError`."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"task: cannot import module {module_name!r} of custom task {ref!r}: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"task: importing module {module_name!r} of custom task {ref!r} failed: {describe_exception(exc)}") from None
