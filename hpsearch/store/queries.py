"""The queries hpsearch adds to Optuna's storage API, and the few trial/study operations that
need Optuna's private attributes. Only the store layer touches those; everything else calls
these functions.

Counts run as SQL on an RDB storage (no trial is loaded: ``optuna.get_all_study_summaries``
would load them all); other storages fall back to loading the trials.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import warnings
from collections import Counter, defaultdict
from typing import Any, ContextManager, Iterator, Sequence

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import DatabaseFailure, StudyNotFoundError

#: The states of a trial that counts towards a study's target (and that samplers learn from).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _rdb(storage: optuna.storages.BaseStorage) -> Any:
    """The RDBStorage under Optuna's per-study cache wrapper (or the storage itself)."""
    return getattr(storage, "_backend", storage)


def load_study(study_name: str, url: str) -> optuna.Study:
    """Load an existing study for reading (never creates a database or a study); a missing
    study is :class:`StudyNotFoundError` naming the studies that exist."""
    from hpsearch.store.connect import connect

    storage = connect(url, create=False)
    names = optuna.get_all_study_names(storage)  # summaries would read every trial of every study
    if study_name not in names:
        valid = ", ".join(sorted(names)) or "none"
        raise StudyNotFoundError(f"study {study_name!r} not found; studies in this database: {valid}")
    return optuna.load_study(study_name=study_name, storage=storage)


def state_counts(storage: optuna.storages.BaseStorage, study_ids: list[int]) -> dict[int, Counter]:
    """``{study_id: Counter(state name in lower case -> trials)}``: one ``GROUP BY`` over
    Optuna's ``trials`` table on an RDB storage."""
    counts: dict[int, Counter] = defaultdict(Counter)
    backend = _rdb(storage)
    if isinstance(backend, RDBStorage):
        if not study_ids:
            return counts
        with backend.engine.connect() as conn:
            for study_id, state, n in conn.execute(_count_query(), {"ids": list(study_ids)}):
                name = state.name if isinstance(state, TrialState) else str(state).rsplit(".", 1)[-1]
                counts[study_id][name.lower()] += n
        return counts
    for study_id in study_ids:
        counts[study_id].update(t.state.name.lower() for t in storage.get_all_trials(study_id, deepcopy=False))
    return counts


def study_state_counts(study: optuna.Study) -> Counter:
    """Number of trials of ``study`` per state name (lower case), counted by the database."""
    return state_counts(study._storage, [study._study_id])[study._study_id]


@functools.lru_cache(maxsize=1)
def _count_query() -> Any:
    return sa.text(
        "SELECT study_id, state, COUNT(*) FROM trials WHERE study_id IN :ids GROUP BY study_id, state"
    ).bindparams(sa.bindparam("ids", expanding=True))


def finished_trials(study: optuna.Study) -> int:
    """Complete plus pruned trials of ``study``, counted by the database (no trial loaded):
    one indexed ``COUNT`` on an RDB storage."""
    backend = _rdb(study._storage)
    if not isinstance(backend, RDBStorage):
        return len(study.get_trials(deepcopy=False, states=FINISHED))
    with backend.engine.connect() as conn:
        return int(conn.execute(_finished_query(), {"study_id": study._study_id}).scalar_one())


@functools.lru_cache(maxsize=1)
def _finished_query() -> Any:
    trials = models.TrialModel.__table__
    return (
        sa.select(sa.func.count())
        .select_from(trials)
        .where(trials.c.study_id == sa.bindparam("study_id"))
        .where(trials.c.state.in_(FINISHED))
    )


def check_database(study: optuna.Study) -> None:
    """Raise :class:`DatabaseFailure` when the study's SQLite file was removed or replaced
    since it was opened (writes then go to a file nobody will read again)."""
    stamp = getattr(_rdb(study._storage), "sqlite_file", None)
    if stamp is None:
        return
    path, inode = stamp
    try:
        current: int | None = os.stat(path).st_ino
    except FileNotFoundError:
        current = None
    if current != inode:
        raise DatabaseFailure(f"the SQLite file {path} was removed or replaced while the study ran; results written since are lost")


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's ``fail_stale_trials`` (its experimental warning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def beating(trial: optuna.Trial) -> ContextManager[None]:
    """Record the trial's heartbeat in a thread while the block runs, as ``study.optimize``
    does around an objective (for trials run through ask/tell; nothing without heartbeats)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, trial.study._storage)  # type: ignore[return-value]


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a live or frozen trial."""
    return trial._trial_id


def trial_system_attrs(trial: optuna.Trial | FrozenTrial) -> dict[str, Any]:
    """System attrs of a frozen trial, or of a live one (Optuna's cached storage answers
    without a query)."""
    if isinstance(trial, FrozenTrial):
        return trial.system_attrs
    return trial.study._storage.get_trial(trial._trial_id).system_attrs


def set_trial_user_attrs(trial: optuna.Trial, attrs: dict[str, object]) -> None:
    """``trial.set_user_attr`` for each item, in one transaction when the storage is
    hpsearch's (:class:`~hpsearch.store.rdb.RetryingRDBStorage`)."""
    bulk = getattr(_rdb(trial.storage), "set_trial_user_attrs", None)
    if bulk is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
    else:
        bulk(trial._trial_id, attrs)


def report_all(reports: list[tuple[optuna.Trial, int, float]]) -> None:
    """``trial.report(value, step)`` for every ``(trial, step, value)``: in one transaction when
    the storage is hpsearch's (a population reports all its members' epoch at once), and each
    trial's own record of its intermediate values, which its pruner reads, updated as
    ``Trial.report`` updates it. A step a trial already reported is ignored, as by ``Trial.report``."""
    if not reports:
        return
    bulk = getattr(_rdb(reports[0][0].storage), "set_trials_intermediate_values", None)
    found = [getattr(trial, "_cached_frozen_trial", None) for trial, _, _ in reports]
    records = [r for r in found if isinstance(r, FrozenTrial)]
    if bulk is None or len(records) != len(reports):
        for trial, step, value in reports:
            trial.report(value, step)
        return
    fresh = [(trial, int(step), float(value), record) for (trial, step, value), record in zip(reports, records)
             if int(step) not in record.intermediate_values]
    bulk([(trial._trial_id, step, value) for trial, step, value, _ in fresh])
    for _, step, value, record in fresh:
        record.intermediate_values[step] = value


class _OneRead:
    """``storage`` with the study's trial list read once (at the first read of trials or of a
    trial's system attrs) and served from that read afterwards; a trial system attr written
    through it (what Successive Halving and Hyperband write at each decision: the trial's rung)
    updates that list, any other write drops it. Everything else passes through."""

    _WRITES = ("set_", "create_", "delete_", "_set_", "_create_", "record_")

    def __init__(self, storage: Any, study: optuna.Study) -> None:
        self._storage = storage
        self._study_id = study._study_id
        self._study_name = study.study_name
        self._trials: list[FrozenTrial] | None = None
        self._position: dict[int, int] = {}

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._storage, name)
        if not name.startswith(self._WRITES) or not callable(found):
            return found

        def write(*args: Any, **kwargs: Any) -> Any:
            self._trials = None
            return found(*args, **kwargs)

        return write

    def _read(self) -> list[FrozenTrial]:
        if self._trials is None:
            self._trials = self._storage.get_all_trials(self._study_id, deepcopy=False)
            self._position = {t._trial_id: i for i, t in enumerate(self._trials)}
        return self._trials

    def get_study_id_from_name(self, study_name: str) -> int:
        """(Hyperband builds a study object per decision, which looks its id up by name.)"""
        return self._study_id if study_name == self._study_name else self._storage.get_study_id_from_name(study_name)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        if study_id != self._study_id:
            return self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        trials = self._read()
        trials = trials if states is None else [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        """(Successive Halving reads the deciding trial's rung from them; Optuna's cache would
        read the whole trial for it.)"""
        trials = self._read()
        pos = self._position.get(trial_id)
        if pos is None:
            return self._storage.get_trial_system_attrs(trial_id)
        return copy.deepcopy(trials[pos]._system_attrs)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_system_attr(trial_id, key, value)
        pos = self._position.get(trial_id)
        if self._trials is not None and pos is not None:  # (callers hold copies of the list, not the list)
            changed = copy.copy(self._trials[pos])
            changed._system_attrs = {**self._trials[pos]._system_attrs, key: value}
            self._trials[pos] = changed


@contextlib.contextmanager
def one_read_of_trials(study: optuna.Study, trials: Sequence[optuna.Trial] = ()) -> Iterator[None]:
    """While the block runs, ``study`` (and ``trials``, trials of it) read the study's trials
    once and see their own writes of trial system attrs in that read (see :class:`_OneRead`): a
    population's pruning decisions of one epoch, one per member, each read every unfinished
    trial of the study before, and the deciding trial again for its rung. Writes of other
    processes during the block are not seen, as a decision taken a moment earlier would not
    see them."""
    original = study._storage
    once = _OneRead(original, study)
    own = [(trial, trial.storage) for trial in trials]
    study._storage = once  # type: ignore[assignment]
    for trial, _ in own:
        trial.storage = once  # type: ignore[assignment]
    try:
        yield
    finally:
        study._storage = original
        for trial, storage in own:
            trial.storage = storage


def fail_if_running(study: optuna.Study, trial_id: int, reason: str) -> bool:
    """Mark the trial FAIL with ``fail_reason`` if it is still RUNNING; True if it was."""
    return _fail_if_in(study._storage, trial_id, TrialState.RUNNING, reason)


def _fail_if_in(storage: Any, trial_id: int, state: TrialState, reason: str) -> bool:
    """Mark the trial FAIL with ``fail_reason`` if it is in ``state``; True if it was."""
    if storage.get_trial(trial_id).state != state:
        return False
    storage.set_trial_user_attr(trial_id, "fail_reason", reason)
    storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return True


def waiting_trial_ids(study: optuna.Study) -> list[int]:
    """Storage ids of the study's WAITING (queued) trials."""
    return [t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]


def fail_waiting(study: optuna.Study, reason: str) -> int:
    """Mark every WAITING trial of ``study`` FAIL with ``fail_reason``; returns how many (a
    trial another process took up meanwhile is left to it)."""
    failed = 0
    for trial_id in waiting_trial_ids(study):
        try:
            failed += _fail_if_in(study._storage, trial_id, TrialState.WAITING, reason)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # taken up and finished by another process in between
    return failed


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attrs (hpsearch keeps the study file there, out of ``optuna studies``)."""
    return dict(study._storage.get_study_system_attrs(study._study_id))


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    """Set one study system attr."""
    study._storage.set_study_system_attr(study._study_id, key, value)


#: Study user attr of a linked study (``NAME:verify``): the name of the study it belongs to,
#: set when the linked study is created (``hpsearch verify``).
LINK_ATTR = "source_study"


def linked_study_names(study_name: str, url: str) -> list[str]:
    """``study_name`` and the studies linked to it by a stored link (user attr
    :data:`LINK_ATTR` naming it; never by a name pattern) in the database at ``url``;
    :class:`StudyNotFoundError` when ``study_name`` is missing."""
    from hpsearch.store.connect import connect

    studies = connect(url, create=False).get_all_studies()
    if not any(s.study_name == study_name for s in studies):
        valid = ", ".join(sorted(s.study_name for s in studies)) or "none"
        raise StudyNotFoundError(f"study {study_name!r} not found; studies in this database: {valid}")
    linked = (s.study_name for s in studies if s.study_name != study_name and s.user_attrs.get(LINK_ATTR) == study_name)
    return [study_name, *sorted(linked)]


def delete_studies(names: list[str], url: str) -> None:
    """Delete these studies (their trials, attrs and values) from the database at ``url``."""
    from hpsearch.store.connect import connect

    storage = connect(url, create=False)
    for name in names:
        optuna.delete_study(study_name=name, storage=storage)




def claim_once(study: optuna.Study, key: str) -> bool:
    """``True`` for exactly one caller per ``(study, key)``, also across processes and nodes:
    an INSERT of the study system attr ``key`` that only one writer wins (the table has a
    unique ``(study_id, key)`` constraint). Other storages fall back to check-then-set."""
    backend = _rdb(study._storage)
    if not isinstance(backend, RDBStorage):
        if key in study._storage.get_study_system_attrs(study._study_id):
            return False
        study._storage.set_study_system_attr(study._study_id, key, True)
        return True
    table = models.StudySystemAttributeModel.__table__
    try:
        with backend.engine.begin() as conn:
            conn.execute(table.insert().values(study_id=study._study_id, key=key, value_json="true"))
    except sa.exc.IntegrityError:
        return False
    return True


#: When this process first saw each RUNNING trial without a heartbeat (monotonic seconds).
_UNBEATEN_SINCE: dict[int, float] = {}


def fail_unbeaten(study: optuna.Study, grace: float) -> int:
    """Fail the RUNNING trials of ``study`` that have shown no heartbeat for ``grace`` seconds
    of this process's own clock since it first saw them (a process killed between creating a
    trial and its first heartbeat, which Optuna's stale check never sees); no wall-clock times
    of other machines are compared. Returns how many were failed."""
    import time

    backend = _rdb(study._storage)
    if not isinstance(backend, RDBStorage):
        return 0
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return 0
    ids = [t._trial_id for t in running]
    table = models.TrialHeartbeatModel.__table__
    with backend.engine.connect() as conn:
        beaten = {row[0] for row in conn.execute(sa.select(table.c.trial_id).where(table.c.trial_id.in_(ids)))}
    now = time.monotonic()
    failed = 0
    for tid in ids:
        if tid in beaten:
            _UNBEATEN_SINCE.pop(tid, None)
            continue
        since = _UNBEATEN_SINCE.setdefault(tid, now)
        if now - since >= grace and fail_if_running(study, tid, "the process running it died before its first heartbeat"):
            _UNBEATEN_SINCE.pop(tid, None)
            failed += 1
    return failed


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether every constraint value stored with ``trial`` (``Trial.set_constraint``, or the
    list older samplers stored) is satisfied (<= 0); a trial without constraints is feasible."""
    return all(v <= 0 for v in trial.constraints.values())
