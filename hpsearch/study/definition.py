"""A study definition: a study file checked against its task, done once per run.

:func:`define` resolves the task, checks every searched and fixed parameter against the task's
table, and settles the metric and direction; the runner, the worker pool and verification all
take the result instead of redoing the checks. A ``question:`` block's design is checked one
layer up (:func:`hpsearch.question.cells.check_question`, called by
:func:`hpsearch.api.load_study_file`); the definition a stored study was searched with is
:func:`hpsearch.study.stored.searched_definition`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, Union

from hpsearch.errors import ConfigError
from hpsearch.params import REGULARIZATION_DEFAULTS, acting
from hpsearch.study.baselines import check_baselines
from hpsearch.study.config import StudyConfig, StudyFile
from hpsearch.study.meta import StudyMeta, train_metric
from hpsearch.study.space import check_against_task
from hpsearch.tasks import Task, resolve_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyDefinition:
    """A validated study file and its resolved task, metric and direction."""

    file: StudyFile
    task: Task
    metric: str
    direction: str
    # (metric, direction) of every objective; empty means the one ``metric``/``direction``.
    objectives: tuple[tuple[str, str], ...] = ()
    # Rebuilt from a database or model file, not a study file the user handed in: a task block's
    # classes import only from the current directory (see hpsearch.lightning_task.imports).
    stored: bool = False

    @property
    def objective_pairs(self) -> tuple[tuple[str, str], ...]:
        """Every objective as ``(metric, direction)``; the first is ``metric``/``direction``."""
        return self.objectives or ((self.metric, self.direction),)

    @property
    def metrics(self) -> list[str]:
        return [m for m, _ in self.objective_pairs]

    @property
    def directions(self) -> list[str]:
        return [d for _, d in self.objective_pairs]

    @property
    def multi(self) -> bool:
        """Whether the study has several objectives (a Pareto front, no pruning)."""
        return len(self.objective_pairs) > 1

    def constraint_values(self, attrs: dict[str, Any]) -> list[float]:
        """Optuna constraint values of a trial with user attrs ``attrs`` (<= 0: satisfied);
        a number the trial did not store counts as violated."""
        out = []
        for name, bound in self.config.constraints.items():
            value = attrs.get(name)
            out.append(bound.violation(float(value)) if isinstance(value, (int, float)) else float("inf"))
        return out

    @property
    def config(self) -> StudyConfig:
        return self.file.config

    @property
    def path(self) -> str:
        return self.file.path

    @property
    def text(self) -> str:
        return self.file.text

    def acting(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The trial settings ``params`` (searched values) that act in this study, given the
        task's defaults and ``fixed`` (see :func:`hpsearch.params.acting`)."""
        return acting(params, self.settled, self.task.params)

    @property
    def settled(self) -> dict[str, Any]:
        """Every unsearched setting: the regularization defaults, the task's, then ``fixed``."""
        return {**REGULARIZATION_DEFAULTS, **self.task.defaults, **self.config.fixed}

    @property
    def meta(self) -> StudyMeta:
        return StudyMeta(self.config.study, self.metric, self.direction)


def define(study_file: Union[StudyFile, StudyDefinition], stored: bool = False) -> StudyDefinition:
    """Resolve the task and check the config against it (no database access); a definition
    is returned as it is. ``stored``: the study file comes from a database or a model file
    (a task block's classes then import only from the current directory)."""
    if isinstance(study_file, StudyDefinition):
        return study_file
    config = study_file.config
    if isinstance(config.task, str):
        try:
            task = resolve_task(config.task)
        except ConfigError as exc:
            raise ConfigError(f"{study_file.path}: {exc}") from None
    else:
        from hpsearch.lightning_task.task import lightning_task

        task = lightning_task(config, study_file.path, stored)
    check_against_task(config, task, study_file.path)
    if task.lightning is not None:
        from hpsearch.lightning_task.task import check_can_act

        check_can_act(config, task, study_file.path)
    check_baselines(config, task, study_file.path)
    if config.objectives is None:
        single = ((config.metric or task.metric, config.direction or task.direction),)
        _check_numbers(study_file.path, task, single, list(config.constraints))
        definition = StudyDefinition(study_file, task, single[0][0], single[0][1], stored=stored)
    else:
        pairs = tuple((o.metric, o.direction) for o in config.objectives)
        _check_numbers(study_file.path, task, pairs, list(config.constraints))
        definition = StudyDefinition(study_file, task, pairs[0][0], pairs[0][1], pairs if len(pairs) > 1 else (), stored)
    # One line per check: a process checks the file it was handed once (see tests/test_parse_once.py).
    log.info("study file %s checked against task %s (process %d)", study_file.path, task.name, os.getpid())
    return definition


#: Numbers every finished trial stores as user attrs (besides the task's metrics).
TRIAL_NUMBERS = ("train_val_gap", "wall_seconds", "epochs", "param_count", "final_train_loss", "optimizer_steps", "decay_shrinkage")
#: User attrs of a trial that are text, not numbers.
TRIAL_TEXTS = ("device", "worker", "baseline", "fail_reason", "pruned_reason")


def trial_numbers(task: Task, metric: str) -> list[str]:
    """The names an objective or constraint can use for a study of ``task`` optimizing ``metric``."""
    return [*task.metrics, train_metric(metric), *TRIAL_NUMBERS]


def _check_numbers(path: str, task: Task, pairs: tuple[tuple[str, str], ...], constraints: list[str]) -> None:
    """The first objective is a task metric; every objective and constraint names a number a trial stores."""
    if pairs[0][0] not in task.metrics:
        raise ConfigError(
            f"{path}: objectives.0.metric: the first objective must be a metric task {task.name} reports "
            f"({', '.join(task.metrics)}), got {pairs[0][0]!r}"
        )
    valid = trial_numbers(task, pairs[0][0])
    named = [(f"objectives.{i}.metric", m) for i, (m, _) in enumerate(pairs)] + [(f"constraints.{c}", c) for c in constraints]
    for where, name in named:
        if name in TRIAL_TEXTS:
            raise ConfigError(f"{path}: {where}: {name!r} is not a number a trial stores; valid: {', '.join(valid)}")
        if name not in valid:
            raise ConfigError(f"{path}: {where}: unknown metric {name!r}; valid: {', '.join(valid)}")
