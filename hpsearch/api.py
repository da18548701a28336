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

from hpsearch.config import StudyFile
from hpsearch.config import load_study_file as _load
from hpsearch.errors import StudyNotFoundError
from hpsearch.storage import resolve_url

if TYPE_CHECKING:
    import optuna

    from hpsearch.runner import Progress


def load_study_file(path: str | Path, **overrides: Any) -> StudyFile:
    """Load and validate a study file; keyword overrides replace top-level keys
    (``trials``, ``max_epochs``, ``seed``, ``study``...)."""
    from hpsearch.runner import prepare

    study_file = _load(path, overrides)
    prepare(study_file)
    return study_file


def optimize(
    study_file: StudyFile,
    storage: str | None = None,
    timeout: float | None = None,
    on_progress: "Callable[[Progress], None] | None" = None,
) -> "optuna.Study":
    """Run the study until it holds its target of finished trials; returns the Optuna study.

    On a server database (PostgreSQL...) heartbeats are on, as for ``hpsearch optimize``, so a
    trial of a process that dies is failed and re-run by another worker."""
    from hpsearch.runner import run_study
    from hpsearch.storage import Heartbeat

    url = resolve_url(storage)
    heartbeat = None if url.startswith("sqlite") else Heartbeat()
    return run_study(study_file, url, timeout=timeout, on_progress=on_progress, heartbeat=heartbeat)


@dataclass(frozen=True)
class BestResult:
    """The best trial of a study, as ``hpsearch best --json`` prints it."""

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
    import optuna

    from hpsearch.storage import open_storage

    url = resolve_url(storage)
    backend = open_storage(url, create=False)
    names = optuna.get_all_study_names(backend)  # summaries would read every trial of every study
    if study_name not in names:
        valid = ", ".join(sorted(names)) or "none"
        raise StudyNotFoundError(f"study {study_name!r} not found; studies in this database: {valid}")
    return optuna.load_study(study_name=study_name, storage=backend)


def best_trial(study_name: str, storage: str | None = None) -> BestResult:
    """The best finished trial of a study, with its settings (searched and fixed)."""
    import yaml

    study = load_study(study_name, storage)
    try:
        best = study.best_trial
    except ValueError:
        raise StudyNotFoundError(f"study {study_name!r} has no completed trial yet") from None
    fixed: dict[str, Any] = {}
    text = study.user_attrs.get("study_file")
    if text:
        fixed = dict((yaml.safe_load(text) or {}).get("fixed") or {})
    return BestResult(
        study=study_name,
        metric=str(study.user_attrs.get("metric", "value")),
        direction=study.direction.name.lower(),
        value=float(best.value),
        params={**fixed, **best.params},
        trial=best.number,
    )
