"""``hpsearch optimize``: run a study file, alone or as a local pool of workers."""

from __future__ import annotations

import sys
from typing import Any, Mapping

import click

from hpsearch.cli.common import CliContext, pass_cli, storage_options


@click.command()
@click.argument("study_file")  # a path or a built-in name, checked by the loader: one line, exit 2
@storage_options
@click.option("--study-name", help="Study name in the database [default: the file's `study`].")
@click.option("--trials", type=int, help="Target of finished (complete + pruned) trials, all workers together.")
@click.option("--max-epochs", type=int, help="Training epochs of one trial (the pruning resource).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop starting new trials after S seconds.")
@click.option("--seed", type=int, help="Study seed: data split, sampler, per-trial seeds.")
@click.option(
    "--workers", type=int, default=1, show_default=True,
    help="Worker processes on this node (1 to 64), all on the same study; torch threads per worker = cores // K, "
    "worker i uses GPU i mod G. Finished trials end between the target and target + K - 1.",
)
@click.option(
    "--population", type=int,
    help="Trials each worker trains at once as one vectorized model (stacked weights, one optimizer step "
    "for all) [default: the file's `population`, else 1]. Every member is still its own trial with its own "
    "seed, pruning and results; it pays off for small models (the MLP tasks), most on a GPU. Tasks whose "
    "models cannot be stacked, and studies with several objectives, constraints or baselines, train one trial at a time. Combine with --workers: "
    "each of the K workers trains its own population.",
)
@click.option(
    "--allow-changes", is_flag=True,
    help="Run even though the file's task, metric, search space, fixed settings, max_epochs or seed differ "
    "from the study's (the change is recorded in the study user attr hpsearch_definition_changes); "
    "without it such a run is refused with the changed keys.",
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
@click.option(
    "--model-dir", type=click.Path(file_okay=False),
    help="Keep the best models under this directory (shared storage on a cluster) [default: "
    "$HPSEARCH_MODEL_DIR, else the file's `model_dir`, else <database>-models/ next to a SQLite file]. "
    "Checked before anything is written; pool workers inherit it.",
)
@click.option(
    "--quiet", "-q", is_flag=True,
    help="Print only the closing summary (best trial and its settings); errors still go to stderr.",
)
@click.option("--pool-worker", is_flag=True, hidden=True, help="Internal: run as one worker of --workers K.")
@pass_cli
def optimize(
    cli: CliContext,
    study_file: str,
    study_name: str | None,
    trials: int | None,
    max_epochs: int | None,
    timeout: float | None,
    seed: int | None,
    workers: int,
    population: int | None,
    allow_changes: bool,
    worker_index: int,
    heartbeat: int | None,
    grace: int,
    checkpoint_dir: str | None,
    model_dir: str | None,
    quiet: bool,
    pool_worker: bool,
) -> None:
    """Run the study in STUDY_FILE until it holds its target of finished trials.

    STUDY_FILE is a path, or the name of a built-in study (`hpsearch examples`) when no such
    file exists.

    With a `question:` block, every level (x `within` cell) is tuned in its own linked study
    NAME:LEVEL[@CELL] to the question's `budget` of finished trials (pruning compares a trial
    only with its own level); then `hpsearch answer NAME` gives the verdict.

    Re-running a finished study runs nothing; an interrupted one runs only the rest. Prints one
    live display on a terminal (one line per trial otherwise) and, at the end, the best trial's
    settings. Several workers (--workers K, or
    the same command on several nodes against one PostgreSQL database) share the study.
    SIGINT/SIGTERM fail the running trial and exit with 130/143.
    """
    from hpsearch.api import load_study_file
    from hpsearch.run.workers import check_workers
    from hpsearch.store.heartbeat import heartbeat_for

    check_workers(workers)
    from hpsearch.errors import ConfigError

    if model_dir is not None:
        use_model_dir(model_dir)

    definition = load_study_file(study_file, study=study_name, trials=trials, max_epochs=max_epochs, seed=seed,
                                population=population)
    if definition.config.question is not None and trials is not None:
        raise ConfigError("--trials: a question tunes every level to its question.budget; change the budget instead")
    beat = heartbeat_for(cli.url, heartbeat, grace, shared=workers > 1 or pool_worker)
    if workers > 1:
        forwarded = {
            "--study-name": study_name, "--trials": trials, "--max-epochs": max_epochs, "--timeout": timeout,
            "--seed": seed, "--population": population, "--heartbeat": beat.interval if beat else 0, "--grace": grace,
            "--checkpoint-dir": checkpoint_dir, "--quiet": quiet or None,
        }
        sys.exit(_run_pool(cli, definition, workers, forwarded, worker_index * workers, quiet, allow_changes))
    _run_alone(cli, definition, timeout, beat, checkpoint_dir, worker_index, pool_worker, quiet, allow_changes)


def use_model_dir(chosen: str) -> None:
    """``--model-dir``: checked like ``model_dir`` (one line, exit 2, before anything is
    written), then set as ``$HPSEARCH_MODEL_DIR`` for this process and the workers it starts,
    where it wins over the file's ``model_dir``."""
    import os

    from hpsearch.run.kept_models import MODEL_DIR_ENV, check_model_dir

    os.environ[MODEL_DIR_ENV] = str(check_model_dir(chosen, "--model-dir"))


def _run_alone(cli: CliContext, definition: Any, timeout: float | None, beat: Any, checkpoint_dir: str | None,
               worker_index: int, pool_worker: bool, quiet: bool, allow_changes: bool) -> None:
    """One process: a banner, the live display or one line per trial, the closing summary (a
    pool worker prints only its prefixed trial lines; --quiet only the summary)."""
    from hpsearch.run.collector import import_training_stack

    import_training_stack()
    if definition.config.question is not None:
        _run_question(cli, definition, timeout, beat, checkpoint_dir, worker_index, pool_worker, quiet, allow_changes)
        return
    from hpsearch.cli.live import reporter_for
    from hpsearch.console import study_result
    from hpsearch.population.run import optimize_population
    from hpsearch.run import signals
    from hpsearch.run.runner import run_study
    from hpsearch.store.urls import mask_url

    config = definition.config
    prefix = f"[w{worker_index}] " if pool_worker else ""
    signals.install()
    reporter = reporter_for(config.trials, definition.metric, quiet, pool_worker, prefix, sys.stdout.isatty())

    def banner(study: Any, finished: int) -> None:
        reporter.on_start(finished)
        if not pool_worker and not quiet:
            reporter.echo(
                f"study {config.study!r} on {mask_url(cli.url)}: {finished}/{config.trials} finished trials, "
                f"{config.max_epochs} epochs each, task {config.task_ref}"
            )

    with reporter:
        study = run_study(
            definition, cli.url, timeout=timeout, on_progress=reporter.on_progress, on_start=banner,
            heartbeat=beat, checkpoint_dir=checkpoint_dir, worker_index=worker_index, on_epoch=reporter.on_epoch,
            allow_changes=allow_changes, round_runner=optimize_population,
        )
    if not pool_worker:
        click.echo(study_result(study, config.trials))


def _run_question(cli: CliContext, definition: Any, timeout: float | None, beat: Any, checkpoint_dir: str | None,
                  worker_index: int, pool_worker: bool, quiet: bool, allow_changes: bool) -> None:
    """A question: each cell's study in turn (rotated by the worker index), a banner naming the
    level per cell, and a table of the cells at the end."""
    import time

    from hpsearch.cli.live import reporter_for
    from hpsearch.console import question_cells_table
    from hpsearch.population.run import optimize_population
    from hpsearch.question.optimize import CellRun, run_question
    from hpsearch.run import signals
    from hpsearch.run.runner import run_study

    signals.install()
    deadline = None if timeout is None else time.monotonic() + timeout
    name = definition.config.study

    def run_cell(run: CellRun, total: int) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        config = run.definition.config
        prefix = (f"[w{worker_index}] " if pool_worker else "") + f"[{run.cell.key}] "
        reporter = reporter_for(config.trials, run.definition.metric, quiet, pool_worker, prefix, sys.stdout.isatty())

        def banner(study: Any, finished: int) -> None:
            reporter.on_start(finished)
            if not pool_worker and not quiet:
                reporter.echo(f"question {name!r}, level {run.cell.key} [{run.index + 1}/{total}] (study {config.study!r}): "
                              f"{finished}/{config.trials} finished tuning trials, {config.max_epochs} epochs each")

        with reporter:
            run_study(run.definition, cli.url, timeout=remaining, on_progress=reporter.on_progress, on_start=banner,
                      heartbeat=beat, checkpoint_dir=checkpoint_dir, worker_index=worker_index,
                      on_epoch=reporter.on_epoch, allow_changes=allow_changes, round_runner=optimize_population)
        signals.raise_if_received()

    runs = run_question(definition, cli.url, run_cell, worker_index, allow_changes)
    if not pool_worker:
        click.echo(question_cells_table(runs, cli.url))
        click.echo(f"next: hpsearch answer {name}")


def _run_pool(cli: CliContext, definition: Any, workers: int, forwarded: Mapping[str, object], first_index: int, quiet: bool,
              allow_changes: bool) -> int:
    """``--workers K``: a banner, the workers' own lines, then the summary; returns the exit code."""
    import signal

    from hpsearch.console import study_result
    from hpsearch.run.workers import PoolStart, describe_exit, run_local_pool
    from hpsearch.store.urls import mask_url

    config = definition.config

    def banner(start: PoolStart) -> None:
        if quiet:
            return
        click.echo(
            f"study {config.study!r} on {mask_url(cli.url)}: {start.finished}/{config.trials} finished "
            f"trials, {config.max_epochs} epochs each, task {config.task_ref}; {start.workers} workers, "
            f"{start.threads} torch thread(s) each" + (f", GPUs {','.join(start.gpus)}" if start.gpus else "")
        )

    # The pool checks the definition (and with --allow-changes records the change) before its
    # workers start; they then find the study's definition equal to the file's.
    outcome = run_local_pool(definition, cli.url, workers, forwarded, cli.root_options(), first_index, on_start=banner,
                             allow_changes=allow_changes)
    for index in outcome.result.failed:
        click.echo(f"worker {index}: {describe_exit(outcome.result.returncodes[index])}", err=True)
    if outcome.result.signal is not None:
        click.echo(
            f"interrupted by {signal.Signals(outcome.result.signal).name}: the running trials were marked FAIL; "
            "run the same command to continue", err=True,
        )
        return outcome.exit_code
    if config.question is not None:
        from hpsearch.console import question_cells_table
        from hpsearch.question.optimize import cell_runs

        click.echo(question_cells_table(cell_runs(definition)[1], cli.url))
        return 1 if outcome.result.failed else outcome.exit_code
    click.echo(study_result(outcome.study, config.trials))
    if outcome.short_of_target:
        click.echo(
            f"error: {len(outcome.result.failed)} of {workers} workers failed; the study holds "
            f"{outcome.finished}/{config.trials} finished trials", err=True,
        )
    return outcome.exit_code


COMMANDS = [optimize]
