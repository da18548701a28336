"""Commands that manage studies and files: ``delete`` and ``examples``."""

from __future__ import annotations

import sys
from typing import IO, Any

import click

from hpsearch.cli.common import CliContext, pass_cli, storage_options


class ConfirmationNeeded(click.ClickException):
    """``delete`` without ``--yes`` when stdin is not a terminal (exit code 2)."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.command()
@click.argument("study_name")
@storage_options
@click.option("--yes", "-y", is_flag=True, help="Delete without asking (for scripts).")
@pass_cli
def delete(cli: CliContext, study_name: str, yes: bool) -> None:
    """Delete STUDY_NAME and the studies linked to it (STUDY_NAME:verify) with all their trials.

    A linked study is one whose stored link (user attr source_study) names STUDY_NAME; a study
    that only starts with "STUDY_NAME:" is not touched. The studies are listed before the
    question on a terminal; --yes skips the question. Without a terminal (a script, a pipe)
    --yes is required.
    """
    from hpsearch.store.queries import delete_studies, linked_study_names
    from hpsearch.store.urls import mask_url

    names = linked_study_names(study_name, cli.url)
    listed = ", ".join(n if n.isprintable() else repr(n) for n in names)
    if not yes:
        if not sys.stdin.isatty():
            raise ConfirmationNeeded(f"refusing to delete {listed} without --yes (stdin is not a terminal)")
        click.confirm(f"Delete {listed} from {mask_url(cli.url)}?", abort=True)
    delete_studies(names, cli.url)
    click.echo(f"deleted {listed}")


@click.command()
def examples() -> None:
    """List the built-in studies (run one with `hpsearch optimize NAME`)."""
    from hpsearch.console import table
    from hpsearch.study.builtin import builtin_studies

    click.echo(table(["study", "question"], [[s.name, s.question] for s in builtin_studies()]))
    click.echo("\nrun one with: hpsearch optimize NAME  (a file of that name in the current directory wins)")


COMMANDS = [delete, examples]
