"""Static PNG figures (matplotlib, Agg backend), the same views as the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from hpsearch.analysis.report.data import ParamInfo, StudyData, best_so_far  # noqa: E402
from hpsearch.analysis.report.importance import Importances  # noqa: E402

COMPLETE, PRUNED, BEST = "#1f77b4", "#ff7f0e", "#d62728"
DPI = 100


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _strip(ax: Any, series: list[list[float]]) -> None:
    """All points over a box plot, jittered (deterministically) around each box."""
    import numpy as np

    rng = np.random.default_rng(0)
    for i, values in enumerate(series, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=6, alpha=0.4, color=COMPLETE)


def history(data: StudyData, path: Path) -> Path:
    xs, ys = data.scored()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.scatter(xs, ys, s=8, alpha=0.5, color=COMPLETE, label="complete trial")
    ax.step(xs, best_so_far(ys, data.meta), where="post", color=BEST, label="best so far")
    ax.set(xlabel="trial", ylabel=data.metric, title=f"Optimization history: {data.name}")
    _baseline_lines(ax, data)
    ax.legend(loc="best")
    return _save(fig, path)


def _baseline_lines(ax: Any, data: StudyData) -> None:
    """A dashed horizontal reference line per baseline trial, at its metric."""
    for t in data.baselines:
        ax.axhline(t.value, color="grey", linestyle="--", linewidth=0.9)
        ax.annotate(f"baseline {t.baseline}", (0.01, t.value), xycoords=("axes fraction", "data"), fontsize=8, color="dimgrey",
                    va="bottom")


def pareto(data: StudyData, path: Path) -> Path:
    """The first two objectives of every complete trial, the front as a step line."""
    (xname, xdir), (yname, ydir) = data.objectives[0], data.objectives[1]
    done = [t for t in data.complete if len(t.values) >= 2]
    front = sorted((t for t in done if t.number in set(data.front)), key=lambda t: t.values[0])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = [t for t in done if t.feasible]
    bad = [t for t in done if not t.feasible]
    ax.scatter([t.values[0] for t in ok], [t.values[1] for t in ok], s=14, alpha=0.5, color=COMPLETE, label="feasible trial")
    if bad:
        ax.scatter([t.values[0] for t in bad], [t.values[1] for t in bad], s=14, alpha=0.5, color=COMPLETE, marker="x", label="infeasible")
    ax.step([t.values[0] for t in front], [t.values[1] for t in front], where="post", color=BEST, marker="o", label="Pareto front")
    for t in done:
        if t.baseline:
            ax.scatter([t.values[0]], [t.values[1]], s=90, marker="*", color="black", zorder=3)
            ax.annotate(f"baseline {t.baseline}", (t.values[0], t.values[1]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set(xlabel=f"{xname} ({xdir})", ylabel=f"{yname} ({ydir})", title=f"Pareto front: {data.name}")
    ax.legend(loc="best")
    return _save(fig, path)


def intermediate(data: StudyData, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    for state, color in (("pruned", PRUNED), ("complete", COMPLETE)):
        segs = [list(zip(t.steps, t.intermediate)) for t in data.trials if t.state == state and t.steps]
        if segs:
            ax.add_collection(LineCollection(segs, colors=color, linewidths=0.8, alpha=0.4, label=f"{state} ({len(segs)})"))
    ax.autoscale()
    ax.set(xlabel="epoch", ylabel=data.metric, title="Intermediate values (learning curves)")
    if ax.collections:
        ax.legend(loc="best")
    return _save(fig, path)


def importances(imp: Importances, path: Path) -> Path:
    params = imp.params[::-1]
    names = list(imp.values)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.5 * len(params) + 1)))
    height = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ax.barh([j + i * height for j in range(len(params))], [imp.values[name].get(p, 0.0) for p in params], height=height, label=name)
    ax.set_yticks([j + height * (len(names) - 1) / 2 for j in range(len(params))], params)
    ax.set(xlabel="importance (sums to 1 per evaluator)", title="Parameter importances")
    ax.legend(loc="best")
    return _save(fig, path)


def numeric_param(data: StudyData, p: ParamInfo, path: Path) -> Path:
    done = [t for t in data.complete if p.name in t.params and t.value is not None]
    gaps = [t for t in done if t.gap is not None]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.scatter([t.params[p.name] for t in done], [t.value for t in done], s=8, alpha=0.5, color=COMPLETE)
    a.set(xlabel=p.name, ylabel=data.metric, title=f"{data.metric} vs {p.name}")
    _baseline_lines(a, data)
    b.scatter([t.params[p.name] for t in gaps], [t.gap for t in gaps], s=8, alpha=0.5, color=PRUNED)
    b.axhline(0.0, color="grey", linewidth=0.8)
    b.set(xlabel=p.name, ylabel="train − val (positive: overfitting)", title=f"train–val gap vs {p.name}")
    if p.log:  # an axis without points cannot be log-scaled
        for ax, points in ((a, done), (b, gaps)):
            if points:
                ax.set_xscale("log")
    if not gaps:
        b.text(0.5, 0.5, "no train_val_gap recorded", ha="center", va="center", transform=b.transAxes)
    return _save(fig, path)


def categorical_param(data: StudyData, p: ParamInfo, path: Path) -> Path:
    groups = [[t for t in data.complete if t.params.get(p.name) == c and t.value is not None] for c in p.choices]
    labels = [f"{c}\n(n={len(g)})" for c, g in zip(p.choices, groups)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    metric = [[t.value for t in g if t.value is not None] for g in groups]
    gap = [[t.gap for t in g if t.gap is not None] for g in groups]
    for ax, series in ((a, metric), (b, gap)):
        ax.boxplot(series, tick_labels=labels, showfliers=False)
        _strip(ax, series)
    a.set(ylabel=data.metric, title=f"{data.metric} by {p.name}")
    b.axhline(0.0, color="grey", linewidth=0.8)
    b.set(ylabel="train − val", title=f"train–val gap by {p.name}")
    return _save(fig, path)


def verification(rows: list[dict[str, Any]], metric: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, r in enumerate(rows):
        ax.scatter([i] * len(r["values"]), r["values"], s=12, alpha=0.6, color=COMPLETE)
        if r["ci_low"] is not None:
            ax.errorbar([i + 0.15], [r["mean"]], yerr=[[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]], fmt="D", color="black", capsize=4)
    ax.set_xticks(range(len(rows)), [f"rank {r['rank']}\n(trial {r['source_trial']})" for r in rows])
    ax.set(ylabel=metric, title="Multi-seed verification on the test split (mean, 95% CI)")
    return _save(fig, path)
