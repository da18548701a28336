"""Commands that list and export results: ``studies``, ``best``, ``trials``, and ``tasks``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hpsearch.cli.common import CliContext, pass_cli, storage_options

STUDY_COLUMNS = ["study", "direction", "complete", "pruned", "fail", "running", "waiting", "best", "question"]


@click.command()
@storage_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@pass_cli
def studies(cli: CliContext, as_json: bool) -> None:
    """List the studies in the database with trial counts per state and the best feasible value
    (a trial that breaks a constraint never counts); the question column marks the study of a
    question (`question`) and one `hpsearch answer` has answered (`answered`)."""
    from hpsearch.console import table
    from hpsearch.store.connect import connect
    from hpsearch.study.meta import study_rows

    rows = study_rows(connect(cli.url, create=False))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no studies in this database")
    else:
        click.echo(table(STUDY_COLUMNS, [[r[c] for c in STUDY_COLUMNS] for r in rows]))


@click.command()
@click.argument("study_name")
@storage_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="json: {study, metric, direction, value, params, trial}; yaml: the settings as a `fixed:` "
    "block to paste into a study file or training config.",
)
# Kept for scripts written against hpsearch 0.1: the same as --format json.
@click.option("--json", "as_json", is_flag=True, hidden=True)
@click.option("--trial", "trial", type=click.IntRange(min=0), default=None,
              help="Show this complete trial instead of the best (e.g. one picked from the Pareto front).")
@pass_cli
def best(cli: CliContext, study_name: str, fmt: str, as_json: bool, trial: int | None) -> None:
    """Show the best trial of STUDY_NAME: its metric and settings (searched and fixed).

    Trials that violate the study's constraints are never the best. A study with several
    objectives has no single best: the table format prints its Pareto front, then the
    settings of the front's trial best in the first objective (or of --trial N)."""
    from hpsearch.api import best_trial
    from hpsearch.console import fmt_value, settings_table

    fmt = "json" if as_json else fmt
    result = best_trial(study_name, cli.url, trial)
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif fmt == "yaml":
        from hpsearch.analysis.export import best_yaml

        click.echo(best_yaml(result), nl=False)
    else:
        if result.values is not None:
            from hpsearch.api import load_study
            from hpsearch.console import pareto_table

            click.echo(pareto_table(load_study(study_name, cli.url)) + "\n")
        what = "best trial" if trial is None else "trial"
        values = ", ".join(f"{k} = {fmt_value(v)}" for k, v in (result.values or {result.metric: result.value}).items())
        notes = [f"baseline {result.baseline}"] if result.baseline else []
        notes += [] if result.feasible else ["violates the constraints"]
        notes += [] if result.on_front or result.values is None else ["not on the Pareto front"]
        suffix = f" [{'; '.join(notes)}]" if notes else ""
        direction = result.direction if result.values is None else "several objectives"
        click.echo(f"study {result.study}: {what} #{result.trial}, {values} ({direction}){suffix}")
        click.echo(settings_table(result.params))


@click.command()
@click.argument("study_name")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="CSV file to write ('-' for stdout).")
@storage_options
@pass_cli
def trials(cli: CliContext, study_name: str, csv_path: str) -> None:
    """Export every trial of STUDY_NAME as CSV: number, state, value, duration, params_*,
    user_attrs_* (user_attrs_baseline names a baseline's trial). With several objectives,
    value is the first and value_<metric> columns hold each."""
    from hpsearch.analysis.export import csv_target, write_trials_csv
    from hpsearch.store.queries import load_study

    study = load_study(study_name, cli.url)
    if csv_path == "-":
        write_trials_csv(study, sys.stdout)
        return
    target = csv_target(csv_path)
    with target.open("w", newline="", encoding="utf-8") as fh:
        n = write_trials_csv(study, fh)
    click.echo(f"wrote {n} trials to {target}")


@click.command("export-model")
@click.argument("study_name")
@storage_options
@click.option("--trial", "trial", type=click.IntRange(min=0), default=None,
              help="The trial whose model to export [default: the best trial; with several objectives the front's best in the first].")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint file to write; a loading snippet is written next to it with suffix .py.")
@click.option("--model-dir", type=click.Path(file_okay=False), envvar="HPSEARCH_MODEL_DIR",
              help="Where the study keeps its models [env: HPSEARCH_MODEL_DIR; default: the directory recorded with the study].")
@click.option("--force", is_flag=True, help="Replace an existing --out file or snippet, and create a missing --out directory.")
@pass_cli
def export_model(cli: CliContext, study_name: str, trial: int | None, out: str, model_dir: str | None, force: bool) -> None:
    """Write the kept model (final weights and the settings that rebuild it) of the best trial
    of STUDY_NAME, or of --trial N, to --out, plus a short Python snippet that loads it.

    Every COMPLETE trial that was the best so far had its model kept through Optuna's artifact
    store; those a better trial superseded were removed, so only current best (or Pareto-front)
    trials can be exported. An existing file (the checkpoint or the snippet) is never replaced,
    nor a missing directory created, without --force; a kept file that holds more than tensors
    and plain data is refused."""
    from pathlib import Path

    from hpsearch.api import best_trial, load_study
    from hpsearch.run.kept_models import export_model as export

    study = load_study(study_name, cli.url)
    number = best_trial(study_name, cli.url, trial).trial
    chosen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    snippet = export(study, chosen, Path(out), model_dir, force)
    click.echo(f"wrote the model of trial #{number} to {out} and a loading snippet to {snippet}")


@click.command()
def tasks() -> None:
    """List the built-in tasks, their default metric and the parameters each understands."""
    from hpsearch.params import REGULARIZATION_DEFAULTS
    from hpsearch.tasks import builtin_task_names, resolve_task

    for name in builtin_task_names():
        task = resolve_task(name)
        click.echo(f"{name}: {task.description}; metric {task.metric} ({task.direction}); metrics {', '.join(task.metrics)}")
        defaults: dict[str, Any] = {**REGULARIZATION_DEFAULTS, **task.defaults}
        for pname, spec in sorted(task.params.items()):
            default = defaults.get(pname)
            suffix = f" [default {default}]" if default is not None else ""
            click.echo(f"  {pname:<14} {spec.describe()}{suffix}")


COMMANDS = [studies, best, trials, export_model, tasks]
