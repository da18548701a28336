"""SIGINT / SIGTERM handling for optimize runs: the running trial ends as FAIL with the reason
stored, never RUNNING, and the process exits with 128 + signal number (130 / 143).

A signal inside a trial's body (model building, Lightning's ``fit``) interrupts it at once:
:class:`Interrupted` is raised there and Optuna records the trial as FAIL. Anywhere else in the
optimize loop (sampling, writing a trial's result to the database) the signal is deferred, so
a database write is never cut in half; the loop stops after the current step and the runner
raises :class:`Interrupted` afterwards.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The process received SIGINT or SIGTERM; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    received: int | None = None
    installed = False
    in_trial = False
    deferring = False


def received() -> int | None:
    """The first signal received since :func:`install` (``None`` if none)."""
    return _State.received


def _handler(signum: int, frame: FrameType | None) -> None:
    if _State.received is None:
        _State.received = signum
    if _State.in_trial or not _State.deferring:
        raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT and SIGTERM in this process (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _State.received = None
    _State.installed = True
    for sig in HANDLED:
        signal.signal(sig, _handler)


def reinstall_sigint() -> None:
    """Put the handler back after Lightning set SIGINT to "ignore" during its shutdown."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not _handler:
        signal.signal(signal.SIGINT, _handler if _State.installed else signal.default_int_handler)


def interruption() -> KeyboardInterrupt:
    """The exception to raise for an interrupt seen inside Lightning (which swallows it into
    ``sys.exit(1)``): :class:`Interrupted` with the received signal, else KeyboardInterrupt."""
    return Interrupted(_State.received) if _State.received is not None else KeyboardInterrupt("interrupted during training")


def raise_if_received() -> None:
    """Raise :class:`Interrupted` if a signal arrived while it was deferred."""
    if _State.received is not None:
        raise Interrupted(_State.received)


@contextmanager
def deferred() -> Iterator[None]:
    """Signals inside this block only set a flag (see :func:`received`), except inside
    :func:`trial_body`."""
    previous = _State.deferring
    _State.deferring = True
    try:
        yield
    finally:
        _State.deferring = previous


@contextmanager
def trial_body() -> Iterator[None]:
    """Signals inside this block raise :class:`Interrupted` at once; one that arrived just
    before it (while deferred) is raised on entry."""
    _State.in_trial = True
    try:
        raise_if_received()
        yield
    finally:
        _State.in_trial = False
