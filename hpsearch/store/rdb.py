"""RetryingRDBStorage: Optuna's RDBStorage whose calls survive a database restart, with the
per-epoch and per-trial writes done as prebuilt SQLAlchemy Core statements."""

from __future__ import annotations

import functools
import importlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Callable, Container, Iterable, cast

import optuna
import sqlalchemy as sa
from optuna import distributions
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import first_line
from hpsearch.store.retry import with_retry
from hpsearch.store.urls import mask_secrets

log = logging.getLogger(__name__)

# Public storage methods retried on connection errors. Reads and idempotent writes are safe to
# repeat; set_trial_state_values is made idempotent below.
_RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_trial_user_attrs",
    "get_trial_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
    "get_trial_param", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial",
    "get_all_trials", "get_best_trial", "_get_stale_trial_ids",
    "get_n_trials", "set_trial_user_attrs", "set_trials_intermediate_values",
    # private ones called by Optuna's _CachedStorage wrapper
    "_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials",
)


@dataclass(frozen=True)
class _HotPathSQL:
    """Core statements for the per-epoch and per-trial writes, built once per dialect (building
    a SQLAlchemy expression costs more than executing it on SQLite)."""

    trial_state: Any
    trial_states: Any
    upsert_value: Any  # None where the dialect has no ON CONFLICT: update, then insert
    update_value: Any
    insert_value: Any
    delete_attrs: Any
    insert_attr: Any
    trial_study_state: Any
    param_distribution: Any
    insert_param: Any


def _upsert_value(dialect: str, values: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT (trial_id, step) DO UPDATE`` where the dialect has it."""
    if dialect not in ("sqlite", "postgresql"):
        return None
    stmt = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert(values)
    return stmt.on_conflict_do_update(
        index_elements=[values.c.trial_id, values.c.step],
        set_={"intermediate_value": stmt.excluded.intermediate_value,
              "intermediate_value_type": stmt.excluded.intermediate_value_type},
    )


@functools.lru_cache(maxsize=None)
def _statements(dialect: str) -> _HotPathSQL:
    trials = models.TrialModel.__table__
    values = models.TrialIntermediateValueModel.__table__
    attrs = models.TrialUserAttributeModel.__table__
    params = models.TrialParamModel.__table__
    return _HotPathSQL(
        trial_state=sa.select(trials.c.state).where(trials.c.trial_id == sa.bindparam("trial_id")),
        trial_states=sa.select(trials.c.trial_id, trials.c.state).where(trials.c.trial_id.in_(sa.bindparam("ids", expanding=True))),
        upsert_value=_upsert_value(dialect, values),
        update_value=sa.update(values)
        .where((values.c.trial_id == sa.bindparam("trial_id")) & (values.c.step == sa.bindparam("step")))
        .values(intermediate_value=sa.bindparam("intermediate_value"),
                intermediate_value_type=sa.bindparam("intermediate_value_type")),
        insert_value=sa.insert(values),
        delete_attrs=sa.delete(attrs).where(
            (attrs.c.trial_id == sa.bindparam("trial_id")) & attrs.c.key.in_(sa.bindparam("keys", expanding=True))
        ),
        insert_attr=sa.insert(attrs),
        trial_study_state=sa.select(trials.c.study_id, trials.c.state).where(trials.c.trial_id == sa.bindparam("trial_id")),
        param_distribution=sa.select(params.c.distribution_json)
        .join(trials, trials.c.trial_id == params.c.trial_id)
        .where((trials.c.study_id == sa.bindparam("study_id")) & (params.c.param_name == sa.bindparam("param_name")))
        .limit(1),
        insert_param=sa.insert(params),
    )


#: The tables of a trial's parts: (table, primary key, columns read), in FrozenTrial order.
_PARTS = (
    (models.TrialValueModel.__table__, "trial_value_id", ("objective", "value", "value_type")),
    (models.TrialParamModel.__table__, "param_id", ("param_id", "param_name", "param_value", "distribution_json")),
    (models.TrialUserAttributeModel.__table__, "trial_user_attribute_id", ("key", "value_json")),
    (models.TrialSystemAttributeModel.__table__, "trial_system_attribute_id", ("key", "value_json")),
    (models.TrialIntermediateValueModel.__table__, "trial_intermediate_value_id",
     ("step", "intermediate_value", "intermediate_value_type")),
)


#: Trial ids per part query (SQLAlchemy's selectin loading uses the same chunk size).
_CHUNK = 500


def read_trials(storage: optuna.storages.RDBStorage, conn: Any, head: Any, params: dict[str, Any] | None = None) -> list[FrozenTrial]:
    """The trials whose rows ``head`` (a :func:`trial_rows` select, with bind ``params``)
    returns, read with Core selects: those rows, then each part of exactly those trials by their
    ids (in chunks, in the order of the part table's primary key: the order Optuna's ORM
    relationships load them in), each trial built by Optuna's own
    ``RDBStorage._build_frozen_trial_from_trial_model`` from the rows (named as the model's
    attributes) instead of ORM objects."""
    rows = conn.execute(head, params or {}).all()
    if not rows:
        return []
    ids = [row.trial_id for row in rows]
    found: list[dict[int, list[Any]]] = []
    for select in _part_selects():
        by_trial: dict[int, list[Any]] = {}
        for start in range(0, len(ids), _CHUNK):
            for r in conn.execute(select, {"ids": ids[start:start + _CHUNK]}):
                by_trial.setdefault(r.trial_id, []).append(r)
        found.append(by_trial)
    names = ("values", "params", "user_attributes", "system_attributes", "intermediate_values")
    return [storage._build_frozen_trial_from_trial_model(SimpleNamespace(  # type: ignore[arg-type]
        trial_id=row.trial_id, number=row.number, state=row.state,
        datetime_start=_local_time(row.datetime_start), datetime_complete=_local_time(row.datetime_complete),
        **{name: part.get(row.trial_id, []) for name, part in zip(names, found)})) for row in rows]


def trial_rows(which: Any) -> Any:
    """The select of the trial rows ``which`` (a WHERE clause on the trials table) picks, for
    :func:`read_trials`."""
    trials = models.TrialModel.__table__
    return sa.select(trials.c.trial_id, trials.c.number, trials.c.state, trials.c.datetime_start,
                     trials.c.datetime_complete).where(which).order_by(trials.c.trial_id)


@functools.lru_cache(maxsize=None)
def _one_trial_rows() -> Any:
    """:func:`trial_rows` of one trial (bind ``trial_id``), built once: building a statement
    cost about as much as running it on SQLite."""
    return trial_rows(models.TrialModel.__table__.c.trial_id == sa.bindparam("trial_id"))


@functools.lru_cache(maxsize=None)
def _part_selects() -> list[Any]:
    """One select per part table of the trials in bind ``ids``, built once."""
    ids: Any = sa.bindparam("ids", expanding=True)
    return [sa.select(table.c.trial_id, *(table.c[c] for c in columns)).where(table.c.trial_id.in_(ids)).order_by(table.c[key])
            for table, key, columns in _PARTS]


def read_attrs(conn: Any, system: bool, trial_id: int) -> dict[str, Any]:
    """One trial's user (or system) attrs as Optuna reads them, from their table alone;
    ``KeyError`` for a trial that does not exist."""
    rows = conn.execute(_attr_select(system), {"trial_id": trial_id}).all()
    if not rows:
        trials = models.TrialModel.__table__
        if conn.execute(sa.select(trials.c.trial_id).where(trials.c.trial_id == trial_id)).first() is None:
            raise KeyError(models.NOT_FOUND_MSG)
    return {key: json.loads(value) for key, value in rows}


@functools.lru_cache(maxsize=None)
def _attr_select(system: bool) -> Any:
    table, key, _ = _PARTS[3 if system else 2]
    return sa.select(table.c.key, table.c.value_json).where(table.c.trial_id == sa.bindparam("trial_id")).order_by(table.c[key])


def _local_time(utc: datetime | None) -> datetime | None:
    """A stored naive-UTC time as Optuna's TrialModel shows it (naive local time)."""
    return models.TrialModel.datetime_start.fget(SimpleNamespace(_datetime_start_utc=utc))  # type: ignore[attr-defined]


class RetryingRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose calls survive a database restart: connection errors are retried with
    backoff (see :func:`hpsearch.store.retry.with_retry`; every method in ``_RETRIED``).

    With heartbeats on, a trial has a heartbeat from the moment it is RUNNING (created, or a
    queued copy taken up), not only once its objective starts: a worker killed while sampling
    leaves a trial that goes stale like any other. A RUNNING trial without any heartbeat row
    (killed between the two writes, or written by plain Optuna) counts as stale once its start
    is older than the grace period.
    """

    #: ``(path, inode)`` of the SQLite file when it was opened (see ``queries.check_database``).
    sqlite_file: tuple[str, int] | None = None

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        frozen = super()._create_new_trial(study_id, template_trial)
        if frozen.state == TrialState.RUNNING and self.heartbeat_interval:
            self.record_heartbeat(frozen._trial_id)
        return frozen

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's heartbeat, retried; a failure past the retry window is logged (the heartbeat
        thread must not die with a traceback: the main thread meets the same error itself)."""
        try:
            with_retry(lambda: super(RetryingRDBStorage, self).record_heartbeat(trial_id), "record_heartbeat")
        except Exception as exc:  # INFO: the main thread reports the same failure as its one line
            log.info("heartbeat of trial id %s not recorded: %s", trial_id, mask_secrets(first_line(exc)))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        return stale + [t for t in self._running_without_heartbeat(study_id) if t not in stale]

    def _running_without_heartbeat(self, study_id: int) -> list[int]:
        """RUNNING trials with no heartbeat row that started more than the grace period ago
        (``datetime_start`` is written from this process's clock, as Optuna does)."""
        grace = self.grace_period if self.grace_period is not None else 2 * (self.heartbeat_interval or 0)
        trials, beats = models.TrialModel.__table__, models.TrialHeartbeatModel.__table__
        query = (
            sa.select(trials.c.trial_id)
            .select_from(trials.outerjoin(beats, beats.c.trial_id == trials.c.trial_id))
            .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING, beats.c.trial_id.is_(None))
            .where(trials.c.datetime_start < datetime.now() - timedelta(seconds=grace))
        )
        with self.engine.connect() as conn:
            return [int(row[0]) for row in conn.execute(query)]

    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
        changed = self._set_state(trial_id, state, values)
        if changed and state == TrialState.RUNNING and self.heartbeat_interval:
            self.record_heartbeat(trial_id)  # a queued copy taken up: alive from now on
        return changed

    def _set_state(self, trial_id: int, state: Any, values: Any = None) -> bool:
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
        sql = _statements(self.engine.dialect.name)
        stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(intermediate_value)
        row = {"trial_id": trial_id, "step": step, "intermediate_value": stored, "intermediate_value_type": kind}
        with self.engine.begin() as conn:
            self._check_updatable(conn, sql, trial_id)
            if sql.upsert_value is not None:
                conn.execute(sql.upsert_value, row)
            elif conn.execute(sql.update_value, row).rowcount == 0:
                conn.execute(sql.insert_value, row)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """Optuna's ``get_trial`` (an equal FrozenTrial) read with prebuilt-shape Core selects
        instead of ORM objects (:func:`read_trials`): every ``tell`` reads the trial twice, with
        one row per reported epoch, and the ORM spent milliseconds building those rows."""
        with self.engine.connect() as conn:
            found = read_trials(self, conn, _one_trial_rows(), {"trial_id": trial_id})
        if not found:
            raise KeyError(models.NOT_FOUND_MSG)
        return found[0]

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        """Optuna's (the trial's user attrs), read from their one table, not with the whole trial."""
        with self.engine.connect() as conn:
            return read_attrs(conn, False, trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        """Optuna's (the trial's system attrs), read from their one table, not with the whole
        trial: Successive Halving and Hyperband read them at every pruning decision."""
        with self.engine.connect() as conn:
            return read_attrs(conn, True, trial_id)

    def _get_trials(self, study_id: int, states: Container[TrialState] | None, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        """Optuna's ``_get_trials`` (the same trials; what ``get_all_trials`` and Optuna's trial
        cache read: every ``ask`` re-reads the study's unfinished trials) with :func:`read_trials`."""
        included = {i for i in included_trial_ids if i <= trial_id_greater_than}
        trials = models.TrialModel.__table__
        which = trials.c.study_id == study_id
        if states is not None:
            which = which & trials.c.state.in_(list(cast(Iterable[TrialState], states)))
        if included and trial_id_greater_than > -1:
            which = which & sa.or_(trials.c.trial_id.in_(sorted(included)), trials.c.trial_id > trial_id_greater_than)
        elif trial_id_greater_than > -1:
            which = which & (trials.c.trial_id > trial_id_greater_than)
        studies = models.StudyModel.__table__
        with self.engine.connect() as conn:
            if conn.execute(sa.select(studies.c.study_id).where(studies.c.study_id == study_id)).first() is None:
                raise KeyError(models.NOT_FOUND_MSG)
            return read_trials(self, conn, trial_rows(which))

    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: distributions.BaseDistribution,
                         previous_distribution: distributions.BaseDistribution | None) -> None:
        """Optuna's ``_set_trial_param`` (the same row, the same checks: the trial exists and is
        not finished, the distribution is compatible with the study's earlier one of that name)
        in one transaction of prebuilt Core statements: every suggested value of every trial
        is written here."""
        sql = _statements(self.engine.dialect.name)
        with self.engine.begin() as conn:
            row = conn.execute(sql.trial_study_state, {"trial_id": trial_id}).one_or_none()
            if row is None:
                raise KeyError(models.NOT_FOUND_MSG)
            self.check_trial_is_updatable(trial_id, row.state)
            if previous_distribution is None:
                text = conn.execute(sql.param_distribution, {"study_id": row.study_id, "param_name": param_name}).scalar()
                if text is not None:
                    previous_distribution = distributions.json_to_distribution(text)
            if previous_distribution is not None:
                distributions.check_distribution_compatibility(previous_distribution, distribution)
            conn.execute(sql.insert_param, {"trial_id": trial_id, "param_name": param_name, "param_value": param_value_internal,
                                            "distribution_json": distributions.distribution_to_json(distribution)})

    def set_trials_intermediate_values(self, rows: list[tuple[int, int, float]]) -> None:
        """Several trials' intermediate values, ``(trial_id, step, value)`` each, in one
        transaction (a population reports every member's epoch at once): the same rows and the
        same checks as :meth:`set_trial_intermediate_value` for each, all or none written."""
        if not rows:
            return
        sql = _statements(self.engine.dialect.name)
        params = []
        for trial_id, step, value in rows:
            stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
            params.append({"trial_id": trial_id, "step": step, "intermediate_value": stored, "intermediate_value_type": kind})
        ids = list(dict.fromkeys(trial_id for trial_id, _, _ in rows))
        with self.engine.begin() as conn:
            states = dict(conn.execute(sql.trial_states, {"ids": ids}).all())  # one query for every trial
            for trial_id in ids:
                if trial_id not in states:
                    raise KeyError(f"No trial with trial_id {trial_id} exists.")
                self.check_trial_is_updatable(trial_id, states[trial_id])
            if sql.upsert_value is not None:
                conn.execute(sql.upsert_value, params)
            else:
                for row in params:
                    if conn.execute(sql.update_value, row).rowcount == 0:
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


def _retried(name: str) -> Callable[..., Any]:
    """The method ``name`` (the class's own implementation if it has one, else Optuna's)
    wrapped in :func:`with_retry`."""
    base = RetryingRDBStorage.__dict__.get(name) or getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(base)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return with_retry(lambda: base(self, *args, **kwargs), name)

    return method


for _name in _RETRIED:
    if hasattr(RetryingRDBStorage, _name):
        setattr(RetryingRDBStorage, _name, _retried(_name))
