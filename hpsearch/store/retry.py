"""Retrying storage calls while the database server is unreachable (a restart, a failover),
and nothing else.

Only connection failures are retried: PostgreSQL SQLSTATE class 08 (connection exception),
57P01-57P03 (admin/crash shutdown, cannot connect now), a connection the driver reports lost
or never made (no SQLSTATE), or one SQLAlchemy invalidated. SQLite errors are never retried:
"database is locked" already waits through the busy timeout, and disk full, a read-only file
or an I/O error do not heal by waiting. Every other database error becomes
:class:`~hpsearch.errors.DatabaseFailure`, one line naming the cause.

The retry window is one clock for the whole process: it starts at the first failed call of an
outage and is shared by every call (the heartbeat thread included), so a server that stays
down ends the process once, after the window, with one line.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from typing import Callable, TypeVar

from hpsearch.errors import DatabaseFailure, StorageError, first_line
from hpsearch.store.urls import mask_secrets

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a storage call keeps retrying while the database server is unreachable.
RETRY_ENV = "HPSEARCH_DB_RETRY_SECONDS"
DEFAULT_RETRY_S = 300.0
# How long opening the storage waits for a server that is not up yet (0: fail at once, so a
# wrong URL is a quick one-line error; cluster jobs started before the database set it).
CONNECT_ENV = "HPSEARCH_DB_CONNECT_SECONDS"
# PostgreSQL SQLSTATEs that mean "the server went away or is not accepting connections yet".
_RETRIED_SQLSTATES = ("57P01", "57P02", "57P03")


class _Outage:
    """Start (monotonic seconds) of the current outage, shared by every thread."""

    started: float | None = None
    lock = threading.Lock()


def retry_seconds(env: str = RETRY_ENV, default: float = DEFAULT_RETRY_S) -> float:
    """How long storage calls retry an unreachable server (``$HPSEARCH_DB_RETRY_SECONDS``)."""
    try:
        return float(os.environ.get(env, default))
    except ValueError:
        raise StorageError(f"${env} must be a number of seconds") from None


def _dbapi_error(exc: BaseException | None) -> BaseException | None:
    """The first SQLAlchemy DBAPIError or DisconnectionError in the exception's chain."""
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (sa_exc.DBAPIError, sa_exc.DisconnectionError)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def is_connection_error(exc: BaseException | None) -> bool:
    """True for errors meaning "the server is unreachable right now" (worth retrying), as
    opposed to bad SQL, bad data or a database that cannot write. Optuna wraps SQLAlchemy
    errors in StorageInternalError; the chain is followed."""
    from sqlalchemy import exc as sa_exc

    db = _dbapi_error(exc)
    if db is None:
        return False
    if isinstance(db, sa_exc.DisconnectionError):
        return True
    assert isinstance(db, sa_exc.DBAPIError)
    if db.connection_invalidated:
        return True
    if isinstance(db.orig, sqlite3.Error):
        return False
    if not isinstance(db, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return False
    code = getattr(db.orig, "pgcode", None) or getattr(db.orig, "sqlstate", None)
    return code is None or str(code).startswith("08") or str(code) in _RETRIED_SQLSTATES


def database_failure(exc: BaseException) -> DatabaseFailure | None:
    """A :class:`DatabaseFailure` naming the cause when ``exc`` is a raw database error (from
    SQLAlchemy, or Optuna's StorageInternalError around one) that retrying does not fix;
    ``None`` for anything else, Optuna's own exceptions such as DuplicatedStudyError included."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(exc, (SQLAlchemyError, StorageInternalError)):
        return None
    db = _dbapi_error(exc)
    if db is None or is_connection_error(exc):
        return None
    orig = getattr(db, "orig", None)
    return DatabaseFailure(f"database error: {mask_secrets(first_line(orig if orig is not None else db))}")


def with_retry(func: Callable[[], T], what: str, deadline_s: float | None = None) -> T:
    """Call ``func``; while it fails with a connection error, retry with exponential backoff
    (0.25 s doubling to 5 s, jittered) until the process-wide outage is
    ``$HPSEARCH_DB_RETRY_SECONDS`` old, or for ``deadline_s`` of this call's own when given
    (opening a database); then :class:`DatabaseFailure`. Other database errors become
    :class:`DatabaseFailure` at once."""
    limit = retry_seconds() if deadline_s is None else deadline_s
    own_start = time.monotonic() if deadline_s is not None else None
    delay = 0.25
    while True:
        try:
            result = func()
        except Exception as exc:
            if not is_connection_error(exc):
                failure = database_failure(exc)
                if failure is None:
                    raise
                raise failure from exc
            down = _outage_seconds(what, limit, exc) if own_start is None else time.monotonic() - own_start
            if down + delay > limit:
                raise DatabaseFailure(
                    f"database unreachable for {down:.0f} s (retry window {limit:g} s, ${RETRY_ENV}): "
                    f"{mask_secrets(first_line(exc))}"
                ) from exc
            log.info("database unavailable (%s), retry in %.2fs: %s", what, delay, mask_secrets(first_line(exc)))
            time.sleep(delay * (0.75 + 0.5 * random.random()))
            delay = min(delay * 2, 5.0)
        else:
            if own_start is None:
                _outage_over(what)
            return result


def _outage_seconds(what: str, limit: float, exc: BaseException) -> float:
    """Seconds since the current outage began (starting it now if none is under way)."""
    now = time.monotonic()
    with _Outage.lock:
        if _Outage.started is None:
            _Outage.started = now
            log.warning("database unavailable (%s), retrying for up to %g s: %s", what, limit, mask_secrets(first_line(exc)))
        return now - _Outage.started


def _outage_over(what: str) -> None:
    if _Outage.started is None:
        return
    with _Outage.lock:
        if _Outage.started is not None:
            log.warning("database reachable again after %.1fs (%s)", time.monotonic() - _Outage.started, what)
            _Outage.started = None
