"""The definition a stored study was searched with, rebuilt from the study file stored in the
database and checked against the study's fingerprint (for ``verify``, ``answer``, the report)."""

from __future__ import annotations

import os

import optuna

from hpsearch.errors import ConfigError, StudyNotFoundError
from hpsearch.study.config import BUDGET_CAPS, StudyFile
from hpsearch.study.definition import StudyDefinition, define
from hpsearch.study.identity import FINGERPRINT_ATTR, definition_changes
from hpsearch.study.meta import stored_config, stored_study_file


def searched_definition(source: optuna.Study) -> StudyDefinition:
    """The definition the study was searched with: the stored study file with the effective
    settings of the search (``--seed``, ``--max-epochs``...), checked against its task and
    against the study's stored fingerprint; a definition that would rebuild anything else (a
    budget cap now lower than the search's epochs, a file changed by hand) is a
    :class:`ConfigError`, so verification never trains or splits differently from the search."""
    where = f"{source.study_name} (stored study file)"
    config = stored_config(source, where)
    if config is None:
        raise StudyNotFoundError(f"study {source.study_name!r} has no stored study file; was it made by hpsearch optimize?")
    definition = define(StudyFile(path=where, text=stored_study_file(source) or "", config=config), stored=True)
    searched = source.user_attrs.get(FINGERPRINT_ATTR)
    if searched is not None:
        changes = definition_changes(searched, definition)
        if changes:
            capped = [f"${env}" for env in BUDGET_CAPS.values() if os.environ.get(env, "").strip()]
            raise ConfigError(
                f"study {source.study_name!r}: cannot rebuild the configuration it was searched with "
                f"(searched -> rebuilt: {'; '.join(changes)})" + (f"; {' and '.join(capped)} is set" if capped else "")
            )
    return definition
