"""Commands that analyse a study: ``report``, ``verify``, ``plot-boundaries``, ``dashboard``."""

from __future__ import annotations

import json
from typing import Any

import click

from hpsearch.cli.common import CliContext, heartbeat_options, pass_cli, storage_options


@click.command("plot-boundaries")
@click.argument("study_name")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the PNG files.")
@storage_options
@pass_cli
def plot_boundaries(cli: CliContext, study_name: str, out_dir: str) -> None:
    """Draw decision boundaries of a 2-D study (task toy2d-mlp, e.g. studies/activations.yaml).

    For each dataset, one PNG with a grid of activation × width: the best trial of each cell,
    retrained from its stored parameters and seed, its boundary drawn over the training points.
    """
    from hpsearch.analysis.report.boundaries import plot_boundaries as draw

    def progress(cell: Any, retrained: float) -> None:
        click.echo(f"retrained trial #{cell.trial.number}: {cell.dataset}, {cell.activation}, width {cell.width} ({retrained:.6f})")

    for path in draw(study_name, out_dir, cli.url, on_cell=progress):
        click.echo(f"wrote {path}")


@click.command()
@click.argument("study_name")
@storage_options
@click.option("--out", "out_dir", type=click.Path(), help="Output directory [default: reports/STUDY_NAME].")
@pass_cli
def report(cli: CliContext, study_name: str, out_dir: str | None) -> None:
    """Write an HTML report (self-contained, opens offline) and PNG figures for STUDY_NAME,
    and print a text summary.

    \b
    Sections: optimization history and best so far; learning curves, pruned vs complete;
    parameter importances (fANOVA, PED-ANOVA); metric and train-validation gap per parameter;
    per-choice distributions of categorical parameters; decision boundaries (2-D tasks);
    the multi-seed verification once `hpsearch verify` has run.
    """
    from hpsearch.analysis.report import build_report

    result = build_report(study_name, cli.url, out_dir, on_step=lambda msg: click.echo(f"report: {msg}...", err=True))
    click.echo(result.text)
    click.echo(f"\nwrote {result.html} and {len(result.pngs)} PNG figures in {result.html.parent} ({result.seconds:.1f} s)")


@click.command()
@click.argument("study_name")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Number of best distinct configurations.")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Fresh seeds per configuration [default: enough for the exact tests to reach p < 0.05 over the "
                   "TOP-1 comparisons: 7 at --top 3, at least 5].")
@click.option("--population", type=click.IntRange(min=1, max=1024), default=None,
              help="Runs trained at once as one stacked model where the task allows it (a configuration's seeds "
                   "are members of one population) [default: the study file's `population` or SEEDS, the larger].")
@storage_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (progress still goes to stderr).")
@heartbeat_options("verification run")
@pass_cli
def verify(cli: CliContext, study_name: str, top: int, seeds: int | None, population: int | None, as_json: bool,
           heartbeat: int, grace: int) -> None:
    """Retrain the TOP best configurations of STUDY_NAME with SEEDS fresh seeds each (full
    max_epochs, no pruning) and score them on the held-out test split. Trials violating the
    study's constraints are skipped; with several objectives the Pareto front is printed and
    its trials come first (ranked by the first objective).

    Prints mean +- std and a 95% confidence interval (t-distribution) per configuration, and
    paired comparisons over seeds of the best with each other one: the mean difference, a
    paired t-test, an exact sign test and a permutation test, Holm-adjusted across the
    comparisons, with the interval at the level Holm tests each comparison at (so it excludes
    0 exactly when the adjusted p < 0.05). The intervals cover seed noise on the study's one
    test split. Configurations that train the same model (e.g. any l2_scope at weight_decay 0)
    count as one; zero variance gives no CI or t (undefined, not certain). Runs are stored in
    the same database as study STUDY_NAME:verify; a re-run skips (configuration, seed) pairs
    already done.
    """
    from hpsearch.analysis.compare import adjustment_text
    from hpsearch.analysis.verify import VerifyProgress, default_seeds, run_verify
    from hpsearch.console import ci_text, fmt_value, table

    def progress(p: VerifyProgress) -> None:
        outcome = f"{p.value:.4g}" if p.error is None else f"FAIL {p.error}"
        click.echo(f"[{p.done}/{p.total}] rank {p.rank} seed {p.seed}: {outcome} ({p.seconds:.1f} s)", err=True)

    from hpsearch.store.heartbeat import Heartbeat

    seeds = default_seeds(top) if seeds is None else seeds
    result = run_verify(study_name, cli.url, top, seeds, on_progress=progress, heartbeat=Heartbeat(heartbeat, grace),
                        population=population)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(
        f"verification of {study_name} on the test split ({result.metric}); ran {result.ran}, reused "
        f"{result.skipped} stored runs; stored in study {result.verify_study!r}"
    )
    from hpsearch.api import load_study

    source = load_study(study_name, cli.url)
    if len(source.directions) > 1:
        from hpsearch.console import pareto_table

        click.echo(pareto_table(source))
        click.echo("verified: the front's trials first, by the first objective")
    rows = [[c.rank, c.source_trial, c.search_value, c.n, c.mean, c.std, ci_text(c.ci_low, c.ci_high)] for c in result.configs]
    click.echo(table(["rank", "trial", "validation (search, 1 seed)", "seeds", "test mean", "std", "95% CI"], rows))
    click.echo(f"intervals cover {result.covers}")
    for c in result.comparisons:
        level = "CI undefined" if c.ci_confidence is None else f"{100 * c.ci_confidence:.4g}% CI"
        click.echo(
            f"best vs rank {c.other_rank} over {c.seeds} seeds: mean difference "
            f"{fmt_value(c.mean_difference)}, {level} {ci_text(c.ci_low, c.ci_high)} ({adjustment_text(c)}); {c.verdict}"
        )


@click.command()
@storage_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; non-loopback addresses expose the database.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@pass_cli
def dashboard(cli: CliContext, host: str, port: int) -> None:
    """Serve optuna-dashboard on the study database (Ctrl-C stops it).

    It binds 127.0.0.1 by default. optuna-dashboard has no authentication and has write
    endpoints, so binding another address prints a warning.
    """
    from hpsearch.analysis.dashboard import NO_AUTH_WARNING, is_loopback, serve
    from hpsearch.store.urls import mask_url

    if not is_loopback(host):
        click.echo(NO_AUTH_WARNING.format(host=host, port=port), err=True)
    click.echo(f"optuna-dashboard for {mask_url(cli.url)} at http://{host}:{port}/dashboard (Ctrl-C stops)", err=True)
    serve(cli.url, host, port)


COMMANDS = [plot_boundaries, report, verify, dashboard]
