"""The ``hpsearch`` command line: one click group, thin commands over library code.

Heavy libraries (torch, lightning, optuna) are imported inside the commands, so ``--help``
answers instantly.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from hpsearch import __version__
from hpsearch.storage import STORAGE_ENV, STORAGE_FILE_ENV

STORAGE_HELP = (
    f"SQLAlchemy URL of the study database [default: --storage-file, else ${STORAGE_ENV}, else "
    f"sqlite:///hpsearch.db]. For URLs with a password prefer ${STORAGE_ENV} or --storage-file: "
    "argv is visible in `ps`."
)
DEFAULT_HEARTBEAT_S = 10
STORAGE_FILE_HELP = f"Read the storage URL from the first line of this file [env: ${STORAGE_FILE_ENV}]."


def storage_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--storage`` and ``--storage-file`` (resolved with :func:`hpsearch.storage.resolve_url`)."""
    func = click.option("--storage-file", type=click.Path(dir_okay=False), help=STORAGE_FILE_HELP)(func)
    return click.option("--storage", help=STORAGE_HELP)(func)


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn hpsearch errors into one line on stderr and their exit code (2 bad input, 1
    runtime failure); Ctrl-C exits 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hpsearch.errors import HPSearchError

        from hpsearch.signals import Interrupted
        from hpsearch.storage import mask_secrets

        try:
            return func(*args, **kwargs)
        except HPSearchError as exc:
            click.echo(mask_secrets(f"error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            code = exc.exit_code if isinstance(exc, Interrupted) else 130
            what = str(exc) if isinstance(exc, Interrupted) else "interrupted"
            click.echo(f"{what}: the running trial was marked FAIL; run the same command to continue", err=True)
            sys.exit(code)
        except Exception:  # an unexpected bug: show the traceback, with passwords masked
            import traceback

            click.echo(mask_secrets(traceback.format_exc()).rstrip(), err=True)
            sys.exit(1)

    return wrapper


def _setup_logging(ctx: click.Context) -> None:
    from hpsearch.logs import setup_logging

    root = ctx.find_root()
    setup_logging(root.params.get("verbose", 0), root.params.get("log_file"))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hpsearch")
@click.option("-v", "--verbose", count=True, help="Show Optuna/Lightning messages on stderr (-vv: debug).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append detailed logs to this file.")
def main(verbose: int, log_file: str | None) -> None:
    """Hyperparameter search for regularization settings.

    Optuna proposes weight decay, dropout, batchnorm placement and learning rate; Lightning
    trains each trial; results go into a plain Optuna database (SQLite by default), readable by
    the `optuna` CLI and optuna-dashboard.

    \b
    Quick start:
      hpsearch optimize studies/quickstart.yaml
      hpsearch best quickstart
    """


@main.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@storage_options
@click.option("--study-name", help="Study name in the database [default: the file's `study`].")
@click.option("--trials", type=int, help="Target of finished (complete + pruned) trials, all workers together.")
@click.option("--max-epochs", type=int, help="Training epochs of one trial (the pruning resource).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop starting new trials after S seconds.")
@click.option("--seed", type=int, help="Study seed: data split, sampler, per-trial seeds.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True,
    help="Worker processes on this node, all on the same study; torch threads per worker = cores // K, "
    "worker i uses GPU i mod G. Finished trials end between the target and target + K - 1.",
)
@click.option(
    "--worker-index", type=click.IntRange(min=0), envvar="HPSEARCH_WORKER_INDEX", default=0, show_default=True,
    help="Index of this worker among workers started together on a cluster (job array index); "
    "offsets the sampler seed so they explore different points (with --workers K the local workers "
    "get I*K ... I*K+K-1) [env: HPSEARCH_WORKER_INDEX].",
)
@click.option(
    "--heartbeat", type=click.IntRange(min=0),
    help="Seconds between heartbeats of a running trial; 0 turns heartbeats off (then a trial of a "
    "killed worker stays RUNNING and is not re-run) [default: 10 for worker runs (--workers K > 1, "
    "or a server database such as PostgreSQL); 0 for a single process on SQLite].",
)
@click.option(
    "--grace", type=click.IntRange(min=1), default=30, show_default=True,
    help="Seconds without heartbeat after which a running trial counts as dead: it is failed and "
    "re-run with the same parameters.",
)
@click.option(
    "--checkpoint-dir", type=click.Path(file_okay=False), envvar="HPSEARCH_CHECKPOINT_DIR",
    help="Save each trial after every epoch under this directory (shared storage on a cluster) so a "
    "re-run of a dead worker's trial resumes from its last epoch; removed when the trial finishes "
    "[env: HPSEARCH_CHECKPOINT_DIR; default: no checkpoints].",
)
@click.option("--pool-worker", is_flag=True, hidden=True, help="Internal: run as one worker of --workers K.")
@click.pass_context
@_handle_errors
def optimize(
    ctx: click.Context,
    study_file: str,
    storage: str | None,
    storage_file: str | None,
    study_name: str | None,
    trials: int | None,
    max_epochs: int | None,
    timeout: float | None,
    seed: int | None,
    workers: int,
    worker_index: int,
    heartbeat: int | None,
    grace: int,
    checkpoint_dir: str | None,
    pool_worker: bool,
) -> None:
    """Run the study in STUDY_FILE until it holds its target of finished trials.

    Re-running a finished study runs nothing; an interrupted one runs only the rest. Prints one
    line per trial and, at the end, the best trial's settings. Several workers (--workers K, or
    the same command on several nodes against one PostgreSQL database) share the study.
    SIGINT/SIGTERM fail the running trial and exit with 130/143.
    """
    from hpsearch.api import load_study_file
    from hpsearch.storage import Heartbeat, mask_url, resolve_url

    overrides = {"study": study_name, "trials": trials, "max_epochs": max_epochs, "seed": seed}
    loaded = load_study_file(study_file, **overrides)
    _setup_logging(ctx)
    from hpsearch import signals
    from hpsearch.report_text import print_progress, print_study_result

    url = resolve_url(storage, storage_file)
    config = loaded.config
    if heartbeat is None:  # worker runs get heartbeats; a lone process on SQLite stays lean
        heartbeat = DEFAULT_HEARTBEAT_S if workers > 1 or pool_worker or not url.startswith("sqlite") else 0
    beat = Heartbeat(heartbeat, grace) if heartbeat else None
    if workers > 1:
        from hpsearch.workers import run_local_pool

        root = ctx.find_root().params
        root_options = ["-v"] * int(root.get("verbose") or 0) + (["--log-file", root["log_file"]] if root.get("log_file") else [])
        forwarded = {
            "--study-name": study_name, "--trials": trials, "--max-epochs": max_epochs, "--timeout": timeout,
            "--seed": seed, "--heartbeat": heartbeat, "--grace": grace, "--checkpoint-dir": checkpoint_dir,
        }
        sys.exit(run_local_pool(loaded, url, workers, forwarded, root_options, first_index=worker_index * workers))

    from hpsearch.runner import run_study

    def banner(study: Any, finished: int) -> None:
        if not pool_worker:
            click.echo(
                f"study {config.study!r} on {mask_url(url)}: {finished}/{config.trials} finished trials, "
                f"{config.max_epochs} epochs each, task {config.task}"
            )

    prefix = f"[w{worker_index}] " if pool_worker else ""
    signals.install()
    study = run_study(
        loaded, url, timeout=timeout, on_progress=lambda p: print_progress(p, prefix), on_start=banner,
        heartbeat=beat, checkpoint_dir=checkpoint_dir, worker_index=worker_index,
    )
    if not pool_worker:
        print_study_result(study, config.trials)


@main.command()
@storage_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.pass_context
@_handle_errors
def studies(ctx: click.Context, storage: str | None, storage_file: str | None, as_json: bool) -> None:
    """List the studies in the database with trial counts per state and the best value."""
    _setup_logging(ctx)
    from hpsearch.formatting import table
    from hpsearch.storage import open_storage, resolve_url
    from hpsearch.study_stats import study_rows

    rows = study_rows(open_storage(resolve_url(storage, storage_file), create=False))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no studies in this database")
        return
    headers = ["study", "direction", "complete", "pruned", "fail", "running", "best"]
    click.echo(table(headers, [[r["study"], r["direction"], r["complete"], r["pruned"], r["fail"], r["running"], r["best"]] for r in rows]))


@main.command()
@click.argument("study_name")
@storage_options
@click.option("--json", "as_json", is_flag=True, help="Print {study, metric, direction, value, params, trial} as JSON.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="yaml: the settings as a `fixed:` block to paste into a study file or training config.",
)
@click.pass_context
@_handle_errors
def best(
    ctx: click.Context, study_name: str, storage: str | None, storage_file: str | None, as_json: bool, fmt: str
) -> None:
    """Show the best trial of STUDY_NAME: its metric and settings (searched and fixed)."""
    _setup_logging(ctx)
    from hpsearch.api import best_trial
    from hpsearch.formatting import fmt_value, settings_table
    from hpsearch.storage import resolve_url

    result = best_trial(study_name, resolve_url(storage, storage_file))
    if as_json or fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    if fmt == "yaml":
        from hpsearch.export import best_yaml

        click.echo(best_yaml(result), nl=False)
        return
    click.echo(f"study {result.study}: best trial #{result.trial}, {result.metric} = {fmt_value(result.value)} ({result.direction})")
    click.echo(settings_table(result.params))


@main.command()
@_handle_errors
def tasks() -> None:
    """List the built-in tasks, their default metric and the parameters each understands."""
    from hpsearch.params import REGULARIZATION_DEFAULTS
    from hpsearch.tasks import builtin_task_names, resolve_task

    for name in builtin_task_names():
        task = resolve_task(name)
        click.echo(f"{name}: {task.description}; metric {task.metric} ({task.direction}); metrics {', '.join(task.metrics)}")
        defaults = {**REGULARIZATION_DEFAULTS, **task.defaults}
        for pname, spec in sorted(task.params.items()):
            default = defaults.get(pname)
            suffix = f" [default {default}]" if default is not None else ""
            click.echo(f"  {pname:<14} {spec.describe()}{suffix}")


@main.command("plot-boundaries")
@click.argument("study_name")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the PNG files.")
@storage_options
@click.pass_context
@_handle_errors
def plot_boundaries(ctx: click.Context, study_name: str, out_dir: str, storage: str | None, storage_file: str | None) -> None:
    """Draw decision boundaries of a 2-D study (task toy2d-mlp, e.g. studies/activations.yaml).

    For each dataset, one PNG with a grid of activation × width: the best trial of each cell,
    retrained from its stored parameters and seed, its boundary drawn over the training points.
    """
    _setup_logging(ctx)
    from hpsearch.plots.boundaries import plot_boundaries as draw

    def progress(cell: Any, retrained: float) -> None:
        click.echo(f"retrained trial #{cell.trial.number}: {cell.dataset}, {cell.activation}, width {cell.width} ({retrained:.6f})")

    from hpsearch.storage import resolve_url

    for path in draw(study_name, out_dir, resolve_url(storage, storage_file), on_cell=progress):
        click.echo(f"wrote {path}")


@main.command()
@click.argument("study_name")
@storage_options
@click.option("--out", "out_dir", type=click.Path(), help="Output directory [default: reports/STUDY_NAME].")
@click.pass_context
@_handle_errors
def report(ctx: click.Context, study_name: str, storage: str | None, storage_file: str | None, out_dir: str | None) -> None:
    """Write an HTML report (self-contained, opens offline) and PNG figures for STUDY_NAME,
    and print a text summary.

    \b
    Sections: optimization history and best so far; learning curves, pruned vs complete;
    parameter importances (fANOVA, PED-ANOVA); metric and train-validation gap per parameter;
    per-choice distributions of categorical parameters; decision boundaries (2-D tasks);
    the multi-seed verification once `hpsearch verify` has run.
    """
    _setup_logging(ctx)
    from hpsearch.report import build_report

    from hpsearch.storage import resolve_url

    result = build_report(study_name, resolve_url(storage, storage_file), out_dir, on_step=lambda msg: click.echo(f"report: {msg}...", err=True))
    click.echo(result.text)
    click.echo(f"\nwrote {result.html} and {len(result.pngs)} PNG figures in {result.html.parent} ({result.seconds:.1f} s)")


@main.command()
@click.argument("study_name")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Number of best distinct configurations.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="Fresh seeds per configuration.")
@storage_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (progress still goes to stderr).")
@click.pass_context
@_handle_errors
def verify(
    ctx: click.Context, study_name: str, top: int, seeds: int, storage: str | None, storage_file: str | None, as_json: bool
) -> None:
    """Retrain the TOP best configurations of STUDY_NAME with SEEDS fresh seeds each (full
    max_epochs, no pruning) and score them on the held-out test split.

    Prints mean +- std and a 95% confidence interval (t-distribution) per configuration, and a
    paired t-test over seeds of the best vs the runner-up. Runs are stored in the same database
    as study STUDY_NAME:verify; a re-run skips (configuration, seed) pairs already done.
    """
    _setup_logging(ctx)
    from hpsearch.storage import resolve_url
    from hpsearch.verify import run_verify

    def progress(p) -> None:  # noqa: ANN001
        outcome = f"{p.value:.4g}" if p.error is None else f"FAIL {p.error}"
        click.echo(f"[{p.done}/{p.total}] rank {p.rank} seed {p.seed}: {outcome} ({p.seconds:.1f} s)", err=True)

    result = run_verify(study_name, resolve_url(storage, storage_file), top, seeds, on_progress=progress)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    from hpsearch.formatting import fmt_value, table

    click.echo(f"verification of {study_name} on the test split ({result.metric}); ran {result.ran}, reused {result.skipped} stored runs; stored in study {result.verify_study!r}")
    rows = []
    for c in result.configs:
        ci = f"[{c.ci_low:.4g}, {c.ci_high:.4g}]" if c.ci_low is not None else "-"
        rows.append([c.rank, c.source_trial, c.search_value, c.n, c.mean, c.std, ci])
    click.echo(table(["rank", "trial", "search value", "seeds", "test mean", "std", "95% CI"], rows))
    if result.paired is not None:
        click.echo(f"best vs runner-up over {result.paired.seeds} seeds: mean difference {fmt_value(result.paired.mean_difference)}; {result.paired.verdict}")


@main.command()
@click.argument("study_name")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="CSV file to write ('-' for stdout).")
@storage_options
@click.pass_context
@_handle_errors
def trials(ctx: click.Context, study_name: str, csv_path: str, storage: str | None, storage_file: str | None) -> None:
    """Export every trial of STUDY_NAME as CSV: number, state, value, duration, params_*,
    user_attrs_*."""
    _setup_logging(ctx)
    from hpsearch.api import load_study
    from hpsearch.export import csv_target, write_trials_csv

    from hpsearch.storage import resolve_url

    study = load_study(study_name, resolve_url(storage, storage_file))
    if csv_path == "-":
        write_trials_csv(study, sys.stdout)
        return
    target = csv_target(csv_path)
    with target.open("w", newline="", encoding="utf-8") as fh:
        n = write_trials_csv(study, fh)
    click.echo(f"wrote {n} trials to {target}")


@main.command()
@storage_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; non-loopback addresses expose the database.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.pass_context
@_handle_errors
def dashboard(ctx: click.Context, storage: str | None, storage_file: str | None, host: str, port: int) -> None:
    """Serve optuna-dashboard on the study database (Ctrl-C stops it).

    It binds 127.0.0.1 by default. optuna-dashboard has no authentication and has write
    endpoints, so binding another address prints a warning.
    """
    _setup_logging(ctx)
    from hpsearch.dashboard import NO_AUTH_WARNING, is_loopback, serve
    from hpsearch.storage import mask_url, resolve_url

    url = resolve_url(storage, storage_file)
    if not is_loopback(host):
        click.echo(NO_AUTH_WARNING.format(host=host, port=port), err=True)
    click.echo(f"optuna-dashboard for {mask_url(url)} at http://{host}:{port}/dashboard (Ctrl-C stops)", err=True)
    serve(url, host, port)


if __name__ == "__main__":  # pragma: no cover
    main()
