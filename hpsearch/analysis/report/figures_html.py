"""Interactive plotly figures for the HTML report (one function per figure)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpsearch.analysis.report.data import ParamInfo, StudyData, best_so_far
from hpsearch.analysis.report.importance import Importances

COMPLETE, PRUNED, BEST = "#1f77b4", "#ff7f0e", "#d62728"


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=title, height=height, template="plotly_white", margin=dict(l=60, r=20, t=50, b=50))
    return fig


def history(data: StudyData) -> go.Figure:
    """Metric per complete trial and the best-so-far line."""
    xs, ys = data.scored()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="complete trial", marker=dict(color=COMPLETE, size=5, opacity=0.6)))
    fig.add_trace(go.Scatter(x=xs, y=best_so_far(ys, data.meta), mode="lines", name="best so far", line=dict(color=BEST, shape="hv")))
    fig.update_xaxes(title="trial")
    fig.update_yaxes(title=data.metric)
    _baseline_lines(fig, data)
    return _layout(fig, "Optimization history")


def _baseline_lines(fig: go.Figure, data: StudyData, **where: Any) -> None:
    """A dashed horizontal reference line per baseline trial, at its metric."""
    for t in data.baselines:
        fig.add_hline(y=t.value, line=dict(color="grey", dash="dash", width=1), annotation_text=f"baseline {t.baseline}", **where)


def pareto(data: StudyData) -> go.Figure:
    """The first two objectives of every complete trial; the Pareto front joined by a line,
    infeasible trials crossed, baselines labelled."""
    (xname, xdir), (yname, ydir) = data.objectives[0], data.objectives[1]
    done = [t for t in data.complete if len(t.values) >= 2]
    front = sorted((t for t in done if t.number in set(data.front)), key=lambda t: t.values[0])
    fig = go.Figure()
    for label, group, symbol in (("feasible", [t for t in done if t.feasible], "circle"), ("infeasible", [t for t in done if not t.feasible], "x")):
        fig.add_trace(go.Scatter(x=[t.values[0] for t in group], y=[t.values[1] for t in group], mode="markers", name=label,
                                 text=[f"#{t.number}" for t in group], marker=dict(color=COMPLETE, symbol=symbol, size=6, opacity=0.6)))
    fig.add_trace(go.Scatter(x=[t.values[0] for t in front], y=[t.values[1] for t in front], mode="lines+markers", name="Pareto front",
                             text=[f"#{t.number}" for t in front], line=dict(color=BEST, shape="hv"), marker=dict(color=BEST, size=8)))
    base = [t for t in done if t.baseline]
    fig.add_trace(go.Scatter(x=[t.values[0] for t in base], y=[t.values[1] for t in base], mode="markers+text", name="baseline",
                             text=[str(t.baseline) for t in base], textposition="top center",
                             marker=dict(color="black", symbol="star", size=11)))
    fig.update_xaxes(title=f"{xname} ({xdir})")
    fig.update_yaxes(title=f"{yname} ({ydir})")
    return _layout(fig, "Pareto front", height=460)


def intermediate(data: StudyData) -> go.Figure:
    """Per-epoch metric curves, pruned vs complete (one trace per state, gaps between trials)."""
    fig = go.Figure()
    for state, color in (("pruned", PRUNED), ("complete", COMPLETE)):
        xs: list[Any] = []
        ys: list[Any] = []
        n = 0
        for t in data.trials:
            if t.state == state and t.steps:
                xs.extend([*t.steps, None])
                ys.extend([*t.intermediate, None])
                n += 1
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{state} ({n})", line=dict(color=color, width=1), opacity=0.5))
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title=data.metric)
    return _layout(fig, "Intermediate values (learning curves)")


def importances(imp: Importances) -> go.Figure:
    """Horizontal bars: importance per parameter, one bar per evaluator."""
    params = imp.params[::-1]
    fig = go.Figure()
    for name, values in imp.values.items():
        fig.add_trace(go.Bar(y=params, x=[values.get(p, 0.0) for p in params], name=name, orientation="h"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="importance (sums to 1 per evaluator)")
    return _layout(fig, "Parameter importances", height=max(300, 60 + 45 * len(params)))


def numeric_param(data: StudyData, p: ParamInfo) -> go.Figure:
    """Metric vs value and train–validation gap vs value for one numeric parameter."""
    done = [t for t in data.complete if p.name in t.params and t.value is not None]
    gaps = [t for t in done if t.gap is not None]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{data.metric} vs {p.name}", f"train–val gap vs {p.name}"))
    fig.add_trace(go.Scatter(x=[t.params[p.name] for t in done], y=[t.value for t in done], mode="markers", name=data.metric,
                             marker=dict(color=COMPLETE, size=5, opacity=0.6)), row=1, col=1)
    fig.add_trace(go.Scatter(x=[t.params[p.name] for t in gaps], y=[t.gap for t in gaps], mode="markers", name="train_val_gap",
                             marker=dict(color=PRUNED, size=5, opacity=0.6)), row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title=p.name, type="log" if p.log else "linear", row=1, col=col)
    fig.update_yaxes(title=data.metric, row=1, col=1)
    fig.update_yaxes(title="train − val (positive: overfitting)", row=1, col=2)
    _baseline_lines(fig, data, row=1, col=1)
    fig.update_layout(showlegend=False)
    return _layout(fig, f"{p.name}")


def categorical_param(data: StudyData, p: ParamInfo) -> go.Figure:
    """Per-choice box plots (all points shown) of the metric and the gap, with counts."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{data.metric} by {p.name}", f"train–val gap by {p.name}"))
    for choice in p.choices:
        rows = [t for t in data.complete if t.params.get(p.name) == choice and t.value is not None]
        label = f"{choice} (n={len(rows)})"
        fig.add_trace(go.Box(y=[t.value for t in rows], name=label, boxpoints="all", jitter=0.4, pointpos=0, marker=dict(size=3),
                             showlegend=False), row=1, col=1)
        g = [t.gap for t in rows if t.gap is not None]
        fig.add_trace(go.Box(y=g, name=label, boxpoints="all", jitter=0.4, pointpos=0, marker=dict(size=3), showlegend=False), row=1, col=2)
    fig.update_yaxes(title=data.metric, row=1, col=1)
    fig.update_yaxes(title="train − val", row=1, col=2)
    return _layout(fig, f"{p.name}")


def verification(rows: list[dict[str, Any]], metric: str) -> go.Figure:
    """Per-seed test results of each verified configuration, mean and confidence interval."""
    fig = go.Figure()
    for r in rows:
        label = f"rank {r['rank']} (trial {r['source_trial']})"
        fig.add_trace(go.Box(y=r["values"], name=label, boxpoints="all", pointpos=0, jitter=0.3, showlegend=False))
        if r["ci_low"] is not None:
            fig.add_trace(go.Scatter(x=[label], y=[r["mean"]], mode="markers", marker=dict(color="black", symbol="diamond", size=9),
                                     error_y=dict(type="data", symmetric=False, array=[r["ci_high"] - r["mean"]],
                                                  arrayminus=[r["mean"] - r["ci_low"]]), showlegend=False))
    fig.update_yaxes(title=metric)
    return _layout(fig, f"Multi-seed verification on the test split ({metric}, mean and 95% CI)")
