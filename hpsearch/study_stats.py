"""Cheap per-study statistics for listings: trial counts per state and the best value,
without loading every trial (``optuna.get_all_study_summaries`` loads them all)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState


def state_counts(storage: optuna.storages.BaseStorage, study_ids: list[int]) -> dict[int, Counter]:
    """``{study_id: Counter(state name in lower case -> trials)}``.

    On an RDB storage this is one ``GROUP BY`` over Optuna's ``trials`` table; other storages
    fall back to loading the trials.
    """
    counts: dict[int, Counter] = defaultdict(Counter)
    backend = getattr(storage, "_backend", storage)  # a study's storage is Optuna's cache wrapper
    if isinstance(backend, RDBStorage):
        from sqlalchemy import text

        with backend.engine.connect() as conn:
            rows = conn.execute(text("SELECT study_id, state, COUNT(*) FROM trials GROUP BY study_id, state"))
            for study_id, state, n in rows:
                name = state.name if isinstance(state, TrialState) else str(state).rsplit(".", 1)[-1]
                counts[study_id][name.lower()] += n
        return counts
    for study_id in study_ids:
        counts[study_id].update(t.state.name.lower() for t in storage.get_all_trials(study_id, deepcopy=False))
    return counts


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
