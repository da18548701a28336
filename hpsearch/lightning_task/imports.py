"""Importing the classes a ``task:`` block names: what may be imported, from where.

Naming a class to import *is* running the user's code (importing a module runs it). hpsearch
imports a class only from a ``task:`` block of the form ``{model: {class_path: ...}, data:
{class_path: ...}}``, never from a task name, and:

- from a study file the user hands to ``hpsearch optimize`` (or ``api.load``): the module is
  imported from the current directory or from the installed packages; the current directory is
  put first on ``sys.path`` during the import only, so the project's own ``models`` wins over an
  installed package of that name, and ``sys.path`` is left as it was;
- from a study rebuilt out of a database or a model file (``verify``, ``answer``, ``report``,
  ``export-model``, ``load_model``), which someone else may have written: only the user's
  project source. The module and every parent package are looked up in the current directory
  alone (not ``sys.path``); each file that importing would run (every parent ``__init__.py``
  and the module itself) must resolve, symlinks followed, to a ``.py`` file under the current
  directory and outside any Python installation (``sys.prefix``, ``sys.base_prefix``, a
  ``site-packages`` / ``dist-packages`` folder, a virtual environment's folder holding
  ``pyvenv.cfg`` such as ``./.venv``), and the module must define the class at top level (its
  source is read, not run). Only then is it imported, and the imported module must be that
  very file. Anything else is refused with one line before any code runs, so a database cannot
  make hpsearch import an installed or arbitrary module.

The imported class must subclass ``LightningModule`` (``model``) or ``LightningDataModule``
(``data``); nothing is instantiated here.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import os
import site
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hpsearch.errors import ConfigError, describe_exception
from hpsearch.lightning_task.config import ClassRef
from hpsearch.tasks.marker import MAX_SOURCE_BYTES, _find_spec

_INSTALL_FOLDERS = ("site-packages", "dist-packages")


@contextmanager
def _cwd_first() -> Iterator[str]:
    """The current directory first on ``sys.path`` for the duration of an import, then removed."""
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    try:
        yield cwd
    finally:
        try:
            sys.path.remove(cwd)  # the first occurrence: the one inserted above
        except ValueError:
            pass


def _installation_roots(cwd: Path) -> list[Path]:
    """Folders of Python installations (prefixes, site-packages) that do not contain ``cwd``."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # some virtualenv versions' site module
        pass
    roots.add(site.getusersitepackages())
    out = []
    for root in roots:
        path = Path(root).resolve()
        if path != cwd and path not in cwd.parents:  # hpsearch run inside a prefix: judge by folders below
            out.append(path)
    return out


def _outside_project(file: Path, cwd: Path) -> str | None:
    """Why ``file`` (resolved) is not the project's own source, or ``None`` if it is."""
    if cwd not in file.parents:
        return f"{file} is not under the current directory ({cwd})"
    for root in _installation_roots(cwd):
        if root == file or root in file.parents:
            return f"{file} is part of a Python installation ({root})"
    folder = cwd
    for part in file.relative_to(cwd).parts[:-1]:
        folder = folder / part
        if part in _INSTALL_FOLDERS or (folder / "pyvenv.cfg").exists():
            return f"{file} lies in an installed-packages folder ({folder})"
    return None


def _module_file(module: Any) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _project_source(ref: ClassRef, where: str) -> list[tuple[str, Path | None]]:
    """Check that ``ref``'s module and its parent packages are the project's own source under
    the current directory and that the module defines ``ref.name`` at top level (read, not
    run); the files importing would run, by module name (``None``: a namespace package)."""
    cwd = Path.cwd().resolve()
    refuse = (f"{where}: {ref.class_path!r} comes from a stored study; hpsearch imports a stored study's classes only "
              f"from the project's Python files under the current directory ({cwd}), not from installed packages")
    parts = ref.module.split(".")
    search: list[str] = [str(cwd)]
    files: list[tuple[str, Path | None]] = []
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, search)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"{where}: cannot find module {ref.module!r}: {exc}") from None
        if spec is None:
            raise ConfigError(f"{refuse}: no module {name!r} there; run it from the project that defines {ref.module!r}")
        leaf = i == len(parts) - 1
        origin = spec.origin if spec.has_location else None
        if origin is None and not leaf and spec.submodule_search_locations is not None:
            file: Path | None = None  # a namespace package: no code of its own
        elif origin is None or not str(origin).endswith(".py"):
            raise ConfigError(f"{refuse}: {name!r} is not a Python source file")
        else:
            file = Path(origin).resolve()
            why = _outside_project(file, cwd)
            if why is not None:
                raise ConfigError(f"{refuse}: {why}")
        loaded = sys.modules.get(name)
        if loaded is not None and file is not None and _module_file(loaded) != file:
            raise ConfigError(f"{refuse}: module {name!r} is already imported from {_module_file(loaded)}, not {file}")
        files.append((name, file))
        if not leaf:
            if spec.submodule_search_locations is None:
                raise ConfigError(f"{where}: cannot find module {ref.module!r}: {name!r} is not a package")
            search = [str(p) for p in spec.submodule_search_locations]
    leaf_file = files[-1][1]
    assert leaf_file is not None
    try:
        with open(leaf_file, "rb") as fh:
            source = fh.read(MAX_SOURCE_BYTES + 1)
        if len(source) > MAX_SOURCE_BYTES:
            raise ValueError(f"larger than {MAX_SOURCE_BYTES} bytes")
        tree = ast.parse(importlib.util.decode_source(source), filename=str(leaf_file))
    except (OSError, ValueError, SyntaxError) as exc:
        raise ConfigError(f"{where}: cannot read module {ref.module!r}: {exc}") from None
    if not any(isinstance(n, ast.ClassDef) and n.name == ref.name for n in tree.body):
        raise ConfigError(f"{where}: module {ref.module!r} defines no top-level class {ref.name!r}")
    return files


def import_class(ref: ClassRef, base: type, where: str, stored: bool = False) -> type:
    """The class ``ref`` names, checked to subclass ``base``; every failure is one
    :class:`ConfigError` line starting with ``where`` (e.g. ``study.yaml: task.model``).
    ``stored``: the reference comes from a database or model file (see the module docstring)."""
    files = _project_source(ref, where) if stored else []
    with _cwd_first() as cwd:
        if not stored and sys.modules.get(ref.module) is None:
            try:
                spec = _find_spec(ref.module)
            except (ImportError, ValueError) as exc:
                raise ConfigError(f"{where}: cannot find module {ref.module!r}: {exc}") from None
            if spec is None:
                raise ConfigError(f"{where}: cannot import {ref.class_path!r}: no module named {ref.module!r} "
                                  f"(modules import from the current directory {cwd} or installed packages)")
        try:
            module = importlib.import_module(ref.module)
        except (Exception, SystemExit) as exc:
            raise ConfigError(f"{where}: importing module {ref.module!r} failed: {describe_exception(exc)}") from None
    for name, file in files:  # a stored study: what was imported is exactly what was checked
        if file is not None and _module_file(sys.modules.get(name)) != file:
            raise ConfigError(f"{where}: module {name!r} was imported from {_module_file(sys.modules.get(name))}, "
                              f"not from the checked {file}")
    cls: Any = module.__dict__.get(ref.name)
    if cls is None:
        raise ConfigError(f"{where}: module {ref.module!r} has no {ref.name!r}")
    if not isinstance(cls, type) or not issubclass(cls, base):
        what = f"class {cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else type(cls).__name__
        raise ConfigError(f"{where}: {ref.class_path!r} is not a {base.__name__} subclass (it is a {what})")
    if stored and cls.__module__ != ref.module:
        raise ConfigError(f"{where}: {ref.class_path!r} is defined in module {cls.__module__!r}, not {ref.module!r}; "
                          "a stored study imports only classes defined in the module it names")
    return cls
