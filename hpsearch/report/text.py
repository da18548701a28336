"""The plain-text summary printed by ``hpsearch report``."""

from __future__ import annotations

from typing import Any

from hpsearch.formatting import fmt_value, settings_table, table
from hpsearch.report.data import StudyData
from hpsearch.report.importance import Importances


def importance_rows(imp: Importances) -> list[list[Any]]:
    """``[param, fANOVA, PED-ANOVA]`` rows, most important first."""
    return [[p, *(imp.values.get(e, {}).get(p) for e in ("fANOVA", "PED-ANOVA"))] for p in imp.params]


def categorical_rows(data: StudyData) -> list[list[Any]]:
    """``[param, choice, n, mean metric, best metric]`` per categorical choice."""
    rows = []
    for p in data.params:
        if not p.categorical:
            continue
        for choice in p.choices:
            vals = [t.value for t in data.complete if t.params.get(p.name) == choice and t.value is not None]
            mean = sum(vals) / len(vals) if vals else None
            best = (max(vals) if data.maximize else min(vals)) if vals else None
            rows.append([p.name, choice, len(vals), mean, best])
    return rows


def verification_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """``[rank, trial, seeds, mean, std, CI]`` per verified configuration."""
    out = []
    for r in rows:
        ci = f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]" if r["ci_low"] is not None else "-"
        out.append([r["rank"], r["source_trial"], r["n"], r["mean"], r["std"], ci])
    return out


def summary(data: StudyData, imp: Importances, verification: list[dict[str, Any]] | None, sections: list[str]) -> str:
    """The report as text: counts, best trial, importances, categorical choices, verification."""
    c = data.counts
    lines = [
        f"study {data.name}: task {data.task or '-'}, {data.metric} ({data.direction}); "
        f"{c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed, {c['running']} running",
    ]
    if data.best is not None:
        lines += [f"best trial #{data.best.number}: {data.metric} = {fmt_value(data.best.value)}", settings_table(data.best.params)]
    else:
        lines.append("no completed trial yet")
    if imp.values:
        lines += ["", "parameter importances:", table(["param", "fANOVA", "PED-ANOVA"], importance_rows(imp))]
    for name, err in imp.errors.items():
        lines.append(f"{name}: not computed ({err})")
    lines += imp.notes
    cats = categorical_rows(data)
    if cats:
        lines += ["", "categorical parameters (complete trials):", table(["param", "choice", "n", f"mean {data.metric}", "best"], cats)]
    if verification:
        lines += ["", "multi-seed verification (test split):", table(["rank", "trial", "seeds", "mean", "std", "95% CI"], verification_rows(verification))]
    lines += ["", "sections: " + ", ".join(sections)]
    return "\n".join(lines)
