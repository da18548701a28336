"""The mark of a custom task factory: ``@hpsearch.task``.

A study file names a custom task as ``package.module:factory``; only a function marked with
:func:`task` can be named there. Before the module is imported, its source is read (not run)
to see that it defines ``factory`` with the decorator (:func:`check_source_marks`), so a study
file cannot make hpsearch import an arbitrary module (whose import may run code) or call an
arbitrary function (``tempfile:mkdtemp``, ``code:interact``, ``os:system``).
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import inspect
import sys
from typing import Any, Callable, TypeVar

from hpsearch.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

#: Function attribute set by :func:`task`.
MARK = "__hpsearch_task__"
#: Largest module source read to look for the mark.
MAX_SOURCE_BYTES = 5_000_000
#: Where the decorator can be imported from.
_DECORATOR_MODULES = ("hpsearch", "hpsearch.tasks", "hpsearch.tasks.marker")


def task(factory: F) -> F:
    """Mark ``factory`` (a zero-argument function returning an :class:`hpsearch.tasks.Task`)
    as a task factory that a study file may name (``task: mymodule:factory``)."""
    if not inspect.isfunction(factory):
        raise TypeError(f"@hpsearch.task marks a plain function, got {type(factory).__name__}")
    setattr(factory, MARK, True)
    return factory


def is_marked(obj: Any) -> bool:
    """Whether ``obj`` is a plain function marked with :func:`task` (read from its
    ``__dict__``: no attribute hook of ``obj`` runs)."""
    return inspect.isfunction(obj) and obj.__dict__.get(MARK) is True


def _find_spec(module_name: str) -> Any:
    """The module spec of ``module_name``, found without importing it or its parent packages."""
    path = None
    spec = None
    parts = module_name.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is not None:
                spec = find(name, path, None)
                if spec is not None:
                    break
        if spec is None:
            return None
        path = spec.submodule_search_locations
        if i < len(parts) - 1 and path is None:
            return None  # a module, not a package: it has no submodules
    return spec


def _decorator_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Top-level names bound to the decorator (``from hpsearch import task [as t]``) and to
    the ``hpsearch`` package (``import hpsearch [as h]``)."""
    direct: set[str] = set()
    package: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in _DECORATOR_MODULES:
            direct |= {a.asname or a.name for a in node.names if a.name == "task"}
        elif isinstance(node, ast.Import):
            package |= {a.asname or a.name for a in node.names if a.name == "hpsearch"}
    return direct, package


def _is_mark(node: ast.expr, direct: set[str], package: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in direct
    return isinstance(node, ast.Attribute) and node.attr == "task" and isinstance(node.value, ast.Name) and node.value.id in package


def check_source_marks(module_name: str, attr: str, ref: str) -> None:
    """:class:`ConfigError` unless ``module_name``'s Python source defines the function
    ``attr`` at top level decorated with ``@hpsearch.task`` (or ``@task`` imported from
    hpsearch). Nothing is imported or run."""
    try:
        spec = _find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"task: cannot find module {module_name!r} of custom task {ref!r}: {exc}") from None
    if spec is None:
        raise ConfigError(f"task: cannot import module {module_name!r} of custom task {ref!r}: no module named {module_name!r}")
    origin = spec.origin if spec.has_location else None
    if not origin or not str(origin).endswith(".py"):
        raise ConfigError(f"task: module {module_name!r} of custom task {ref!r} has no Python source to check for @hpsearch.task")
    try:
        with open(origin, "rb") as fh:
            source = fh.read(MAX_SOURCE_BYTES + 1)
        if len(source) > MAX_SOURCE_BYTES:
            raise ValueError(f"larger than {MAX_SOURCE_BYTES} bytes")
        tree = ast.parse(importlib.util.decode_source(source), filename=origin)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ConfigError(f"task: cannot read module {module_name!r} of custom task {ref!r}: {exc}") from None
    direct, package = _decorator_names(tree)
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == attr]
    if not defs:
        raise ConfigError(f"task: module {module_name!r} defines no function {attr!r} marked with @hpsearch.task (custom task {ref!r})")
    if not any(_is_mark(d, direct, package) for d in defs[-1].decorator_list):
        raise ConfigError(unmarked(ref))


def unmarked(ref: str) -> str:
    """The message for a study file naming something that is not a marked task factory."""
    return f"task: {ref!r} is not a task factory: a custom task is a function marked with @hpsearch.task"
