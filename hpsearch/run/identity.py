"""Checking a study file against the study it runs in, before anything is written.

A study created by hpsearch stores its fingerprint (:mod:`hpsearch.study.identity`) and a
random uid. A later run whose file differs in any fingerprint key is refused with one line per
changed key, unless ``allow_changes`` (``--allow-changes``) is given; then the run goes on,
the new fingerprint is stored and the change is appended to the study user attr
``hpsearch_definition_changes``. The metric and direction never change.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Mapping

import optuna

from hpsearch.errors import ConfigError
from hpsearch.store.urls import mask_url
from hpsearch.study.definition import StudyDefinition
from hpsearch.study.identity import (
    CHANGES_ATTR,
    FINGERPRINT_ATTR,
    UID_ATTR,
    UNCHANGEABLE,
    changed_keys,
    definition_changes,
    fingerprint,
    fingerprint_hash,
)

ALLOW_FLAG = "--allow-changes"


def check_identity(study: optuna.Study, definition: StudyDefinition, url: str, allow_changes: bool = False) -> None:
    """Refuse (:class:`ConfigError`, nothing written) a definition that differs from the one
    the study was created with, unless ``allow_changes``; record the fingerprint and uid of a
    new study (or of one made before hpsearch stored them)."""
    attrs = study.user_attrs
    new = fingerprint(definition)
    old = attrs.get(FINGERPRINT_ATTR)
    lines = definition_changes(old, definition) if old is not None else []
    if old is not None and lines:
        _refuse_or_record(study, definition, url, allow_changes, old, new, lines)
    if UID_ATTR not in attrs:
        study.set_user_attr(UID_ATTR, uuid.uuid4().hex)
    if old is None:
        study.set_user_attr(FINGERPRINT_ATTR, new)


def _refuse_or_record(study: optuna.Study, definition: StudyDefinition, url: str, allow_changes: bool,
                      old: Mapping[str, Any], new: Mapping[str, Any], lines: list[str]) -> None:
    """A changed definition: :class:`ConfigError` listing ``lines``, or (allowed) the change
    appended to the study's change log and the new fingerprint stored."""
    fixed = [k for k in changed_keys(old, new) if k in UNCHANGEABLE]
    if fixed or not allow_changes:
        head = f"{definition.path}: study {definition.config.study!r} in {mask_url(url)} was created with another definition:"
        if fixed:
            hint = f"the {' and '.join(fixed)} of a study cannot change; run the file under a new name with --study-name NAME"
        else:
            hint = (f"run it under a new name with --study-name NAME, or add these trials to this study anyway with "
                    f"{ALLOW_FLAG} (the change is recorded in the study)")
        raise ConfigError("\n".join([head, *(f"  {line}" for line in lines), hint]))
    record = {
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "file": definition.path,
        "changes": lines,
        "trials_before": len(study.get_trials(deepcopy=False)),
    }
    study.set_user_attr(CHANGES_ATTR, [*study.user_attrs.get(CHANGES_ATTR, []), record])
    study.set_user_attr(FINGERPRINT_ATTR, new)


def checkpoint_key(study: optuna.Study) -> str:
    """``<uid>-<fingerprint hash>``: checkpoints under it belong to this study as created (a
    study deleted and made again has another uid) with this definition."""
    attrs = study.user_attrs
    return f"{str(attrs.get(UID_ATTR, 'nouid'))[:12]}-{fingerprint_hash(attrs.get(FINGERPRINT_ATTR, {}))}"
