"""Did pruning favour weak regularization? Per searched parameter, the pruned vs completed
trials side by side, and the total decoupled decay (``decay_shrinkage``) the trials received.

Strongly regularized settings often learn more slowly, so a pruner that compares early epochs
can stop them before they catch up; when pruned trials sit at stronger regularization than
completed ones (lower keep_prob, higher weight_decay), the search's winner may owe its place to
the pruner. These tables show the evidence; they do not correct for it.
"""

from __future__ import annotations

import statistics
from typing import Any

from hpsearch.analysis.report.data import StudyData


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def pruning_bias_rows(data: StudyData) -> list[list[Any]]:
    """``[param, statistic, completed, pruned]`` rows: for a numeric parameter its median (and
    n) among completed and among pruned trials; for a categorical one, per choice, the share of
    completed and of pruned trials that had it. Empty when no trial was pruned."""
    done = [t for t in data.trials if t.state == "complete"]
    pruned = [t for t in data.trials if t.state == "pruned"]
    if not pruned:
        return []
    rows: list[list[Any]] = []
    for p in data.params:
        a = [t.params[p.name] for t in done if p.name in t.params]
        b = [t.params[p.name] for t in pruned if p.name in t.params]
        if p.categorical:
            for choice in p.choices:
                rows.append([p.name, f"share {choice}", _share(a, choice), _share(b, choice)])
        else:
            rows.append([p.name, "median (n)", _median(a), _median(b)])
    return rows


def _share(values: list[Any], choice: Any) -> str:
    return f"{sum(v == choice for v in values) / len(values):.0%} of {len(values)}" if values else "-"


def _median(values: list[Any]) -> str:
    return f"{_fmt(statistics.median(values))} ({len(values)})" if values else "-"


def pruning_bias_sentences(data: StudyData) -> list[str]:
    """One sentence per numeric parameter whose pruned median differs from the completed one
    (``"pruned trials: median keep_prob 0.82 vs 0.9 for completed ones"``), plus the pruned share."""
    done = [t for t in data.trials if t.state == "complete"]
    pruned = [t for t in data.trials if t.state == "pruned"]
    if not pruned:
        return ["no trial was pruned: no pruning bias possible"]
    out = [f"{len(pruned)} of {len(done) + len(pruned)} finished trials were pruned"]
    for p in data.params:
        if p.categorical:
            continue
        a = [t.params[p.name] for t in done if p.name in t.params]
        b = [t.params[p.name] for t in pruned if p.name in t.params]
        if a and b and statistics.median(a) != statistics.median(b):
            out.append(f"pruned trials: median {p.name} {_fmt(statistics.median(b))} vs {_fmt(statistics.median(a))} "
                       f"for completed ones")
    return out


def shrinkage_sentence(data: StudyData) -> str | None:
    """The spread of ``decay_shrinkage`` (lr·λ·optimizer steps) over completed trials and the
    best trial's, or ``None`` when no trial recorded it (no decoupled decay)."""
    values = [t.shrinkage for t in data.trials if t.state == "complete" and t.shrinkage is not None]
    if not values:
        return None
    best = data.best.user_attrs.get("decay_shrinkage") if data.best is not None else None
    text = (f"decay_shrinkage (total decoupled decay lr·λ·steps; weights shrink by about exp(-x) apart from the gradient) "
            f"over {len(values)} completed trials: min {_fmt(min(values))}, median {_fmt(statistics.median(values))}, "
            f"max {_fmt(max(values))}")
    if isinstance(best, (int, float)):
        text += f"; best trial {_fmt(float(best))}"
        if best < 0.01:
            text += " (below 0.01: its decay cannot have changed the model much)"
    return text
