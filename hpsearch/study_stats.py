"""Cheap per-study statistics for listings: trial counts per state and the best value,
without loading every trial (``optuna.get_all_study_summaries`` loads them all)."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

#: The states of a trial that counts towards a study's target (and that samplers learn from).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def state_counts(storage: optuna.storages.BaseStorage, study_ids: list[int]) -> dict[int, Counter]:
    """``{study_id: Counter(state name in lower case -> trials)}``.

    On an RDB storage this is one ``GROUP BY`` over Optuna's ``trials`` table for these
    studies; other storages fall back to loading the trials.
    """
    counts: dict[int, Counter] = defaultdict(Counter)
    backend = getattr(storage, "_backend", storage)  # a study's storage is Optuna's cache wrapper
    if isinstance(backend, RDBStorage):
        if not study_ids:
            return counts
        with backend.engine.connect() as conn:
            rows = conn.execute(_count_query(), {"ids": list(study_ids)})
            for study_id, state, n in rows:
                name = state.name if isinstance(state, TrialState) else str(state).rsplit(".", 1)[-1]
                counts[study_id][name.lower()] += n
        return counts
    for study_id in study_ids:
        counts[study_id].update(t.state.name.lower() for t in storage.get_all_trials(study_id, deepcopy=False))
    return counts


@functools.lru_cache(maxsize=1)
def _count_query() -> Any:
    from sqlalchemy import bindparam, text

    return text(
        "SELECT study_id, state, COUNT(*) FROM trials WHERE study_id IN :ids GROUP BY study_id, state"
    ).bindparams(bindparam("ids", expanding=True))


def finished_trials(study: optuna.Study) -> int:
    """Complete plus pruned trials of ``study``, counted by the database (no trial loaded):
    one indexed ``COUNT`` on an RDB storage (about 1 ms at 10,000 trials on SQLite)."""
    backend = getattr(study._storage, "_backend", study._storage)
    if not isinstance(backend, RDBStorage):
        return len(study.get_trials(deepcopy=False, states=FINISHED))
    with backend.engine.connect() as conn:
        return int(conn.execute(_finished_query(), {"study_id": study._study_id}).scalar_one())


@functools.lru_cache(maxsize=1)
def _finished_query() -> Any:
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    trials = models.TrialModel.__table__
    return (
        sa.select(sa.func.count())
        .select_from(trials)
        .where(trials.c.study_id == sa.bindparam("study_id"))
        .where(trials.c.state.in_(FINISHED))
    )


def study_rows(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """One dict per study: name, direction, metric, counts per state, best value."""
    studies = storage.get_all_studies()
    counts = state_counts(storage, [s._study_id for s in studies])
    rows = []
    for s in studies:
        c = counts[s._study_id]
        best = None
        if c["complete"] and len(s.directions) == 1:
            best = storage.get_best_trial(s._study_id).value
        rows.append(
            {
                "study": s.study_name,
                "direction": s.direction.name.lower() if len(s.directions) == 1 else "multi",
                "metric": s.user_attrs.get("metric"),
                "complete": c["complete"],
                "pruned": c["pruned"],
                "fail": c["fail"],
                "running": c["running"],
                "waiting": c["waiting"],
                "best": best,
            }
        )
    return rows
