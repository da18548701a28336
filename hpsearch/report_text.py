"""Text output of the CLI: per-trial progress lines, the final summary, study listings."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import click
import optuna
from optuna.trial import TrialState

from hpsearch.formatting import fmt_duration, fmt_value, settings_table

if TYPE_CHECKING:
    from hpsearch.runner import Progress


def print_progress(p: "Progress", prefix: str = "") -> None:
    """One line per finished trial: state, metric, study progress, best so far, elapsed
    (``prefix`` names the worker in a local pool)."""
    t = p.trial
    state = t.state.name
    detail = ""
    if t.state == TrialState.PRUNED:
        epochs = t.user_attrs.get("epochs")
        detail = f" after {epochs} epochs" if epochs is not None else ""
        if "non-finite" in str(t.user_attrs.get("pruned_reason", "")):
            detail += " (non-finite loss)"
    value = t.value if t.state == TrialState.COMPLETE else t.user_attrs.get(p.metric)
    line = f"{prefix}[{p.finished}/{p.target}] trial {t.number:>4} {state:<8}{detail} {p.metric} {fmt_value(value)}"
    if t.state == TrialState.FAIL:
        line += f" · {t.user_attrs.get('fail_reason', 'failed')}"
    if p.best is not None:
        line += f" · best {fmt_value(p.best.value)} (#{p.best.number})"
    click.echo(f"{line} · {fmt_duration(p.elapsed)}")


def state_counts(study: optuna.Study) -> Counter:
    """Number of trials per state name (lower case), counted by the database
    (see :func:`hpsearch.study_stats.state_counts`)."""
    from hpsearch import study_stats

    return study_stats.state_counts(study._storage, [study._study_id])[study._study_id]


def print_study_result(study: optuna.Study, target: int) -> None:
    """The closing summary: counts per state and the best trial's settings."""
    counts = state_counts(study)
    finished = counts["complete"] + counts["pruned"]
    click.echo(
        f"study {study.study_name}: {finished}/{target} finished "
        f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed)"
    )
    try:
        best = study.best_trial
    except ValueError:
        click.echo("no completed trial yet")
        return
    metric = study.user_attrs.get("metric", "value")
    click.echo(f"best trial #{best.number}: {metric} = {fmt_value(best.value)}")
    for key, value in sorted(study.user_attrs.items()):
        if key.startswith("baseline_"):  # reference numbers a task stored (see runner.run_study)
            about = study.user_attrs.get("baseline", "")
            click.echo(f"for comparison: {key} = {fmt_value(value)}" + (f" ({about})" if about else ""))
    click.echo(settings_table(best.params))
