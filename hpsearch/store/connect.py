"""Opening a study database: a :class:`~hpsearch.store.rdb.RetryingRDBStorage` with the engine
options hpsearch needs.

* SQLite: WAL journal and a busy timeout so several local processes can share one file
  (single node only: SQLite locking is not safe on network file systems).
* PostgreSQL (and other servers): schema creation serialized by an advisory lock, so workers
  started at the same instant on an empty database do not race in ``CREATE TYPE``; every
  storage call retried with backoff while the server is unreachable (a restart).
* Heartbeats (``heartbeat_interval``/``grace_period``) with Optuna's
  ``RetryHeartbeatStaleTrialCallback``: a trial whose worker died is failed and re-queued with
  the same parameters.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import DatabaseFailure, StorageError, first_line
from hpsearch.store.heartbeat import Heartbeat
from hpsearch.store.retry import CONNECT_ENV, retry_seconds, with_retry
from hpsearch.store.urls import mask_text, mask_url, register_secret_url

if TYPE_CHECKING:
    from hpsearch.store.rdb import RetryingRDBStorage

SQLITE_BUSY_TIMEOUT_S = 60
# Arbitrary constant key of the PostgreSQL advisory lock around schema creation.
SCHEMA_LOCK_KEY = 0x6870736561726368  # "hpsearch"


def connect(url: str, *, create: bool = True, heartbeat: Heartbeat | None = None, requeue: bool = True) -> "RetryingRDBStorage":
    """An Optuna RDBStorage for ``url``, schema created if needed.

    With ``heartbeat``, running trials record heartbeats and stale ones (their worker died)
    are failed and, with ``requeue``, re-queued with the same parameters by
    ``RetryHeartbeatStaleTrialCallback``.

    Raises :class:`StorageError` (password masked) when the URL is malformed, the driver is
    missing, the SQLite file does not exist and ``create`` is false, or the server cannot be
    reached within the retry period. ``create=False`` opens an existing database for
    reading: no schema creation or version check.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from hpsearch.logs import route_optuna_logging
    from hpsearch.store.rdb import RetryingRDBStorage

    route_optuna_logging()
    register_secret_url(url)
    db_file = _sqlite_file(url, create)
    kwargs = _storage_kwargs(db_file, create, heartbeat, requeue)
    try:
        if db_file is None and url.startswith("postgresql") and create:
            return _closed_when_dropped(with_retry(lambda: _create_locked(url, kwargs), "connect", retry_seconds(CONNECT_ENV, 0.0)))
        storage = RetryingRDBStorage(url, **kwargs)
        if db_file is not None:
            storage.sqlite_file = (str(db_file), os.stat(db_file).st_ino)
        return _closed_when_dropped(storage)
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError, DatabaseFailure, ImportError, ValueError) as exc:
        cause = _unwrapped(exc)
        reason = mask_text(first_line(cause), url)
        if re.search(r"no such table|relation \S+ does not exist", reason):
            reason = f"not an Optuna study database ({reason})"
        raise StorageError(f"storage: cannot open {mask_url(url)}: {reason}") from None


def _closed_when_dropped(storage: "RetryingRDBStorage") -> "RetryingRDBStorage":
    """``storage`` with its connections closed when it is garbage collected or, at the latest,
    when the process exits (``weakref.finalize`` runs at exit): the last SQLite connection to
    close folds the write-ahead log back into the database file, and a PostgreSQL server sees
    a clean disconnect, whether or not the interpreter's final collection runs."""
    weakref.finalize(storage, _dispose_quietly, storage.engine)
    return storage


def _dispose_quietly(engine: Any) -> None:
    """Close ``engine``'s pooled connections; a failure (a server gone) is not worth a
    traceback at exit."""
    try:
        engine.dispose()
    except Exception:  # noqa: BLE001 - the connections die with the process anyway
        pass


def _unwrapped(exc: BaseException) -> BaseException:
    """The SQLAlchemy/driver error under Optuna's StorageInternalError ("An exception is raised
    during the commit") and hpsearch's DatabaseFailure: it names the real cause."""
    import optuna

    while isinstance(exc, (optuna.exceptions.StorageInternalError, DatabaseFailure)) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _sqlite_file(url: str, create: bool) -> Path | None:
    """The SQLite file of ``url`` (WAL mode switched on), ``None`` for a server database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"storage: malformed URL {mask_url(url)!r}; expected an SQLAlchemy URL such as "
            "sqlite:///hpsearch.db or postgresql+psycopg2://user@host/db"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise StorageError(f"storage: {mask_url(url)}: an in-memory SQLite database cannot hold a study; use sqlite:///FILE.db")
    db_file = Path(parsed.database)
    if not db_file.exists():
        if not create:
            raise StorageError(f"storage: no study database at {db_file} ({mask_url(url)})")
        if not db_file.parent.exists():
            raise StorageError(f"storage: directory {db_file.parent} does not exist ({mask_url(url)})")
    _enable_wal(db_file)
    return db_file


def _storage_kwargs(db_file: Path | None, create: bool, heartbeat: Heartbeat | None, requeue: bool) -> dict[str, Any]:
    """RDBStorage keyword arguments: engine options, read-only shortcuts, heartbeats."""
    import optuna

    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if db_file is not None:
        engine_kwargs = {"creator": functools.partial(_sqlite_connect, str(db_file))}
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs}
    if not create:
        # Read-only callers skip table creation and Alembic's version check, which cost more
        # than the query itself for `hpsearch studies` / `best`.
        kwargs.update(skip_table_creation=True, skip_compatibility_check=True)
    if heartbeat is not None:
        warnings.filterwarnings("ignore", ".*(heartbeat_interval|RetryHeartbeatStaleTrialCallback|fail_stale_trials|Heartbeat of storage).*")
        kwargs.update(
            heartbeat_interval=heartbeat.interval,
            grace_period=heartbeat.grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback() if requeue else None,
        )
    return kwargs


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """A connection with a busy timeout (writers wait instead of failing with "database is
    locked") and ``synchronous=NORMAL``: in WAL mode a commit then survives a crash of the
    process (not of the machine) without an fsync per commit."""
    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _create_locked(url: str, kwargs: dict[str, Any]) -> "RetryingRDBStorage":
    """Create the RDBStorage while holding a PostgreSQL advisory lock, so that concurrent
    first starts do not race in Optuna's schema creation (``CREATE TYPE studydirection``
    -> duplicate key in ``pg_type_typname_nsp_index``)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from hpsearch.store.rdb import RetryingRDBStorage

    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            try:
                return RetryingRDBStorage(url, **kwargs)
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
    finally:
        engine.dispose()


def _enable_wal(db_file: Path) -> None:
    """Switch the SQLite file to WAL journaling (persistent in the file) so readers and one
    writer work side by side; creates the file if missing."""
    try:
        conn = sqlite3.connect(db_file, timeout=SQLITE_BUSY_TIMEOUT_S)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"storage: cannot open SQLite file {db_file}: {exc}") from None
