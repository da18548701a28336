"""Type checks of sampler/pruner options against the Optuna constructor's annotations, so
``n_startup_trials: 'x'`` is a one-line error up front instead of failing every trial."""

from __future__ import annotations

import collections.abc
import inspect
import math
import sys
import typing
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from hpsearch.study.yaml_load import short_repr


def _namespace(cls: type) -> dict[str, Any]:
    """Names the constructor's string annotations may use."""
    import numpy
    import optuna

    names: dict[str, Any] = {**vars(typing), **vars(collections.abc)}
    names.update(np=numpy, FrozenTrial=optuna.trial.FrozenTrial, BaseSampler=optuna.samplers.BaseSampler, Study=optuna.Study)
    names.update(vars(sys.modules[cls.__module__]))
    return names


def _annotation(cls: type, name: str) -> Any:
    """The evaluated annotation of constructor argument ``name``, or ``None`` if it cannot
    be evaluated (then the value is left to the constructor)."""
    annotation = inspect.signature(cls).parameters[name].annotation
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        try:
            return eval(annotation, _namespace(cls))  # Optuna's own annotation text, not user input
        except Exception:
            return None
    return annotation


def option_type_error(cls: type, name: str, value: Any) -> str | None:
    """Why ``value`` does not fit the annotated type of ``cls``'s argument ``name`` (strict:
    no string-to-number coercion, NaN/inf refused), or ``None`` when it fits."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    annotation = _annotation(cls, name)
    if annotation is None:
        return None
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
        adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        expected = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        return f"{exc.errors()[0]['msg']} ({expected}), got {short_repr(value)}"
    except Exception:  # an annotation pydantic cannot build a schema for: the constructor decides
        return None
    return None
