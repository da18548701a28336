"""How ``hpsearch optimize`` shows a run: a live display on a terminal (rich), one plain line
per trial otherwise (CI, logs, pool workers with their ``[wI]`` prefix), nothing with --quiet.

The live display shows finished/target trials with the best value so far and an ETA (median
trial time of this run × trials left), and the running trial's epoch with its metric; each
finished trial's plain line scrolls above it.
"""

from __future__ import annotations

import statistics
import time
from contextlib import AbstractContextManager
from typing import Any, Callable

import click

from hpsearch.console import fmt_duration, fmt_value, progress_line
from hpsearch.run.events import EpochEvent
from hpsearch.run.stopper import Progress
from hpsearch.study.meta import primary_value


class Reporter(AbstractContextManager):
    """What ``run_study`` calls back: ``on_progress`` after every trial, ``on_epoch`` (``None``
    when the display has no use for epochs). The base class prints nothing (--quiet)."""

    on_epoch: Callable[[EpochEvent], None] | None = None

    def on_progress(self, p: Progress) -> None:
        """A trial finished."""

    def on_start(self, finished: int) -> None:
        """The study is open and holds ``finished`` finished trials."""

    def echo(self, text: str) -> None:
        """Print a line (above the live display, when there is one)."""
        click.echo(text)

    def __exit__(self, *exc: Any) -> None:
        return None


class PlainLines(Reporter):
    """One line per finished trial (``prefix`` names a pool worker)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def on_progress(self, p: Progress) -> None:
        click.echo(progress_line(p, self.prefix))


class LiveDisplay(Reporter):
    """A rich live display on the terminal: study progress and the running trial's epochs."""

    def __init__(self, target: int, metric: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.metric = metric
        self.durations: list[float] = []
        self.trial_started = time.perf_counter()
        self.progress = Progress(
            TextColumn("{task.description:>10}"), BarColumn(bar_width=30), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"), transient=True,
        )
        self.study_task = self.progress.add_task("trials", total=target, info="")
        self.trial_task = self.progress.add_task("epochs", total=1, info="waiting for the first trial", visible=True)
        self.on_epoch = self._on_epoch

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def on_start(self, finished: int) -> None:
        self.progress.update(self.study_task, completed=finished)

    def echo(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def _on_epoch(self, ev: EpochEvent) -> None:
        if ev.epoch == 0:
            self.trial_started = time.perf_counter()
            self.progress.reset(self.trial_task, total=ev.max_epochs, info=f"trial {ev.trial} started")
            return
        info = f"trial {ev.trial} · {self.metric} {fmt_value(ev.value)}"
        self.progress.update(self.trial_task, completed=ev.epoch, total=ev.max_epochs, info=info)

    def on_progress(self, p: Progress) -> None:
        self.durations.append(time.perf_counter() - self.trial_started)
        self.echo(progress_line(p))
        self.progress.update(self.study_task, completed=min(p.finished, p.target), info=self._study_info(p))

    def _study_info(self, p: Progress) -> str:
        best = f"best {self.metric} {fmt_value(primary_value(p.best))} (#{p.best.number})" if p.best is not None else "no complete trial yet"
        median = statistics.median(self.durations)
        eta = fmt_duration(median * max(p.target - p.finished, 0))
        return f"{best} · ETA {eta} (median trial {median:.1f} s)"


def reporter_for(target: int, metric: str, quiet: bool, pool_worker: bool, prefix: str, terminal: bool) -> Reporter:
    """The display for this run: plain lines for a pool worker or a non-terminal stdout, a
    live display on a terminal, nothing with ``quiet``."""
    if quiet:
        return Reporter()
    if pool_worker or not terminal:
        return PlainLines(prefix)
    return LiveDisplay(target, metric)
