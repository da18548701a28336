"""Study files: the StudyConfig schema, safe YAML loading and one-line validation errors.

Structure and types are checked by pydantic (strict, unknown keys rejected); parameter names
and values are checked against the task's parameter table in :func:`check_against_task`.
No torch/optuna imports here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from hpsearch.errors import ConfigError
from hpsearch.lightning_task.config import LightningTaskConfig
from hpsearch.params import STUDY_SETTINGS
from hpsearch.question.config import QuestionConfig
from hpsearch.study.yaml_load import load_yaml, read_study_text, short_repr

#: Longest study name: the database holds 512 characters, a directory name 255 bytes, and
#: ``hpsearch verify`` adds ``:verify``.
MAX_STUDY_NAME = 200
#: Largest ``population``: members trained at once by one worker (memory grows linearly with it).
MAX_POPULATION = 1024


def check_study_name(name: str) -> str:
    """``name`` if the database, the report and checkpoint paths all accept it; else ``ValueError``."""
    if not name:
        raise ValueError("a study name cannot be empty")
    if len(name) > MAX_STUDY_NAME:
        raise ValueError(f"a study name has at most {MAX_STUDY_NAME} characters, got {len(name)}")
    bad = next((c for c in name if ord(c) < 32 or ord(c) == 127 or c in "/\\"), None)
    if bad is not None:
        raise ValueError(f"a study name cannot contain {bad!r} (control characters and slashes are not allowed)")
    if name.strip(". ") == "" or name != name.strip():
        raise ValueError(f"{short_repr(name)} is not a usable study name (no leading/trailing spaces, not only dots)")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Range(_Strict):
    """A numeric range to search: ``{low, high, log, step}``."""

    low: Union[int, float]
    high: Union[int, float]
    log: bool = False
    step: Union[int, float, None] = None


def _search_kind(value: Any) -> str:
    return "range" if isinstance(value, (dict, Range)) else "choices"


# A mapping is validated as a Range only (so its errors are about range keys), a list as choices.
SearchValue = Annotated[
    Union[Annotated[list[Any], Tag("choices")], Annotated[Range, Tag("range")]],
    Discriminator(_search_kind),
]


def _checked(setting: str) -> AfterValidator:
    """A pydantic validator checking a value against ``STUDY_SETTINGS[setting]``."""
    return AfterValidator(STUDY_SETTINGS[setting].check)


class SamplerConfig(BaseModel):
    """``type`` plus the sampler's own keyword options (checked against its constructor)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    type: Annotated[str, _checked("sampler.type")] = "tpe"
    # tpe/gp: finished trials the sampler models (the best 250 plus the most recent), 0 = all;
    # see hpsearch.study.history.
    max_history: int = Field(default=1000, ge=0)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PrunerConfig(BaseModel):
    """``type`` plus the pruner's own keyword options (checked against its constructor)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    type: Annotated[str, _checked("pruner.type")] = "hyperband"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ObjectiveConfig(_Strict):
    """One objective: a number every trial stores (a metric or user attr) and its direction."""

    metric: str = Field(min_length=1)
    direction: Literal["maximize", "minimize"]


class Bound(_Strict):
    """A constraint on a number a trial stores: ``{max: 0.03}``, ``{min: 0.9}`` or both."""

    min: Union[int, float, None] = None
    max: Union[int, float, None] = None

    @field_validator("min", "max")
    @classmethod
    def _finite(cls, value: Union[int, float, None]) -> Union[int, float, None]:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_bound(self) -> "Bound":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min!r}) is above max ({self.max!r})")
        return self

    def violation(self, value: float) -> float:
        """Optuna's constraint value: <= 0 when ``value`` is within the bounds."""
        parts = []
        if self.max is not None:
            parts.append(value - self.max)
        if self.min is not None:
            parts.append(self.min - value)
        return max(parts)


def _task_kind(value: Any) -> str:
    return "lightning_block" if isinstance(value, (dict, LightningTaskConfig)) else "task_name"


# A task name (built-in or ``module:factory``), or a mapping naming the user's Lightning classes.
TaskValue = Annotated[
    Union[Annotated[str, Field(min_length=1), Tag("task_name")], Annotated[LightningTaskConfig, Tag("lightning_block")]],
    Discriminator(_task_kind),
]


class StudyConfig(_Strict):
    """A validated study file."""

    study: Annotated[str, AfterValidator(check_study_name)]
    task: TaskValue
    metric: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    trials: int = Field(gt=0)
    max_epochs: int = Field(gt=0)
    seed: int = 0
    # Trials trained at once as one vectorized model (hpsearch.population); 1 = one at a time.
    population: int = Field(default=1, ge=1, le=MAX_POPULATION)
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig = PrunerConfig()
    search: dict[str, SearchValue] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    # Several objectives (a multi-objective study) instead of metric/direction; the first
    # must be a metric the task reports (it is the one the learning curves show).
    objectives: list[ObjectiveConfig] | None = Field(default=None, min_length=1)
    # Bounds on numbers a trial stores; a trial outside them is infeasible (Optuna constraints).
    constraints: dict[str, Bound] = Field(default_factory=dict)
    # Named fixed settings run first, with the full epoch budget and never pruned.
    baselines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Where the best models are kept (shared storage on a cluster); default: next to the
    # SQLite file; $HPSEARCH_MODEL_DIR overrides it (see hpsearch.run.kept_models).
    model_dir: str | None = Field(default=None, min_length=1)
    # A question (compare the levels of a factor, each tuned with the same budget): see
    # hpsearch.question; `optimize` then tunes one linked study per level.
    question: QuestionConfig | None = None

    @property
    def task_ref(self) -> str:
        """The task as one string: its name, or ``lightning:<model>+<data>`` for a task block."""
        return self.task if isinstance(self.task, str) else self.task.name

    @field_validator("model_dir")
    @classmethod
    def _model_dir_text(cls, value: str | None) -> str | None:
        bad = next((c for c in value or "" if ord(c) < 32 or ord(c) == 127), None)
        if bad is not None:
            raise ValueError(f"cannot contain {bad!r} (control characters are not allowed)")
        return value

    @field_validator("search", mode="before")
    @classmethod
    def _ranges_are_mappings(cls, value: Any) -> Any:
        # Give a precise message instead of pydantic's union-of-two-failures.
        if isinstance(value, dict):
            for key, spec in value.items():
                if not isinstance(spec, (list, dict)):
                    raise ValueError(f"{key}: expected a list of choices or a range {{low, high, log}}, got {short_repr(spec)}")
        return value

    @model_validator(mode="after")
    def _objectives(self) -> "StudyConfig":
        if self.objectives is None:
            return self
        if self.metric is not None or self.direction is not None:
            raise ValueError("objectives: give either metric/direction or objectives, not both")
        names = [o.metric for o in self.objectives]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"objectives: {dup} is listed twice")
        if len(names) > 1 and "pruner" in self.model_fields_set and self.pruner.type != "none":
            raise ValueError(
                "pruner: Optuna cannot prune a study with several objectives (trial.report is single-objective); "
                "remove the pruner section or set pruner: {type: none}"
            )
        return self


@dataclass(frozen=True)
class StudyFile:
    """A loaded study file: where it came from, its text, and the validated config."""

    path: str
    text: str
    config: StudyConfig


def _error_line(path: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if p not in ("range", "choices", "task_name", "lightning_block"))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "literal_error":
        msg = f"got {short_repr(err.get('input'))}; valid: " + msg.removeprefix("Input should be ")
    elif "input" in err and err["type"] not in ("value_error",):
        msg = f"{msg}, got {short_repr(err['input'])}"
    msg = msg.removeprefix("Value error, ")
    return f"{path}: {loc}: {msg}" if loc else f"{path}: {msg}"


def parse_study(text: str, path: str = "<string>", overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Parse and validate study YAML; ``overrides`` (e.g. from the CLI) replace top-level keys."""
    try:
        data = load_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a study file must be a YAML mapping of keys, got {type(data).__name__}")
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    _apply_caps(data)
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_error_line(path, exc)) from None


#: Top-level keys that change what a trial trains on and for how long (the data split and
#: per-trial seeds, the epochs): their effective values, after CLI overrides and budget caps,
#: are stored with the study so ``verify`` rebuilds exactly the searched configuration.
EFFECTIVE_KEYS = ("seed", "max_epochs")


def effective_settings(config: StudyConfig) -> dict[str, Any]:
    """The values of :data:`EFFECTIVE_KEYS` in ``config`` (what was really run)."""
    return {key: getattr(config, key) for key in EFFECTIVE_KEYS}


#: Environment variables that cap a study's budget (tiny runs for the README test, smoke tests):
#: ``trials`` and ``max_epochs`` become at most their value, whatever the file or the CLI says.
BUDGET_CAPS = {"trials": "HPSEARCH_CAP_TRIALS", "max_epochs": "HPSEARCH_CAP_EPOCHS"}


def _apply_caps(data: dict[str, Any]) -> None:
    """Lower ``trials`` / ``max_epochs`` to ``$HPSEARCH_CAP_TRIALS`` / ``$HPSEARCH_CAP_EPOCHS``."""
    for key, env in BUDGET_CAPS.items():
        cap = os.environ.get(env, "").strip()
        if not cap:
            continue
        if not cap.isdigit() or int(cap) < 1:
            raise ConfigError(f"${env}: must be a positive integer, got {cap!r}")
        if isinstance(data.get(key), int) and data[key] > int(cap):
            data[key] = int(cap)


def load_study_file(path: str | Path, overrides: dict[str, Any] | None = None) -> StudyFile:
    """Read, parse and validate a study file (structure only; see :func:`check_against_task`).

    ``path`` may name a built-in study (``quickstart``) when no such file exists. Only a
    regular file of at most 1 MB is read (see :mod:`hpsearch.study.yaml_load`)."""
    from hpsearch.study.builtin import builtin_names, resolve_study_path

    p = resolve_study_path(path)
    path = str(p)
    if not p.exists():
        raise ConfigError(f"{path}: study file not found (built-in studies: {', '.join(builtin_names())})")
    text = read_study_text(path)
    return StudyFile(path=str(path), text=text, config=parse_study(text, str(path), overrides))
