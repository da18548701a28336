"""A study definition: a study file checked against its task, done once per run.

:func:`define` resolves the task, checks every searched and fixed parameter against the task's
table, and settles the metric and direction; the runner, the worker pool and verification all
take the result instead of redoing the checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from hpsearch.errors import ConfigError
from hpsearch.study.config import StudyConfig, StudyFile
from hpsearch.study.meta import StudyMeta
from hpsearch.study.space import check_against_task
from hpsearch.tasks import Task, resolve_task


@dataclass(frozen=True)
class StudyDefinition:
    """A validated study file and its resolved task, metric and direction."""

    file: StudyFile
    task: Task
    metric: str
    direction: str

    @property
    def config(self) -> StudyConfig:
        return self.file.config

    @property
    def path(self) -> str:
        return self.file.path

    @property
    def text(self) -> str:
        return self.file.text

    @property
    def meta(self) -> StudyMeta:
        return StudyMeta(self.config.study, self.metric, self.direction)


def define(study_file: Union[StudyFile, StudyDefinition]) -> StudyDefinition:
    """Resolve the task and check the config against it (no database access); a definition
    is returned as it is."""
    if isinstance(study_file, StudyDefinition):
        return study_file
    config = study_file.config
    try:
        task = resolve_task(config.task)
    except ConfigError as exc:
        raise ConfigError(f"{study_file.path}: {exc}") from None
    check_against_task(config, task, study_file.path)
    return StudyDefinition(study_file, task, config.metric or task.metric, config.direction or task.direction)
