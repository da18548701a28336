"""Baselines: named fixed settings from the study file, run first in the same study.

A baseline sets searched parameters to fixed values (the rest take their defaults, or the
value ``fixed`` gives). It is enqueued once per study (one worker wins the claim, however many
start together), runs with the full ``max_epochs`` and is never pruned, and carries its name
in the trial user attr ``baseline``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpsearch.errors import ConfigError
from hpsearch.study.config import Range, SearchValue, StudyConfig
from hpsearch.study.space import base_values, search_order
from hpsearch.tasks.base import Task

if TYPE_CHECKING:
    import optuna

#: Trial user attr naming the baseline a trial ran.
BASELINE_ATTR = "baseline"


def _in_space(value: Any, space: SearchValue) -> bool:
    if isinstance(space, Range):
        return not isinstance(value, bool) and isinstance(value, (int, float)) and space.low <= value <= space.high
    return any(value == c and type(value) is type(c) for c in space)


def _show_space(space: SearchValue) -> str:
    if isinstance(space, Range):
        return f"[{space.low!r}, {space.high!r}]"
    return ", ".join(str(c) for c in space)


def baseline_params(name: str, settings: dict[str, Any], config: StudyConfig, task: Task, path: str) -> dict[str, Any]:
    """The trial params of baseline ``name``: every active searched parameter, from
    ``settings`` or its default; :class:`ConfigError` for an unknown parameter, a value outside
    the search space, or a setting that has no effect."""
    where = f"{path}: baselines.{name}"
    for key in settings:
        if key not in task.params:
            raise ConfigError(f"{where}.{key}: unknown parameter for task {task.name}; valid: {', '.join(sorted(task.params))}")
        if key not in config.search:
            raise ConfigError(f"{where}.{key}: not searched in this study (a baseline sets searched parameters; `fixed` applies to all trials)")
    context = base_values(config, task)
    params: dict[str, Any] = {}
    for key in search_order(config, task):
        space = config.search[key]
        cond = task.params[key].active_if
        if cond is not None and not cond.holds(context):
            context.pop(key, None)
            if key in settings:
                raise ConfigError(f"{where}.{key}: has no effect in this baseline (only when {cond.describe()})")
            continue
        value = settings[key] if key in settings else context.get(key)
        if key not in settings and not _in_space(value, space):
            raise ConfigError(f"{where}: give {key} (its default {value!r} is outside the search space {_show_space(space)})")
        try:
            value = task.params[key].check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
        if not _in_space(value, space):
            raise ConfigError(f"{where}.{key}: {value!r} is outside the search space {_show_space(space)}")
        params[key] = value
        context[key] = value
    return params


def check_baseline_count(config: StudyConfig, path: str) -> None:
    """Each baseline is one of the study's ``trials``: more baselines than trials (after CLI
    overrides and budget caps) would leave the extra ones waiting forever."""
    if len(config.baselines) > config.trials:
        raise ConfigError(
            f"{path}: baselines: {len(config.baselines)} baselines but trials is {config.trials}; "
            "each baseline is one of the trials (raise trials or remove a baseline)"
        )


def check_baselines(config: StudyConfig, task: Task, path: str) -> dict[str, dict[str, Any]]:
    """The params of every baseline (see :func:`baseline_params`)."""
    return {name: baseline_params(name, dict(settings), config, task, path) for name, settings in config.baselines.items()}


def enqueue_baselines(study: "optuna.Study", config: StudyConfig, task: Task, path: str) -> list[str]:
    """Enqueue each baseline of the study file (``config`` checked against ``task``) once per study (a claim in the database keeps
    workers that start together from enqueueing it twice); returns the names enqueued."""
    from hpsearch.store.queries import claim_once

    done = []
    for name, params in check_baselines(config, task, path).items():
        if claim_once(study, f"hpsearch:baseline:{name}"):
            study.enqueue_trial(params, user_attrs={BASELINE_ATTR: name})
            done.append(name)
    return done
