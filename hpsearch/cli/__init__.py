"""The ``hpsearch`` command line: one click group, thin commands over library code.

The group callback builds the :class:`~hpsearch.cli.common.CliContext` (logging set up once,
the storage URL resolved once, on first use). Heavy libraries (torch, lightning, optuna) are
imported inside the commands, so ``--help`` answers instantly. Commands live in
:mod:`.optimize` (running a study), :mod:`.results` (listing and exporting results) and
:mod:`.analysis` (report, verification, boundary plots, dashboard), :mod:`.answer` (the verdict
of a question) and :mod:`.manage` (delete, examples).
"""

from __future__ import annotations

import click

from hpsearch import __version__
from hpsearch.cli.common import STORAGE_FILE_HELP, STORAGE_HELP, CliContext, Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hpsearch")
@click.option("-v", "--verbose", count=True, help="Show Optuna/Lightning messages on stderr (-vv: debug).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append detailed logs to this file.")
@click.option("--storage", help=STORAGE_HELP + " Every command also takes it after its name.")
@click.option("--storage-file", type=click.Path(dir_okay=False), help=STORAGE_FILE_HELP)
@click.pass_context
def main(ctx: click.Context, verbose: int, log_file: str | None, storage: str | None, storage_file: str | None) -> None:
    """Hyperparameter search for regularization settings.

    Optuna proposes weight decay, dropout, batchnorm placement and learning rate; Lightning
    trains each trial; results go into a plain Optuna database (SQLite by default), readable by
    the `optuna` CLI and optuna-dashboard.

    \b
    Quick start:
      hpsearch optimize quickstart        # a built-in study (hpsearch examples lists them)
      hpsearch best quickstart
    """
    from hpsearch.logs import setup_logging
    from hpsearch.run.collector import skip_final_collection
    from hpsearch.run.memory import keep_freed_memory

    ctx.obj = CliContext(verbose, log_file, storage, storage_file)
    setup_logging(verbose, log_file)
    keep_freed_memory()  # training steps reuse their large blocks instead of page-faulting them in again
    skip_final_collection()  # the process ends ~1 s sooner


def _register() -> None:
    from hpsearch.cli import analysis, answer, manage, optimize, results

    for module in (optimize, results, analysis, answer, manage):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
