"""The ``question:`` block of a study file: what is compared, at which levels, within which
cells, with what tuning budget, how many seeds, and the smallest effect that matters.

Structure is checked here (pydantic, one-line errors); names and values are checked against the
task when the levels are turned into cell studies (:mod:`hpsearch.question.cells`).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Joins the level names of a factorial cell ("standardize+tuned").
FACTOR_JOIN = "+"
#: Seeds per level by default: enough for the exact tests to reach p < 0.05 over a few comparisons.
DEFAULT_SEEDS = 10


def slug(value: Any) -> str:
    """A level name for a searched choice: its text with the characters a level name cannot
    hold (``/ \\ : @ +`` and control characters) replaced by ``-`` (``fc/none`` -> ``fc-none``)."""
    return "".join("-" if ord(c) < 32 or c in "/\\:@" + FACTOR_JOIN else c for c in str(value)).strip() or "-"


def _level_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"{where}: a level name is a non-empty string without leading/trailing spaces, got {name!r}")
    bad = next((c for c in name if ord(c) < 32 or c in "/\\:@" + FACTOR_JOIN), None)
    if bad is not None:
        raise ValueError(f"{where}: level name {name!r} cannot contain {bad!r}")
    return name


def _settings(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: a level is a mapping of settings (e.g. {{weight_decay: 0}}, or {{}} for tuned), got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"{where}: setting names are strings, got {key!r}")
    return dict(value)


class QuestionConfig(BaseModel):
    """A validated ``question:`` block."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    asks: str = Field(min_length=1, max_length=500)
    compare: Union[str, list[str]]
    levels: dict[str, Any] | None = None
    reference: str | None = None
    within: list[str] = Field(default_factory=list)
    budget: int = Field(gt=0, le=100_000)
    seeds: int = Field(default=DEFAULT_SEEDS, ge=2, le=1000)
    min_effect: Union[int, float]
    # seed: every retrain on the study's split; split: seed s also draws the data with seed s
    vary: Literal["seed", "split"] = "seed"

    @field_validator("reference", mode="before")
    @classmethod
    def _reference_text(cls, value: Any) -> Any:
        # `reference: 2` names the level "2" of a numeric choice list (YAML reads it as a number)
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("min_effect")
    @classmethod
    def _positive_finite(cls, value: float) -> float:
        if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"must be a finite number > 0 (in the metric's units), got {value!r}")
        return float(value)

    @property
    def factors(self) -> list[str]:
        """The compared parameters (one, or two for a factorial)."""
        return [self.compare] if isinstance(self.compare, str) else list(self.compare)

    @model_validator(mode="after")
    def _shape(self) -> "QuestionConfig":
        factors = self.factors
        if not 1 <= len(factors) <= 2 or len(set(factors)) != len(factors) or not all(f.strip() for f in factors):
            raise ValueError(f"compare: one parameter, or two distinct ones for a factorial, got {self.compare!r}")
        overlap = sorted(set(self.within) & set(factors))
        if overlap or len(set(self.within)) != len(self.within):
            raise ValueError(f"within: each parameter once and none of the compared ones, got {self.within!r}")
        explicit = self.explicit_levels()
        for factor, levels in explicit.items():
            if levels is not None and len(levels) < 2:
                raise ValueError(f"levels{'' if len(factors) == 1 else '.' + factor}: give at least two levels")
            if levels is not None and len(factors) == 2 and len(levels) != 2:
                raise ValueError(f"levels.{factor}: a factorial compares exactly two levels of each factor, got {len(levels)}")
        return self

    def explicit_levels(self) -> dict[str, dict[str, dict[str, Any]] | None]:
        """Each factor's named levels as written (``None``: its searched choices are the levels)."""
        factors = self.factors
        if self.levels is None:
            return {f: None for f in factors}
        if len(factors) == 1:
            return {factors[0]: {_level_name(k, "levels"): _settings(v, f"levels.{k}") for k, v in self.levels.items()}}
        unknown = sorted(set(self.levels) - set(factors))
        if unknown:
            raise ValueError(f"levels: {unknown[0]!r} is not a compared factor; a factorial gives levels per factor "
                             f"({', '.join(factors)})")
        out: dict[str, dict[str, dict[str, Any]] | None] = {}
        for f in factors:
            given = self.levels.get(f)
            if given is not None and not isinstance(given, dict):
                raise ValueError(f"levels.{f}: a mapping of level name -> settings, got {given!r}")
            out[f] = None if given is None else {_level_name(k, f"levels.{f}"): _settings(v, f"levels.{f}.{k}")
                                                  for k, v in given.items()}
        return out
