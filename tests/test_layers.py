"""The import graph of the hpsearch package: no circles, and no import from a lower layer into a
higher one.

Every module is parsed (not imported); every ``import hpsearch.x`` / ``from hpsearch.x import
y`` / relative import counts, wherever it stands: at module level, inside a function (a lazy
import that only hides a circle is still a circle) or under ``if TYPE_CHECKING:``. ``from
hpsearch.x import y`` is an edge to ``hpsearch.x.y`` when that is a module, else to ``hpsearch.x``.

The layers, lowest first, follow docs/development.md's "How the code is laid out": the parameter
table and plain helpers; the database; what a trial trains (tasks, models, Lightning tasks); the
study file; running trials; what reads results; populations (their stacked retrains reuse
``analysis.retrain``); questions and ``verify`` (both retrain seeds as populations); the report (it shows questions); the terminal text; and the
entry points (CLI, notebook API, the package root). A module may import its own layer and the
layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "hpsearch"

#: Lowest first; a module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("hpsearch.errors", "hpsearch.params", "hpsearch.sgdw", "hpsearch.version", "hpsearch.data", "hpsearch.regularization"),
    ("hpsearch.store", "hpsearch.logs"),
    ("hpsearch.tasks", "hpsearch.models", "hpsearch.lightning_task"),
    ("hpsearch.study", "hpsearch.question.config"),  # the question: block is part of the study file's schema
    ("hpsearch.run",),
    ("hpsearch.analysis",),
    ("hpsearch.population",),
    ("hpsearch.question", "hpsearch.analysis.verify"),  # verify retrains seeds as populations, as answer does
    ("hpsearch.analysis.report",),
    ("hpsearch.console",),
    ("hpsearch.cli", "hpsearch.api", "hpsearch", "hpsearch.__main__", "hpsearch.testing"),
]

#: Known imports from a lower layer into a higher one, each with its reason; the test fails on
#: any other, and on an entry here that no longer exists (so the list only shrinks).
KNOWN_UPWARD: dict[tuple[str, str], str] = {
    ("hpsearch.lightning_task.fit", "hpsearch.run.training"): "a Lightning fit returns the runner's FitResult",
    ("hpsearch.lightning_task.fit", "hpsearch.study.space"): "TrialSettings (type only)",
    ("hpsearch.lightning_task.task", "hpsearch.study.config"): "the task block's ranges (Range)",
    ("hpsearch.lightning_task.task", "hpsearch.study.space"): "settings_for, when checking that settings act",
    ("hpsearch.analysis.report.build", "hpsearch.console"): "the report's text summary and tables are terminal text",
    ("hpsearch.analysis.report.html", "hpsearch.console"): "fmt_value",
    ("hpsearch.question.render", "hpsearch.console"): "table",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of hpsearch it imports}``."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                if target == "hpsearch" or target.startswith("hpsearch."):
                    resolved = known(target)
                    if resolved is not None and resolved != name:
                        edges.add(resolved)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    best, layer = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), i
    assert layer >= 0, f"{module} is in no layer: add it to LAYERS"
    return layer


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_lazy_and_type_checking_imports(graph: dict[str, set[str]]) -> None:
    assert len(graph) > 100
    assert "hpsearch.api" in graph["hpsearch"]  # the root's lazy re-export, inside __getattr__
    assert "hpsearch.run.training" in graph["hpsearch.lightning_task.fit"]  # under TYPE_CHECKING and in a function
    assert "hpsearch.run.stopper" in graph["hpsearch.run.trial_loop"]


def test_no_import_circles(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself works


def test_no_lower_layer_imports_a_higher_one(graph: dict[str, set[str]]) -> None:
    upward = {(m, t) for m, targets in graph.items() for t in targets if layer_of(m) < layer_of(t)}
    assert sorted(upward - set(KNOWN_UPWARD)) == []
    assert sorted(set(KNOWN_UPWARD) - upward) == []  # a fixed one leaves the list


def test_the_trial_loop_does_not_reach_the_populations(graph: dict[str, set[str]]) -> None:
    assert not any(t.startswith("hpsearch.population") for t in graph["hpsearch.run.trial_loop"])
    assert not any(t.startswith("hpsearch.population") for m, ts in graph.items() if m.startswith("hpsearch.run.") for t in ts)
