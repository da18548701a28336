"""A study definition: a study file checked against its task, done once per run.

:func:`define` resolves the task, checks every searched and fixed parameter against the task's
table, and settles the metric and direction; the runner, the worker pool and verification all
take the result instead of redoing the checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union

import optuna

from hpsearch.errors import ConfigError, StudyNotFoundError
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


def searched_definition(source: optuna.Study) -> StudyDefinition:
    """The definition the study was searched with: the stored study file with the effective
    settings of the search (``--seed``, ``--max-epochs``...), checked against its task and
    against the study's stored fingerprint; a definition that would rebuild anything else (a
    budget cap now lower than the search's epochs, a file changed by hand) is a
    :class:`ConfigError`, so verification never trains or splits differently from the search."""
    from hpsearch.study.config import BUDGET_CAPS
    from hpsearch.study.identity import FINGERPRINT_ATTR, describe_changes, fingerprint
    from hpsearch.study.meta import stored_config, stored_study_file

    where = f"{source.study_name} (stored study file)"
    config = stored_config(source, where)
    if config is None:
        raise StudyNotFoundError(f"study {source.study_name!r} has no stored study file; was it made by hpsearch optimize?")
    definition = define(StudyFile(path=where, text=stored_study_file(source) or "", config=config))
    searched = source.user_attrs.get(FINGERPRINT_ATTR)
    if searched is not None:
        changes = describe_changes(searched, fingerprint(definition))
        if changes:
            capped = [f"${env}" for env in BUDGET_CAPS.values() if os.environ.get(env, "").strip()]
            raise ConfigError(
                f"study {source.study_name!r}: cannot rebuild the configuration it was searched with "
                f"(searched -> rebuilt: {'; '.join(changes)})" + (f"; {' and '.join(capped)} is set" if capped else "")
            )
    return definition
