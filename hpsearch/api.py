"""The notebook API, mirroring the CLI.

>>> import hpsearch
>>> sf = hpsearch.load_study_file("studies/quickstart.yaml", trials=5)
>>> study = hpsearch.optimize(sf)                 # sqlite:///hpsearch.db unless told otherwise
>>> hpsearch.best_trial("quickstart").params
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hpsearch.errors import StudyNotFoundError
from hpsearch.store.heartbeat import heartbeat_for
from hpsearch.store.urls import resolve_url

if TYPE_CHECKING:
    import optuna

    from hpsearch.run.runner import Progress
    from hpsearch.study.definition import StudyDefinition


def load_study_file(path: str | Path, **overrides: Any) -> "StudyDefinition":
    """Load and validate a study file, checked against its task; keyword overrides replace
    top-level keys (``trials``, ``max_epochs``, ``seed``, ``study``...)."""
    from hpsearch.study.config import load_study_file as load
    from hpsearch.study.definition import define

    return define(load(path, overrides))


def optimize(
    study_file: "StudyDefinition",
    storage: str | None = None,
    timeout: float | None = None,
    on_progress: "Callable[[Progress], None] | None" = None,
    allow_changes: bool = False,
) -> "optuna.Study":
    """Run the study until it holds its target of finished trials; returns the Optuna study.

    A file that differs from the study's definition (task, metric, search space, fixed
    settings, max_epochs, seed) is refused unless ``allow_changes`` (``--allow-changes``).

    Heartbeats are decided as for ``hpsearch optimize``: on for a server database
    (PostgreSQL...), so a trial of a process that dies is failed and re-run by another worker."""
    from hpsearch.run.runner import run_study

    url = resolve_url(storage)
    return run_study(study_file, url, timeout=timeout, on_progress=on_progress, heartbeat=heartbeat_for(url),
                     allow_changes=allow_changes)


@dataclass(frozen=True)
class BestResult:
    """The best trial of a study, as ``hpsearch best --format json`` prints it."""

    study: str
    metric: str
    direction: str
    value: float
    params: dict[str, Any]
    trial: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_study(study_name: str, storage: str | None = None) -> "optuna.Study":
    """Load an existing study (never creates a database or a study)."""
    from hpsearch.store.queries import load_study as load

    return load(study_name, resolve_url(storage))


def best_trial(study_name: str, storage: str | None = None) -> BestResult:
    """The best finished trial of a study, with its settings (searched and fixed)."""
    from hpsearch.study.meta import StudyMeta, best_or_none, stored_study_file
    from hpsearch.study.yaml_load import load_yaml

    study = load_study(study_name, storage)
    best = best_or_none(study)
    if best is None:
        raise StudyNotFoundError(f"study {study_name!r} has no completed trial yet")
    fixed: dict[str, Any] = {}
    text = stored_study_file(study)
    if text:
        fixed = dict((load_yaml(text) or {}).get("fixed") or {})  # the same YAML rules as optimize
    meta = StudyMeta.of(study)
    return BestResult(
        study=study_name,
        metric=meta.metric,
        direction=meta.direction,
        value=float(best.values[0]),
        params={**fixed, **best.params},
        trial=best.number,
    )
