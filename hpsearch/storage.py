"""Storage URLs: resolution, masking, and opening an Optuna RDBStorage.

The database stays plain Optuna; hpsearch only picks engine options and adds robustness:

* SQLite: WAL journal and a busy timeout so several local processes can share one file
  (single node only: SQLite locking is not safe on network file systems).
* PostgreSQL (and other servers): schema creation serialized by an advisory lock, so workers
  started at the same instant on an empty database do not race in ``CREATE TYPE``; every
  storage call retried with backoff while the server is unreachable (a restart).
* Heartbeats (``heartbeat_interval``/``grace_period``) with Optuna's
  ``RetryHeartbeatStaleTrialCallback``: a trial whose worker died is failed and re-queued with
  the same parameters.
* Passwords are registered as secrets and masked as ``***`` in messages and logs.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import random
import re
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from hpsearch.errors import StorageError

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///hpsearch.db"
STORAGE_ENV = "HPSEARCH_STORAGE"
STORAGE_FILE_ENV = "HPSEARCH_STORAGE_FILE"
SQLITE_BUSY_TIMEOUT_S = 60
# How long a storage call keeps retrying while the database server is unreachable.
RETRY_ENV = "HPSEARCH_DB_RETRY_SECONDS"
DEFAULT_RETRY_S = 300.0
# How long opening the storage waits for a server that is not up yet (0: fail at once, so a
# wrong URL is a quick one-line error; cluster jobs started before the database set it).
CONNECT_ENV = "HPSEARCH_DB_CONNECT_SECONDS"
# Arbitrary constant key of the PostgreSQL advisory lock around schema creation.
SCHEMA_LOCK_KEY = 0x6870736561726368  # "hpsearch"

_SECRETS: set[str] = set()
T = TypeVar("T")


@dataclass(frozen=True)
class Heartbeat:
    """Optuna heartbeat settings: a running trial records a heartbeat every ``interval`` s;
    one silent for more than ``grace`` s is failed and re-queued with the same parameters."""

    interval: int = 10
    grace: int = 30

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.grace <= 0:
            raise StorageError("heartbeat: interval and grace period must be positive seconds")
        if self.grace < self.interval:
            raise StorageError(f"heartbeat: grace period {self.grace}s is shorter than the interval {self.interval}s")


def resolve_url(cli_value: str | None = None, storage_file: str | None = None) -> str:
    """``--storage``, else ``--storage-file`` / ``$HPSEARCH_STORAGE_FILE`` (first line of the
    file), else ``$HPSEARCH_STORAGE``, else ``sqlite:///hpsearch.db``. The URL's password, if
    any, is registered for masking."""
    url = cli_value
    if not url:
        path = storage_file or os.environ.get(STORAGE_FILE_ENV)
        if path:
            try:
                lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
            except OSError as exc:
                raise StorageError(f"storage file {path}: {exc.strerror or exc}") from None
            if not lines:
                raise StorageError(f"storage file {path} is empty; it should hold one SQLAlchemy URL")
            url = lines[0]
    url = url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    register_secret_url(url)
    return url


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:  # a malformed URL has no parseable password; mask by pattern only
        match = re.search(r"://[^:/@]*:([^@/]*)@", url)
        password = match.group(1) if match else None
    return str(password) if password else None


def register_secret_url(url: str) -> None:
    """Remember the URL's password so :func:`mask_secrets` (and the log handlers) hide it."""
    password = _password(url)
    if password:
        _SECRETS.add(password)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print or store)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def mask_text(text: str, url: str) -> str:
    """``text`` with the URL's password (if any) replaced by ``***`` wherever it appears."""
    password = _password(url)
    text = text.replace(url, mask_url(url))
    if password:
        text = text.replace(password, "***")
    return mask_secrets(text)


def mask_secrets(text: str) -> str:
    """``text`` with every registered password, and any ``scheme://user:password@``
    pattern, replaced by ``***``."""
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", text)


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise StorageError(f"storage: {mask_url(url)}: an in-memory SQLite database cannot hold a study; use sqlite:///FILE.db")
    return Path(parsed.database)


def retry_seconds(env: str = RETRY_ENV, default: float = DEFAULT_RETRY_S) -> float:
    """How long storage calls retry an unreachable server (``$HPSEARCH_DB_RETRY_SECONDS``)."""
    try:
        return float(os.environ.get(env, default))
    except ValueError:
        raise StorageError(f"${env} must be a number of seconds") from None


def is_connection_error(exc: BaseException) -> bool:
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
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
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
                what, attempt, delay, mask_secrets(_first_line(exc)),
            )
            time.sleep(delay * (0.75 + 0.5 * random.random()))
            delay = min(delay * 2, 5.0)


# Public storage methods retried on connection errors. Reads and idempotent writes are safe to
# repeat; set_trial_state_values is made idempotent below.
_RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_trial_user_attrs",
    "get_trial_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
    "get_trial_param", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial",
    "get_all_trials", "get_best_trial", "record_heartbeat", "_get_stale_trial_ids",
    "get_n_trials", "set_trial_user_attrs",
    # private ones called by Optuna's _CachedStorage wrapper
    "_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials",
)


@dataclass(frozen=True)
class _HotPathSQL:
    """Core statements for the per-epoch and per-trial writes, built once per dialect (building
    a SQLAlchemy expression costs more than executing it on SQLite)."""

    trial_state: Any
    upsert_value: Any  # None where the dialect has no ON CONFLICT: update, then insert
    update_value: Any
    insert_value: Any
    delete_attrs: Any
    insert_attr: Any


@functools.lru_cache(maxsize=None)
def _statements(dialect: str) -> _HotPathSQL:
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    trials = models.TrialModel.__table__
    values = models.TrialIntermediateValueModel.__table__
    attrs = models.TrialUserAttributeModel.__table__
    insert_value = sa.insert(values)
    upsert_value = None
    if dialect in ("sqlite", "postgresql"):
        stmt = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert(values)
        upsert_value = stmt.on_conflict_do_update(
            index_elements=[values.c.trial_id, values.c.step],
            set_={"intermediate_value": stmt.excluded.intermediate_value,
                  "intermediate_value_type": stmt.excluded.intermediate_value_type},
        )
    return _HotPathSQL(
        trial_state=sa.select(trials.c.state).where(trials.c.trial_id == sa.bindparam("trial_id")),
        upsert_value=upsert_value,
        update_value=sa.update(values)
        .where((values.c.trial_id == sa.bindparam("trial_id")) & (values.c.step == sa.bindparam("step")))
        .values(intermediate_value=sa.bindparam("intermediate_value"),
                intermediate_value_type=sa.bindparam("intermediate_value_type")),
        insert_value=insert_value,
        delete_attrs=sa.delete(attrs).where(
            (attrs.c.trial_id == sa.bindparam("trial_id")) & attrs.c.key.in_(sa.bindparam("keys", expanding=True))
        ),
        insert_attr=sa.insert(attrs),
    )


def _retrying_class() -> type:
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError

    class RetryingRDBStorage(optuna.storages.RDBStorage):
        """RDBStorage whose calls survive a database restart: connection errors are retried
        with backoff (see :func:`with_retry`)."""

        def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
            base = super().set_trial_state_values
            attempts = [0]

            def call() -> bool:
                attempts[0] += 1
                try:
                    return base(trial_id, state, values)
                except UpdateFinishedTrialError:
                    # A retry after a commit whose reply was lost: the trial already holds the
                    # state we asked for, so the write did happen.
                    if attempts[0] > 1 and self.get_trial(trial_id).state == state:
                        return True
                    raise

            return with_retry(call, "set_trial_state_values")

        def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
            """Same row as Optuna's implementation, written in one transaction of two prebuilt
            Core statements (the trial's state, then an upsert) instead of three ORM round
            trips: the pruning callback reports every epoch, so this is on the trial's hot path."""
            from optuna.storages._rdb import models

            sql = _statements(self.engine.dialect.name)
            stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(intermediate_value)
            row = {"trial_id": trial_id, "step": step, "intermediate_value": stored, "intermediate_value_type": kind}
            with self.engine.begin() as conn:
                self._check_updatable(conn, sql, trial_id)
                if sql.upsert_value is not None:
                    conn.execute(sql.upsert_value, row)
                elif conn.execute(sql.update_value, row).rowcount == 0:
                    conn.execute(sql.insert_value, row)

        def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
            """Several user attrs of a trial in one transaction of three Core statements
            (Optuna's set_trial_user_attr commits each key separately, with two ORM queries
            per key); the same rows as Optuna writes (``value_json`` = ``json.dumps(value)``)."""
            if not attrs:
                return
            sql = _statements(self.engine.dialect.name)
            rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]
            with self.engine.begin() as conn:
                self._check_updatable(conn, sql, trial_id)
                conn.execute(sql.delete_attrs, {"trial_id": trial_id, "keys": list(attrs)})
                conn.execute(sql.insert_attr, rows)

        def _check_updatable(self, conn: Any, sql: _HotPathSQL, trial_id: int) -> None:
            """Optuna's checks before writing to a trial: it exists and is not finished."""
            state = conn.execute(sql.trial_state, {"trial_id": trial_id}).scalar_one_or_none()
            if state is None:
                raise KeyError(f"No trial with trial_id {trial_id} exists.")
            self.check_trial_is_updatable(trial_id, state)

    def wrap(name: str) -> Callable[..., Any]:
        # The subclass's own implementation if it has one, else Optuna's.
        base = RetryingRDBStorage.__dict__.get(name) or getattr(optuna.storages.RDBStorage, name)

        @functools.wraps(base)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return with_retry(lambda: base(self, *args, **kwargs), name)

        return method

    for name in _RETRIED:
        if hasattr(RetryingRDBStorage, name):
            setattr(RetryingRDBStorage, name, wrap(name))
    return RetryingRDBStorage


@functools.lru_cache(maxsize=1)
def retrying_storage_class() -> type:
    """The RDBStorage subclass used for every hpsearch storage (built once, lazily, so that
    importing this module stays cheap)."""
    return _retrying_class()


def open_storage(url: str, *, create: bool = True, heartbeat: Heartbeat | None = None) -> "optuna.storages.RDBStorage":  # noqa: F821
    """An Optuna RDBStorage for ``url``, schema created if needed.

    With ``heartbeat``, running trials record heartbeats and stale ones (their worker died)
    are failed and re-queued with the same parameters by ``RetryHeartbeatStaleTrialCallback``.

    Raises :class:`StorageError` (password masked) when the URL is malformed, the driver is
    missing, the SQLite file does not exist and ``create`` is false, or the server cannot be
    reached within the retry period. ``create=False`` opens an existing database for
    reading: no schema creation or version check.
    """
    import optuna
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    register_secret_url(url)
    try:
        db_file = _sqlite_path(url)
    except ArgumentError:
        raise StorageError(
            f"storage: malformed URL {mask_url(url)!r}; expected an SQLAlchemy URL such as "
            "sqlite:///hpsearch.db or postgresql+psycopg2://user@host/db"
        ) from None
    engine_kwargs: dict = {}
    if db_file is not None:
        if not db_file.exists():
            if not create:
                raise StorageError(f"storage: no study database at {db_file} ({mask_url(url)})")
            if not db_file.parent.exists():
                raise StorageError(f"storage: directory {db_file.parent} does not exist ({mask_url(url)})")
        _enable_wal(db_file)
        engine_kwargs = {"creator": functools.partial(_sqlite_connect, str(db_file))}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs}
    if not create:
        # Read-only callers skip table creation and Alembic's version check, which cost more
        # than the query itself for `hpsearch studies` / `best`.
        kwargs.update(skip_table_creation=True, skip_compatibility_check=True)
    if heartbeat is not None:
        warnings.filterwarnings("ignore", ".*(heartbeat_interval|RetryHeartbeatStaleTrialCallback|fail_stale_trials).*")
        kwargs.update(
            heartbeat_interval=heartbeat.interval,
            grace_period=heartbeat.grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
        )
    cls = retrying_storage_class()
    try:
        if db_file is None and url.startswith("postgresql") and create:
            return with_retry(lambda: _create_locked(cls, url, kwargs), "connect", retry_seconds(CONNECT_ENV, 0.0))
        return cls(url, **kwargs)
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError, ImportError, ModuleNotFoundError, ValueError) as exc:
        cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ else exc
        reason = mask_text(_first_line(cause), url)
        if re.search(r"no such table|relation \S+ does not exist", reason):
            reason = f"not an Optuna study database ({reason})"
        raise StorageError(f"storage: cannot open {mask_url(url)}: {reason}") from None


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """A connection with a busy timeout (writers wait instead of failing with "database is
    locked") and ``synchronous=NORMAL``: in WAL mode a commit then survives a crash of the
    process (not of the machine) without an fsync per commit, which saves ~3 ms per write."""
    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _create_locked(cls: type, url: str, kwargs: dict[str, Any]) -> Any:
    """Create the RDBStorage while holding a PostgreSQL advisory lock, so that concurrent
    first starts do not race in Optuna's schema creation (``CREATE TYPE studydirection``
    -> duplicate key in ``pg_type_typname_nsp_index``)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            try:
                return cls(url, **kwargs)
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
