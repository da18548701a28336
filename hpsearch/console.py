"""Text for the terminal: values, tables, per-trial progress lines, the closing summary of a
run and the summary of ``hpsearch report``. Functions return strings; the CLI prints them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    import optuna

    from hpsearch.analysis.report.data import StudyData
    from hpsearch.analysis.report.importance import Importances
    from hpsearch.run.stopper import Progress


def fmt_value(value: Any) -> str:
    """Numbers with 4 significant digits (floats), everything else as ``str``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def fmt_duration(seconds: float) -> str:
    """``H:MM:SS``."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A left-aligned text table with a header rule."""
    cells = [[str(h) for h in headers]] + [[fmt_value(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def settings_table(params: Mapping[str, Any]) -> str:
    """``name  value`` lines for a trial's settings."""
    return table(["setting", "value"], sorted(params.items()))


def ci_text(low: float | None, high: float | None) -> str:
    """``[low, high]`` of a confidence interval, ``-`` when there is none."""
    return f"[{low:.4g}, {high:.4g}]" if low is not None and high is not None else "-"


# --- optimize


def progress_line(p: "Progress", prefix: str = "") -> str:
    """One line per finished trial: state, metric, study progress, best so far, elapsed
    (``prefix`` names the worker in a local pool)."""
    from optuna.trial import TrialState

    t = p.trial
    detail = ""
    if t.state == TrialState.PRUNED:
        epochs = t.user_attrs.get("epochs")
        detail = f" after {epochs} epochs" if epochs is not None else ""
        if "non-finite" in str(t.user_attrs.get("pruned_reason", "")):
            detail += " (non-finite loss)"
    from hpsearch.study.meta import primary_value

    value = primary_value(t) if t.state == TrialState.COMPLETE else t.user_attrs.get(p.metric)
    if "baseline" in t.user_attrs:
        detail += f" (baseline {t.user_attrs['baseline']})"
    line = f"{prefix}[{p.finished}/{p.target}] trial {t.number:>4} {t.state.name:<8}{detail} {p.metric} {fmt_value(value)}"
    if t.state == TrialState.FAIL:
        line += f" · {t.user_attrs.get('fail_reason', 'failed')}"
    if p.best is not None:
        line += f" · best {fmt_value(primary_value(p.best))} (#{p.best.number})"
    return f"{line} · {fmt_duration(p.elapsed)}"


def study_result(study: "optuna.Study", target: int) -> str:
    """The closing summary of a run: counts per state and the best trial's settings."""
    from hpsearch.store.queries import study_state_counts
    from hpsearch.study.meta import StudyMeta, best_or_none, primary_value

    counts = study_state_counts(study)
    finished = counts["complete"] + counts["pruned"]
    lines = [
        f"study {study.study_name}: {finished}/{target} finished "
        f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed)"
    ]
    best = best_or_none(study)
    if best is None:
        return "\n".join([*lines, "no completed trial yet"])
    if len(study.directions) > 1:
        lines.append(pareto_table(study))
        return "\n".join(lines)
    lines.append(f"best trial #{best.number}: {StudyMeta.of(study).metric} = {fmt_value(primary_value(best))}")
    for key, value in sorted(study.user_attrs.items()):
        if key.startswith("baseline_"):  # reference numbers a task stored (see runner.open_study)
            about = study.user_attrs.get("baseline", "")
            lines.append(f"for comparison: {key} = {fmt_value(value)}" + (f" ({about})" if about else ""))
    lines.append(settings_table(best.params))
    return "\n".join(lines)


def question_cells_table(runs: list[Any], url: str) -> str:
    """One row per cell of a question: its level, cell, finished tuning trials of the budget
    (complete / pruned) and the best validation value so far."""
    from hpsearch.store.queries import load_study, study_state_counts
    from hpsearch.study.meta import best_or_none, primary_value

    rows = []
    for run in runs:
        study = load_study(run.study_name, url)
        counts = study_state_counts(study)
        best = best_or_none(study)
        rows.append([run.cell.level.name, run.cell.within_label or "-",
                     f"{counts['complete'] + counts['pruned']}/{run.definition.config.trials}",
                     counts["complete"], counts["pruned"], None if best is None else primary_value(best)])
    metric = runs[0].definition.metric if runs else "value"
    return table(["level", "cell", "finished", "complete", "pruned", f"best {metric}"], rows)


# --- report


def importance_rows(imp: "Importances") -> list[list[Any]]:
    """``[param, fANOVA, PED-ANOVA]`` rows, most important first."""
    return [[p, *(imp.values.get(e, {}).get(p) for e in ("fANOVA", "PED-ANOVA"))] for p in imp.params]


def categorical_rows(data: "StudyData") -> list[list[Any]]:
    """``[param, choice, n, mean metric, best metric]`` per categorical choice."""
    rows = []
    for p in data.params:
        if not p.categorical:
            continue
        for choice in p.choices:
            vals = [t.value for t in data.complete if t.params.get(p.name) == choice and t.value is not None]
            mean = sum(vals) / len(vals) if vals else None
            rows.append([p.name, choice, len(vals), mean, data.meta.best(vals) if vals else None])
    return rows


def verification_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """``[rank, trial, seeds, mean, std, CI]`` per verified configuration."""
    return [[r["rank"], r["source_trial"], r["n"], r["mean"], r["std"], ci_text(r["ci_low"], r["ci_high"])] for r in rows]


def report_summary(data: "StudyData", imp: "Importances", verification: list[dict[str, Any]] | None, sections: list[str]) -> str:
    """The report as text: counts, best trial, importances, categorical choices, verification."""
    c = data.counts
    lines = [
        f"study {data.name}: task {data.task or '-'}, {data.metric} ({data.direction}); "
        f"{c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed, {c['running']} running",
    ]
    if data.best is not None:
        from hpsearch.study.meta import primary_value

        lines += [f"best trial #{data.best.number}: {data.metric} = {fmt_value(primary_value(data.best))}", settings_table(data.best.params)]
    else:
        lines.append("no completed trial yet")
    if imp.values:
        lines += ["", f"parameter importances (over {imp.trials} complete trials):"]
        lines += [imp.warning] if imp.warning else []
        lines.append(table(["param", "fANOVA", "PED-ANOVA"], importance_rows(imp)))
    for name, err in imp.errors.items():
        lines.append(f"{name}: not computed ({err})")
    lines += imp.notes
    cats = categorical_rows(data)
    if cats:
        lines += ["", "categorical parameters (complete trials):", table(["param", "choice", "n", f"mean {data.metric}", "best"], cats)]
    if verification:
        rows = verification_rows(verification)
        lines += ["", "multi-seed verification (test split):", table(["rank", "trial", "seeds", "mean", "std", "95% CI"], rows)]
    lines += ["", "sections: " + ", ".join(sections)]
    return "\n".join(lines)


# --- Pareto front


def pareto_table(study: "optuna.Study") -> str:
    """The Pareto front of a multi-objective study as a table (one row per trial: objective
    values, baseline name, searched settings) with a line on how to pick one."""
    from hpsearch.study.meta import objective_names, pareto_front

    front = pareto_front(study)
    names = objective_names(study)
    arrows = ["↑" if d.name == "MAXIMIZE" else "↓" for d in study.directions]
    heads = ["trial", *(f"{n} {a}" for n, a in zip(names, arrows)), "baseline", "settings"]
    rows = [
        [t.number, *t.values, t.user_attrs.get("baseline", ""), ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(t.params.items()))]
        for t in front
    ]
    head = (
        f"Pareto front of {study.study_name}: {len(front)} feasible non-dominated trials "
        f"(pick one with `hpsearch best {study.study_name} --trial N`)"
    )
    return "\n".join([head, table(heads, rows)]) if rows else f"{head}\nno feasible complete trial yet"
