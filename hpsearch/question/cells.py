"""A question's design: its levels (one factor, or the cross product of two), the ``within``
cells, and one ordinary study per (level, cell) in which the nuisance parameters are tuned.

Each cell study is the question's study file with the level's and the cell's settings moved to
``fixed``, those parameters (and any they make inactive) removed from ``search``, ``trials`` set
to the budget, and no ``question``/``baselines``: a plain study, so pruning compares a trial only
with its own level, every tool reads it, and its stored file rebuilds it exactly.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import yaml

from hpsearch.errors import ConfigError
from hpsearch.question.config import FACTOR_JOIN, QuestionConfig, slug
from hpsearch.study.config import MAX_STUDY_NAME, Range, StudyFile, parse_study

#: Most cells (levels × within combinations) one question may have.
MAX_CELLS = 1000


@dataclass(frozen=True)
class Level:
    """One compared level: its name, its per-factor level names, and the settings it fixes."""

    name: str
    parts: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Cell:
    """One (level, ``within`` combination): tuned as its own study."""

    level: Level
    within: tuple[tuple[str, Any], ...] = ()

    @property
    def within_label(self) -> str:
        return ",".join(f"{k}={slug(v)}" for k, v in self.within)

    @property
    def key(self) -> str:
        """``level`` or ``level@dataset=circles,width=3``."""
        return self.level.name + (f"@{self.within_label}" if self.within else "")


@dataclass(frozen=True)
class QuestionPlan:
    """The resolved design of a question study."""

    question: QuestionConfig
    factors: list[str]
    levels: list[Level]
    reference: Level
    within: list[tuple[tuple[str, Any], ...]]
    cells: list[Cell]

    def cell_study(self, parent: str, cell: Cell) -> str:
        """The name of the study that tunes ``cell``."""
        return f"{parent}:{cell.key}"


def _fail(path: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: question.{where}: {message}")


def _choices(config: Any, name: str, path: str, where: str) -> list[Any]:
    spec = config.search.get(name)
    if not isinstance(spec, list):
        how = "a range" if isinstance(spec, Range) else "fixed" if name in config.fixed else "not searched"
        raise _fail(path, where, f"{name} must be searched as a list of choices (it is {how}), or give its levels")
    return list(spec)


def _factor_levels(q: QuestionConfig, config: Any, path: str) -> list[list[tuple[str, dict[str, Any]]]]:
    """Each factor's levels as ``(name, settings)``."""
    out = []
    for factor, given in q.explicit_levels().items():
        if given is None:
            where = "compare"
            levels = [(slug(c), {factor: c}) for c in _choices(config, factor, path, where)]
            names = [n for n, _ in levels]
            if len(set(names)) != len(names):
                raise _fail(path, "compare", f"the choices of {factor} give the same level name twice ({names}); "
                                             "name the levels under levels:")
            out.append(levels)
        else:
            out.append(list(given.items()))
    if len(out) == 2 and any(len(levels) != 2 for levels in out):
        raise _fail(path, "levels", "a factorial compares exactly two levels of each factor; give them under levels")
    return out


def _combine(parts: tuple[tuple[str, dict[str, Any]], ...], path: str) -> Level:
    settings: dict[str, Any] = {}
    for _, values in parts:
        for key, value in values.items():
            if key in settings and settings[key] != value:
                raise _fail(path, "levels", f"levels {FACTOR_JOIN.join(n for n, _ in parts)} set {key} twice "
                                            f"({settings[key]!r} and {value!r})")
            settings[key] = value
    return Level(FACTOR_JOIN.join(n for n, _ in parts), tuple(n for n, _ in parts), settings)


def plan(definition: Any) -> QuestionPlan:
    """The question's levels, reference and cells; :class:`ConfigError` (one line) when the
    block does not fit the study's search space."""
    config, path = definition.config, definition.path
    q: QuestionConfig | None = config.question
    if q is None:
        raise ConfigError(f"{path}: the study file has no question: block")
    if definition.multi:
        raise _fail(path, "compare", "a question compares one metric; remove the extra objectives")
    factor_levels = _factor_levels(q, config, path)
    levels = [_combine(parts, path) for parts in itertools.product(*factor_levels)]
    names = [lv.name for lv in levels]
    if len(set(names)) != len(names):
        raise _fail(path, "levels", f"level names must differ, got {names}")
    ref_name = q.reference if q.reference is not None else names[0]
    reference = next((lv for lv in levels if lv.name == ref_name), None)
    if reference is None:
        raise _fail(path, "reference", f"{ref_name!r} is not a level; levels: {', '.join(names)}")
    within_choices = [[(name, c) for c in _choices(config, name, path, "within")] for name in q.within]
    within = [tuple(combo) for combo in itertools.product(*within_choices)]
    cells = [Cell(level, combo) for combo in within for level in levels]
    if len(cells) > MAX_CELLS:
        raise _fail(path, "within", f"{len(cells)} cells (levels x within combinations); at most {MAX_CELLS}")
    longest = max(len(f"{config.study}:{c.key}:answer") for c in cells)
    if longest > MAX_STUDY_NAME:
        raise _fail(path, "levels", f"study name + cell names are too long ({longest} > {MAX_STUDY_NAME} characters)")
    result = QuestionPlan(q, q.factors, levels, reference, within, cells)
    for cell in cells:
        cell_definition(definition, result, cell)  # every cell is a valid study for the task
    return result


def cell_config_data(definition: Any, plan: QuestionPlan, cell: Cell) -> dict[str, Any]:
    """The study-file data of the cell's own study (see the module docstring)."""
    config, task = definition.config, definition.task
    data = config.model_dump(mode="python", exclude_unset=True, exclude={"question", "baselines"})
    moved = {**dict(cell.within), **cell.level.settings}
    fixed = {**config.fixed, **moved}
    search = {k: v for k, v in config.search.items() if k not in moved}
    context = {**task.defaults, **fixed}
    changed = True
    while changed:  # a chain of conditions: a parameter made inactive can make another one inactive
        changed = False
        for name in list(search):
            cond = task.params[name].active_if if name in task.params else None
            if cond is not None and cond.param not in search and not cond.holds(context):
                del search[name]  # the level makes it inactive: nothing to tune
                context.pop(name, None)
                changed = True
    data.update(study=plan.cell_study(config.study, cell), trials=plan.question.budget, fixed=fixed,
                search={k: (v.model_dump(exclude_none=True) if isinstance(v, Range) else v) for k, v in search.items()})
    return data


def check_question(definition: Any) -> None:
    """A question's design fits the task and the search space (every cell a valid study); a
    question with baselines is refused (:class:`ConfigError`)."""
    if definition.config.baselines:
        raise ConfigError(f"{definition.path}: question: a question study runs no baselines (each level is tuned "
                          "in its own study); remove baselines, or put them in a study without a question")
    plan(definition)


def cell_definition(definition: Any, plan: QuestionPlan, cell: Cell) -> Any:
    """The cell's study as a :class:`~hpsearch.study.definition.StudyDefinition`."""
    from hpsearch.study.definition import define

    text = yaml.safe_dump(cell_config_data(definition, plan, cell), sort_keys=False)
    where = f"{definition.path} (question cell {cell.key})"
    config = parse_study(text, where)
    return define(StudyFile(path=where, text=text, config=config), stored=definition.stored)
