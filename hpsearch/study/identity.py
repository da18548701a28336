"""A study's identity: the part of the study file that decides what its trials mean.

The fingerprint holds the task, metric, direction (all objectives of a multi-objective
study), constraints, baselines, search space, fixed settings, ``max_epochs`` and seed, one
flat key per setting (``search.weight_decay.high``). It is stored
when a study is created; a later run with a file whose fingerprint differs would add trials of
another experiment to the study, so it is refused unless the user explicitly allows it.
``trials``, timeouts, ``population`` and the sampler/pruner options are not part of it: they
change how the search proceeds, not what a trial measures (a population member trains exactly
as the same trial alone would, see :mod:`hpsearch.population`).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Mapping

from hpsearch.study.config import Range
from hpsearch.study.meta import FINGERPRINT_ATTR as FINGERPRINT_ATTR  # stored in the study user attr of this name

if TYPE_CHECKING:
    from hpsearch.study.definition import StudyDefinition

#: Study user attr: a random id given at creation, so a study deleted and made again is another study.
UID_ATTR = "hpsearch_study_uid"
#: Study user attr: the list of changes allowed with ``--allow-changes``.
CHANGES_ATTR = "hpsearch_definition_changes"
#: Keys that cannot change even with ``--allow-changes``: the stored values would mean something else.
UNCHANGEABLE = ("metric", "direction", "objectives")


def fingerprint(definition: "StudyDefinition") -> dict[str, Any]:
    """The definition's identity as a flat ``{key: JSON value}`` mapping."""
    config = definition.config
    flat: dict[str, Any] = {
        "task": config.task if isinstance(config.task, str) else config.task.plain(),
        "metric": definition.metric,
        "direction": definition.direction,
        "max_epochs": config.max_epochs,
        "seed": config.seed,
    }
    for name, value in sorted(config.search.items()):
        if isinstance(value, Range):
            flat.update({f"search.{name}.{key}": getattr(value, key) for key in ("low", "high", "log", "step")})
        else:
            flat[f"search.{name}"] = list(value)
    for name, value in sorted(config.fixed.items()):
        flat[f"fixed.{name}"] = value
    if definition.multi:
        flat["objectives"] = [f"{m} ({d})" for m, d in definition.objective_pairs]
    for name, bound in sorted(config.constraints.items()):
        flat.update({f"constraints.{name}.{key}": getattr(bound, key) for key in ("min", "max") if getattr(bound, key) is not None})
    for name, settings in sorted(config.baselines.items()):
        flat.update({f"baselines.{name}.{key}": value for key, value in sorted(settings.items())})
    if config.question is not None:  # what the levels are and how they are compared
        q = config.question
        flat.update({"question.compare": q.factors, "question.levels": q.levels, "question.reference": q.reference,
                     "question.within": list(q.within)})
    return json.loads(json.dumps(flat, sort_keys=True, default=str))  # exactly what storing it round-trips to


def fingerprint_hash(flat: Mapping[str, Any]) -> str:
    """A short stable hash of a fingerprint (for checkpoint paths)."""
    return hashlib.sha256(json.dumps(dict(flat), sort_keys=True).encode()).hexdigest()[:12]


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    return value if isinstance(value, str) else json.dumps(value)


_ABSENT = object()


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keys whose value differs (present in one only counts), sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k, _ABSENT) != new.get(k, _ABSENT) or (k in old) != (k in new))


def definition_changes(old: Mapping[str, Any], definition: "StudyDefinition") -> list[str]:
    """:func:`describe_changes` from the stored fingerprint ``old`` to ``definition``'s, leaving
    out ``fixed`` settings that act in neither (see :func:`hpsearch.params.acting`; e.g.
    ``momentum`` with adamw): changing one does not change what a trial trains."""
    new = fingerprint(definition)
    live = _acting_fixed(old, definition) | _acting_fixed(new, definition)

    def view(flat: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in flat.items() if not k.startswith("fixed.") or k[len("fixed."):] in live}

    return describe_changes(view(old), view(new))


def _acting_fixed(flat: Mapping[str, Any], definition: "StudyDefinition") -> set[str]:
    """The ``fixed`` settings of fingerprint ``flat`` that act in some trial of its study."""
    from hpsearch.params import REGULARIZATION_DEFAULTS, acting

    fixed = {k[len("fixed."):]: v for k, v in flat.items() if k.startswith("fixed.")}
    searched = {k.split(".")[1] for k in flat if k.startswith("search.")}
    task = definition.task
    return set(acting(fixed, {**REGULARIZATION_DEFAULTS, **task.defaults}, task.params, searched))


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per changed key: ``search.weight_decay.high: 0.1 -> 0.5``."""
    return [f"{k}: {_show(old.get(k, _ABSENT))} -> {_show(new.get(k, _ABSENT))}" for k in changed_keys(old, new)]
