"""What every command shares: the context object the group builds (logging set up once, the
storage URL resolved once), the storage options, and turning errors into one line."""

from __future__ import annotations

import functools
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import click

from hpsearch.store.urls import STORAGE_ENV, STORAGE_FILE_ENV

STORAGE_HELP = (
    f"SQLAlchemy URL of the study database [default: --storage-file, else ${STORAGE_ENV}, else "
    f"sqlite:///hpsearch.db]. For URLs with a password prefer ${STORAGE_ENV} or --storage-file: "
    "argv is visible in `ps`."
)
STORAGE_FILE_HELP = f"Read the storage URL from the first line of this file [env: ${STORAGE_FILE_ENV}]."


@dataclass
class CliContext:
    """Built by the group callback (``ctx.obj``): verbosity, log file and the storage options;
    :attr:`url` resolves the storage URL once, on first use."""

    verbose: int = 0
    log_file: str | None = None
    storage: str | None = None
    storage_file: str | None = None

    @functools.cached_property
    def url(self) -> str:
        from hpsearch.store.urls import resolve_url

        return resolve_url(self.storage, self.storage_file)

    def root_options(self) -> list[str]:
        """The group options to repeat for a subprocess of ``hpsearch`` (a pool worker)."""
        return ["-v"] * self.verbose + (["--log-file", self.log_file] if self.log_file else [])


pass_cli = click.make_pass_decorator(CliContext)


def _remember(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """An option callback that stores the value in the context object (a command's own
    ``--storage`` overrides the group's)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            setattr(ctx.ensure_object(CliContext), field, value)

    return callback


def storage_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--storage`` and ``--storage-file``, stored in the :class:`CliContext`."""
    func = click.option(
        "--storage-file", type=click.Path(dir_okay=False), help=STORAGE_FILE_HELP, expose_value=False,
        callback=_remember("storage_file"),
    )(func)
    return click.option("--storage", help=STORAGE_HELP, expose_value=False, callback=_remember("storage"))(func)


def heartbeat_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--heartbeat`` and ``--grace`` of a command that retrains ``what`` (verify, answer)."""

    def add(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option("--grace", type=click.IntRange(min=1), default=30, show_default=True,
                            help=f"Seconds without heartbeat after which a running {what} counts as dead (its process "
                                 "was killed or stalled) and is redone; at least --heartbeat, better twice it, and "
                                 "the same in every process.")(func)
        return click.option("--heartbeat", type=click.IntRange(min=1), default=10, show_default=True,
                            help=f"Seconds between heartbeats of a running {what}.")(func)

    return add


class Group(click.Group):
    """The root group: errors of any command become one line on stderr and their exit code
    (2 bad input, 1 runtime failure); Ctrl-C exits 130, SIGTERM 143."""

    def invoke(self, ctx: click.Context) -> Any:
        from hpsearch.errors import HPSearchError
        from hpsearch.run.signals import Interrupted
        from hpsearch.store.urls import mask_secrets

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except HPSearchError as exc:
            click.echo(mask_secrets(f"error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            code, what = (exc.exit_code, str(exc)) if isinstance(exc, Interrupted) else (130, "interrupted")
            click.echo(f"{what}: the running trial was marked FAIL; run the same command to continue", err=True)
            sys.exit(code)
        except Exception:  # an unexpected bug: show the traceback, with passwords masked
            click.echo(mask_secrets(traceback.format_exc()).rstrip(), err=True)
            sys.exit(1)
