"""The notebook API, mirroring the CLI.

>>> import hpsearch
>>> sf = hpsearch.load_study_file("studies/quickstart.yaml", trials=5)
>>> study = hpsearch.optimize(sf)                 # sqlite:///hpsearch.db unless told otherwise
>>> hpsearch.best_trial("quickstart").params
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hpsearch.errors import StudyNotFoundError
from hpsearch.store.heartbeat import heartbeat_for
from hpsearch.store.urls import resolve_url
from hpsearch.study.meta import BestResult as BestResult  # the notebook API's result (hpsearch.BestResult)

if TYPE_CHECKING:
    import optuna

    from hpsearch.run.stopper import Progress
    from hpsearch.study.definition import StudyDefinition


def load_study_file(path: str | Path, **overrides: Any) -> "StudyDefinition":
    """Load and validate a study file, checked against its task (and a ``question:`` block's
    design against both), once: everything below takes the returned definition. Keyword
    overrides replace top-level keys (``trials``, ``max_epochs``, ``seed``, ``study``...)."""
    from hpsearch.question.cells import check_question
    from hpsearch.study.config import load_study_file as load
    from hpsearch.study.definition import define

    definition = define(load(path, overrides))
    if definition.config.question is not None:
        check_question(definition)
    return definition


def optimize(
    study_file: "StudyDefinition",
    storage: str | None = None,
    timeout: float | None = None,
    on_progress: "Callable[[Progress], None] | None" = None,
    allow_changes: bool = False,
) -> "optuna.Study":
    """Run the study until it holds its target of finished trials; returns the Optuna study.
    A study file with a ``question:`` block tunes every level in its own linked study (as
    ``hpsearch optimize`` does) and returns the question's study.

    A file that differs from the study's definition (task, metric, search space, fixed
    settings, max_epochs, seed) is refused unless ``allow_changes`` (``--allow-changes``).

    Heartbeats are decided as for ``hpsearch optimize``: on for a server database
    (PostgreSQL...), so a trial of a process that dies is failed and re-run by another worker."""
    from hpsearch.population.run import optimize_population
    from hpsearch.run.runner import run_study

    url = resolve_url(storage)
    definition = study_file
    if definition.config.question is not None:  # each level in its own study; returns the question's study
        from hpsearch.question.optimize import run_question
        from hpsearch.store.queries import load_study

        run_question(definition, url, lambda run, total: run_study(
            run.definition, url, timeout=timeout, on_progress=on_progress, heartbeat=heartbeat_for(url),
            allow_changes=allow_changes, round_runner=optimize_population), allow_changes=allow_changes)
        return load_study(definition.config.study, url)
    return run_study(definition, url, timeout=timeout, on_progress=on_progress, heartbeat=heartbeat_for(url),
                     allow_changes=allow_changes, round_runner=optimize_population)


def load_study(study_name: str, storage: str | None = None) -> "optuna.Study":
    """Load an existing study (never creates a database or a study)."""
    from hpsearch.store.queries import load_study as load

    return load(study_name, resolve_url(storage))


def best_trial(study_name: str, storage: str | None = None, trial: int | None = None) -> BestResult:
    """The best feasible finished trial of a study (with several objectives: the trial of the
    Pareto front best in the first objective), or trial number ``trial``, with its settings
    (searched and fixed)."""
    from optuna.trial import TrialState

    from hpsearch.store.queries import is_feasible
    from hpsearch.study.meta import StudyMeta, best_or_none, pareto_front, stored_study_file
    from hpsearch.study.yaml_load import load_yaml

    study = load_study(study_name, storage)
    if trial is None:
        best = best_or_none(study)
        if best is None:
            raise StudyNotFoundError(f"study {study_name!r} has no completed feasible trial yet")
    else:
        found = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number == trial]
        if not found:
            raise StudyNotFoundError(f"study {study_name!r} has no complete trial #{trial}")
        best = found[0]
    fixed: dict[str, Any] = {}
    text = stored_study_file(study)
    if text:
        fixed = dict((load_yaml(text) or {}).get("fixed") or {})  # the same YAML rules as optimize
    meta = StudyMeta.of(study)
    multi = len(study.directions) > 1
    names = list(study.metric_names or []) if multi else []
    return BestResult(
        study=study_name,
        metric=meta.metric,
        direction=meta.direction,
        value=float(best.values[0]),
        params={**fixed, **best.params},
        trial=best.number,
        values=dict(zip(names, map(float, best.values))) if multi and len(names) == len(best.values) else None,
        baseline=best.user_attrs.get("baseline"),
        feasible=is_feasible(best),
        on_front=best.number in {t.number for t in pareto_front(study)},
    )
