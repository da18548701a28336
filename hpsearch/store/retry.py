"""Retrying storage calls while the database server is unreachable (a restart, a failover)."""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Callable, TypeVar

from hpsearch.errors import StorageError, first_line
from hpsearch.store.urls import mask_secrets

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a storage call keeps retrying while the database server is unreachable.
RETRY_ENV = "HPSEARCH_DB_RETRY_SECONDS"
DEFAULT_RETRY_S = 300.0
# How long opening the storage waits for a server that is not up yet (0: fail at once, so a
# wrong URL is a quick one-line error; cluster jobs started before the database set it).
CONNECT_ENV = "HPSEARCH_DB_CONNECT_SECONDS"


def retry_seconds(env: str = RETRY_ENV, default: float = DEFAULT_RETRY_S) -> float:
    """How long storage calls retry an unreachable server (``$HPSEARCH_DB_RETRY_SECONDS``)."""
    try:
        return float(os.environ.get(env, default))
    except ValueError:
        raise StorageError(f"${env} must be a number of seconds") from None


def is_connection_error(exc: BaseException | None) -> bool:
    """True for errors meaning "the server is unreachable right now" (worth retrying), as
    opposed to bad SQL or bad data. Optuna wraps SQLAlchemy errors in StorageInternalError."""
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def with_retry(func: Callable[[], T], what: str, deadline_s: float | None = None) -> T:
    """Call ``func``; while it fails with a connection error, retry with exponential backoff
    (0.25 s doubling to 5 s, jittered) for up to ``deadline_s`` seconds in total."""
    limit = retry_seconds() if deadline_s is None else deadline_s
    started = time.monotonic()
    delay = 0.25
    attempt = 0
    while True:
        try:
            result = func()
            if attempt:
                log.warning("database reachable again after %.1fs (%s)", time.monotonic() - started, what)
            return result
        except Exception as exc:
            if not is_connection_error(exc) or time.monotonic() - started + delay > limit:
                raise
            attempt += 1
            log.warning(
                "database unavailable (%s), retry %d in %.2fs: %s",
                what, attempt, delay, mask_secrets(first_line(exc)),
            )
            time.sleep(delay * (0.75 + 0.5 * random.random()))
            delay = min(delay * 2, 5.0)
