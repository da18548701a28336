"""The search section: validation against the task, ``trial.suggest_*``, and the split of a
trial's parameters into a :class:`Regularization` and the task's other options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from hpsearch.errors import ConfigError
from hpsearch.params import REGULARIZATION_DEFAULTS, REGULARIZATION_PARAMS, Condition, ParamSpec, active_params
from hpsearch.study.config import Range, StudyConfig
from hpsearch.tasks.base import Task

if TYPE_CHECKING:
    import optuna

    from hpsearch.regularization import Regularization


@dataclass(frozen=True)
class TrialSettings:
    """All values of one trial: the regularization object and the task's other options."""

    reg: "Regularization"
    options: Mapping[str, Any]
    #: The names this trial's merged settings give (task defaults, fixed, sampled); ``reg``
    #: fills the others with defaults. ``None``: not known (settings rebuilt from elsewhere).
    named: frozenset[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.reg.as_dict(), **self.options}


def _check_range(where: str, name: str, spec: ParamSpec, rng: Range) -> None:
    if spec.kind == "choice":
        raise ConfigError(f"{where}: {name} is categorical; give a list of choices ({spec.describe()})")
    for bound in ("low", "high"):
        value = getattr(rng, bound)
        try:
            spec.check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}.{bound}: {exc}") from None
    if rng.low >= rng.high:
        raise ConfigError(f"{where}: empty or inverted range: low ({rng.low!r}) must be < high ({rng.high!r})")
    if rng.log and rng.low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got low={rng.low!r}")
    if rng.log and rng.step is not None:
        raise ConfigError(f"{where}: step cannot be combined with log: true")
    if spec.kind == "int" and rng.step is not None and not isinstance(rng.step, int):
        raise ConfigError(f"{where}.step: {name} takes integers, got {rng.step!r}")
    if rng.step is not None:
        _check_step(where, rng)


def _check_step(where: str, rng: Range) -> None:
    """A step must be finite, positive and divide ``high - low`` (Optuna would silently move
    ``high`` otherwise)."""
    step = rng.step
    assert step is not None
    if isinstance(step, bool) or not math.isfinite(step) or step <= 0:
        raise ConfigError(f"{where}.step: must be a finite number > 0, got {step!r}")
    span = rng.high - rng.low
    count = round(span / step)
    if abs(count * step - span) > 1e-9 * max(abs(span), abs(step)):
        raise ConfigError(f"{where}.step: {step!r} does not divide the range [{rng.low!r}, {rng.high!r}] (high - low = {span!r})")


def _check_unique(where: str, choices: list[Any]) -> None:
    """Each choice once (a repeated choice would be sampled twice as often, silently)."""
    seen: list[Any] = []
    for choice in choices:
        if any(choice == s and type(choice) is type(s) for s in seen):
            raise ConfigError(f"{where}: choice {choice!r} is listed twice")
        seen.append(choice)


def check_against_task(config: StudyConfig, task: Task, path: str) -> None:
    """Raise :class:`ConfigError` unless every searched/fixed parameter is one the task
    understands, with valid values, and the metric is one the task reports."""
    check_task_conditions(task, path)
    valid_names = ", ".join(sorted(task.params))
    both = sorted(set(config.search) & set(config.fixed))
    if both:
        raise ConfigError(f"{path}: {both[0]} is both searched and fixed; keep it in one of search/fixed")
    for section, entries in (("search", config.search), ("fixed", config.fixed)):
        for name, value in entries.items():
            where = f"{path}: {section}.{name}"
            spec = task.params.get(name)
            if spec is None:
                raise ConfigError(f"{where}: unknown parameter for task {task.name}; valid: {valid_names}")
            if section == "search" and isinstance(value, Range):
                _check_range(where, name, spec, value)
                continue
            choices = value if section == "search" else [value]
            if section == "search" and not choices:
                raise ConfigError(f"{where}: empty list of choices")
            for choice in choices:
                try:
                    spec.check(choice)
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            if section == "search":
                _check_unique(where, list(choices))
    _check_conditions(config, task, path)
    if config.metric is not None and config.metric not in task.metrics:
        raise ConfigError(
            f"{path}: metric: task {task.name} does not report {config.metric!r}; valid: {', '.join(task.metrics)}"
        )


def base_values(config: StudyConfig, task: Task) -> dict[str, Any]:
    """The value of every parameter before sampling: defaults, then ``fixed``."""
    return {**REGULARIZATION_DEFAULTS, **task.defaults, **config.fixed}


def check_task_conditions(task: Task, path: str) -> None:
    """Every ``active_if`` in the task's table reads a parameter of the task, and no chain of
    conditions comes back to where it started (``a`` active if ``b``, ``b`` active if ``a``)."""
    for name, spec in task.params.items():
        chain = [name]
        cond = spec.active_if
        while cond is not None:
            if cond.param not in task.params:
                raise ConfigError(f"{path}: task {task.name}: active_if of {chain[-1]} reads {cond.param!r}, which is not a parameter of the task")
            if cond.param in chain:
                raise ConfigError(f"{path}: task {task.name}: active_if of {name} is circular ({' -> '.join([*chain, cond.param])})")
            chain.append(cond.param)
            cond = task.params[cond.param].active_if


def _space_satisfies(cond: Condition, space: Any) -> bool:
    """Whether some value of the search space ``space`` of ``cond.param`` makes ``cond`` true."""
    if not isinstance(space, Range):
        return any(cond.holds({cond.param: c}) for c in space)
    if cond.op == "in":
        return any(not isinstance(c, bool) and isinstance(c, (int, float)) and space.low <= c <= space.high for c in cond.value)
    return cond.holds({cond.param: space.low if cond.op in ("<", "<=") else space.high})


def _show_space(space: Any) -> str:
    return f"[{space.low!r}, {space.high!r}]" if isinstance(space, Range) else ", ".join(str(c) for c in space)


def _check_conditions(config: StudyConfig, task: Task, path: str) -> None:
    """A searched parameter whose condition no value can make true (its parameter unsearched,
    or searched over values that all fail it) would never be sampled: a configuration error."""
    base = base_values(config, task)
    for name in config.search:
        cond = task.params[name].active_if
        if cond is None:
            continue
        if cond.param in config.search:
            space = config.search[cond.param]
            if not _space_satisfies(cond, space):
                raise ConfigError(
                    f"{path}: search.{name}: has no effect here: only when {cond.describe()}, "
                    f"and search.{cond.param} only holds {_show_space(space)}"
                )
        elif not cond.holds(base):
            raise ConfigError(
                f"{path}: search.{name}: has no effect here: only when {cond.describe()}, "
                f"and {cond.param} is {base.get(cond.param)!r}"
            )


def search_order(config: StudyConfig, task: Task) -> list[str]:
    """The searched parameters, each after the searched parameter its condition reads."""
    order: list[str] = []
    pending = list(config.search)
    while pending:
        for name in pending:
            cond = task.params[name].active_if
            if cond is None or cond.param not in pending or cond.param == name:
                order.append(name)
                pending.remove(name)
                break
        else:  # a cycle of conditions: keep the file's order
            order.extend(pending)
            break
    return order


def suggest(trial: "optuna.Trial", config: StudyConfig, task: Task) -> dict[str, Any]:
    """Ask the trial for every searched parameter that is active; returns ``{name: value}``.

    A range becomes ``suggest_int`` or ``suggest_float`` by the parameter's type in the task's
    table; a list becomes ``suggest_categorical``. A parameter whose ``active_if`` is false
    for the values so far (sampled, fixed or default) is not sampled (absent from the trial).
    """
    values: dict[str, Any] = {}
    context = base_values(config, task)
    for name in search_order(config, task):
        rng = config.search[name]
        cond = task.params[name].active_if
        if cond is not None and not cond.holds(context):
            context.pop(name, None)
            continue
        if not isinstance(rng, Range):
            values[name] = trial.suggest_categorical(name, rng)
        elif task.params[name].kind == "int":
            values[name] = trial.suggest_int(name, int(rng.low), int(rng.high), log=rng.log, step=int(rng.step or 1))
        else:
            step = None if rng.step is None else float(rng.step)
            values[name] = trial.suggest_float(name, float(rng.low), float(rng.high), log=rng.log, step=step)
        context[name] = values[name]
    return values


def settings_for(params: Mapping[str, Any], config: StudyConfig, task: Task) -> TrialSettings:
    """Task defaults, then ``fixed``, then the sampled ``params``, without inactive parameters,
    split into a Regularization and the remaining options."""
    from hpsearch.regularization import Regularization

    # Parameters whose ``active_if`` is false are dropped: they take no part in the trial.
    merged = active_params({**task.defaults, **config.fixed, **params}, task.params)
    for name, value in list(merged.items()):
        spec = task.params.get(name)
        if spec is not None and spec.kind == "float" and isinstance(value, int):
            merged[name] = float(value)
    reg = Regularization(**{k: v for k, v in merged.items() if k in REGULARIZATION_PARAMS})
    options = {k: v for k, v in merged.items() if k not in REGULARIZATION_PARAMS}
    return TrialSettings(reg=reg, options=options, named=frozenset(merged))
