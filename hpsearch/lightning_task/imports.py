"""Importing the classes a ``task:`` block names: what may be imported, from where.

Naming a class to import *is* running the user's code (importing a module runs it). hpsearch
imports a class only from a ``task:`` block of the form ``{model: {class_path: ...}, data:
{class_path: ...}}``, never from a task name, and:

- from a study file the user hands to ``hpsearch optimize`` (or ``api.load``): the module is
  imported from the current directory (added to ``sys.path``, as for ``module:factory`` custom
  tasks) or from the installed packages;
- from a study rebuilt out of a database or a model file (``verify``, ``answer``, ``report``,
  ``export-model``, ``load_model``), which someone else may have written: only when the module's
  source file lies under the current directory (the project the user runs hpsearch in) and
  defines the class at top level, checked by reading the source, before anything is imported.
  A class path that resolves to an installed package or anywhere else is refused, so a database
  cannot make hpsearch import an arbitrary module.

The imported class must subclass ``LightningModule`` (``model``) or ``LightningDataModule``
(``data``); nothing is instantiated here.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError, describe_exception
from hpsearch.lightning_task.config import ClassRef
from hpsearch.tasks.marker import MAX_SOURCE_BYTES, _find_spec


def _add_cwd() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # the project's own packages import from here
        sys.path.append(cwd)


def _source_under_cwd(ref: ClassRef, where: str) -> None:
    """:class:`ConfigError` unless ``ref``'s module is a Python file under the current directory
    that defines ``ref.name`` as a top-level class (read, not run)."""
    try:
        spec = _find_spec(ref.module)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot find module {ref.module!r}: {exc}") from None
    origin = spec.origin if spec is not None and spec.has_location else None
    cwd = Path.cwd().resolve()
    if not origin or not str(origin).endswith(".py") or cwd not in Path(origin).resolve().parents:
        raise ConfigError(
            f"{where}: {ref.class_path!r} comes from a stored study; hpsearch imports a stored study's classes only from "
            f"Python files under the current directory ({cwd}): run it from the project that defines {ref.module!r}"
        )
    try:
        with open(origin, "rb") as fh:
            source = fh.read(MAX_SOURCE_BYTES + 1)
        if len(source) > MAX_SOURCE_BYTES:
            raise ValueError(f"larger than {MAX_SOURCE_BYTES} bytes")
        tree = ast.parse(importlib.util.decode_source(source), filename=origin)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ConfigError(f"{where}: cannot read module {ref.module!r}: {exc}") from None
    if not any(isinstance(n, ast.ClassDef) and n.name == ref.name for n in tree.body):
        raise ConfigError(f"{where}: module {ref.module!r} defines no top-level class {ref.name!r}")


def import_class(ref: ClassRef, base: type, where: str, stored: bool = False) -> type:
    """The class ``ref`` names, checked to subclass ``base``; every failure is one
    :class:`ConfigError` line starting with ``where`` (e.g. ``study.yaml: task.model``).
    ``stored``: the reference comes from a database or model file (see the module docstring)."""
    _add_cwd()
    if stored:
        _source_under_cwd(ref, where)
    elif sys.modules.get(ref.module) is None:
        try:
            spec = _find_spec(ref.module)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"{where}: cannot find module {ref.module!r}: {exc}") from None
        if spec is None:
            raise ConfigError(f"{where}: cannot import {ref.class_path!r}: no module named {ref.module!r} "
                              f"(modules import from the current directory {os.getcwd()} or installed packages)")
    try:
        module = importlib.import_module(ref.module)
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{where}: importing module {ref.module!r} failed: {describe_exception(exc)}") from None
    cls: Any = module.__dict__.get(ref.name)
    if cls is None:
        raise ConfigError(f"{where}: module {ref.module!r} has no {ref.name!r}")
    if not isinstance(cls, type) or not issubclass(cls, base):
        what = f"class {cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else type(cls).__name__
        raise ConfigError(f"{where}: {ref.class_path!r} is not a {base.__name__} subclass (it is a {what})")
    return cls
