"""Dead workers, every time: a worker killed with a real SIGKILL at several moments leaves no
trial RUNNING and no queued copy WAITING once the survivors exit, on PostgreSQL and on SQLite,
with ``--workers 3``. Each moment is its own test and runs once per backend in the suite; set
``$HPSEARCH_FAULT_ROUNDS`` to repeat each one (the closing figures of issue 11 came from
several rounds) so that a timing-dependent failure shows.

Moments:

* ``no-heartbeat``: a worker that created its trial and died before its first heartbeat (a
  process that asks the study for a trial through plain Optuna, which records no heartbeat);
* ``trial-start``: a pool worker whose trial is RUNNING but has not finished an epoch;
* ``mid-epoch``: a pool worker whose trial reported at least one epoch;
* ``after-target``: a pool worker whose trial is still RUNNING when the study reaches its target.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from conftest import cli_env, run_cli
from faults import FINISHED, SLOW_STUDY, by_state, finish, kill_all, start, trials, wait_for
from optuna.trial import FrozenTrial, TrialState

TARGET = 6
HEARTBEAT = ["--heartbeat", "1", "--grace", "2"]
MOMENTS = ["no-heartbeat", "trial-start", "mid-epoch", "after-target"]

# A worker that dies before its first heartbeat: plain Optuna (no heartbeat) creates the study
# and a RUNNING trial, then the process is killed; the pool starts after it.
ASK_AND_HANG = """
import sys, time, optuna
study = optuna.create_study(study_name="slow", storage=sys.argv[1], direction="minimize")
trial = study.ask()
print(trial.number, flush=True)
time.sleep(600)
"""


def rounds(backend: str) -> int:
    return int(os.environ.get("HPSEARCH_FAULT_ROUNDS", "1"))


@dataclass
class Round:
    victim: FrozenTrial
    killed_at: datetime.datetime
    all_trials: list[FrozenTrial]


def _worker_pid(trial: FrozenTrial) -> int:
    return int(str(trial.user_attrs["worker"]).rsplit(":", 1)[1])


def _running(url: str, min_epochs: int = 0, max_epochs: int | None = None) -> list[FrozenTrial]:
    return [
        t for t in by_state(trials(url), TrialState.RUNNING)
        if "worker" in t.user_attrs and len(t.intermediate_values) >= min_epochs
        and (max_epochs is None or len(t.intermediate_values) <= max_epochs)
    ]


def _pick_victim(url: str, moment: str, pool: subprocess.Popen) -> FrozenTrial:
    """Wait for the moment and return the trial whose worker is to be killed."""
    if moment == "trial-start":
        return wait_for(lambda: next(iter(_running(url, 0, 0)), None), 120, "a trial at its start", (pool,))
    if moment == "mid-epoch":
        return wait_for(lambda: next(iter(_running(url, 1, SLOW_STUDY["max_epochs"] - 2)), None), 120, "a trial mid-run", (pool,))
    assert moment == "after-target"

    def after_target() -> FrozenTrial | None:
        all_trials = trials(url)
        running = [t for t in by_state(all_trials, TrialState.RUNNING) if "worker" in t.user_attrs]
        return running[0] if len(by_state(all_trials, *FINISHED)) >= TARGET and running else None

    return wait_for(after_target, 180, "a trial still running at the target", (pool,))


def _kill_round(url: str, study: Path, moment: str) -> Round:
    hang = None
    if moment == "no-heartbeat":
        hang = subprocess.Popen([sys.executable, "-c", ASK_AND_HANG, url], stdout=subprocess.PIPE, text=True, env=cli_env())
        number = int(hang.stdout.readline())  # type: ignore[union-attr]
        os.kill(hang.pid, signal.SIGKILL)
        killed_at = datetime.datetime.now()
        hang.wait()
        victim = next(t for t in trials(url) if t.number == number)
    pool = start("optimize", str(study), "--workers", "3", *HEARTBEAT, storage=url)
    try:
        if hang is None:
            victim = _pick_victim(url, moment, pool)
            os.kill(_worker_pid(victim), signal.SIGKILL)
            killed_at = datetime.datetime.now()
        rc, out, err = finish(pool, 300)
    finally:
        kill_all(pool, *([hang] if hang else []))
    assert rc == 0, f"{moment}: exit {rc}\n{out[-2000:]}\n{err[-3000:]}"
    return Round(victim, killed_at, trials(url))


def _check_clean(r: Round, moment: str) -> float:
    """Nothing RUNNING or WAITING, the killed trial FAIL and its copy finished; returns the
    seconds from the kill to the copy finishing."""
    left = by_state(r.all_trials, TrialState.RUNNING, TrialState.WAITING)
    assert not left, f"{moment}: left {[(t.number, t.state.name) for t in left]}"
    dead = next(t for t in r.all_trials if t.number == r.victim.number)
    assert dead.state == TrialState.FAIL, f"{moment}: the killed trial ended {dead.state.name}"
    copy = next(t for t in r.all_trials if t.system_attrs.get("failed_trial") == r.victim.number)
    assert copy.state in FINISHED, f"{moment}: its copy ended {copy.state.name}"
    # The copy keeps every value the dead trial had sampled; a trial killed while sampling (at
    # its start) leaves the rest to be sampled afresh by the copy.
    assert dead.params.items() <= copy.params.items(), f"{moment}: {dead.params} not kept in {copy.params}"
    assert len(by_state(r.all_trials, *FINISHED)) >= TARGET
    assert copy.datetime_complete is not None
    return (copy.datetime_complete - r.killed_at).total_seconds()


def _run_rounds(url_for_round, write_study, backend: str, moment: str) -> None:
    for i in range(rounds(backend)):
        url = url_for_round()
        study = write_study(f"{moment}-{i}.yaml", **SLOW_STUDY, trials=TARGET)
        seconds = _check_clean(_kill_round(url, study, moment), moment)
        print(f"\n{backend} {moment} round {i}: clean; kill -> copy finished {seconds:.1f} s")


# One test per moment, so that pytest-xdist spreads the moments over its workers.
@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
def test_killed_workers_leave_nothing_running_or_waiting_on_postgres(pg_server, write_study, moment: str) -> None:
    _run_rounds(lambda: pg_server.admin_url(pg_server.new_database()), write_study, "postgresql", moment)


@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
def test_killed_workers_leave_nothing_running_or_waiting_on_sqlite(tmp_path, write_study, moment: str) -> None:
    counter = iter(range(100))
    _run_rounds(lambda: f"sqlite:///{tmp_path / f'db{next(counter)}.db'}", write_study, "sqlite", moment)


@pytest.mark.slow
def test_a_killed_verify_leaves_no_running_run(tmp_path, write_study) -> None:
    url = f"sqlite:///{tmp_path / 'verify.db'}"
    study = write_study(**SLOW_STUDY, trials=2, pruner={"type": "none"})
    assert run_cli("optimize", str(study), "--storage", url).returncode == 0
    args = ["verify", "slow", "--top", "1", "--seeds", "2", "--heartbeat", "1", "--grace", "2", "--storage", url]
    proc = start(*args)
    try:
        wait_for(lambda: by_state(trials(url, "slow:verify"), TrialState.RUNNING), 120, "a verification run", (proc,))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_all(proc)
    assert by_state(trials(url, "slow:verify"), TrialState.RUNNING)  # the fault is real
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    runs = trials(url, "slow:verify")
    assert not by_state(runs, TrialState.RUNNING, TrialState.WAITING)
    assert len(by_state(runs, TrialState.COMPLETE)) == 2


def test_a_verify_killed_between_queueing_and_starting_a_run_leaves_nothing_queued(tmp_path, write_study) -> None:
    """verify queues a run and takes it up at once; a SIGKILL between the two leaves the run
    WAITING (the state below, written as that process wrote it). The next verify fails it and
    finishes instead of waiting for it (it used to spin in its start-up checks for ever)."""
    from hpsearch.analysis.verify import ORPHAN_REASON

    url = f"sqlite:///{tmp_path / 'verify.db'}"
    study = write_study(**SLOW_STUDY, trials=2, pruner={"type": "none"})
    assert run_cli("optimize", str(study), "--storage", url).returncode == 0
    best = optuna.load_study(study_name="slow", storage=url).best_trial
    vstudy = optuna.create_study(study_name="slow:verify", storage=url, direction="minimize")
    vstudy.enqueue_trial(dict(best.params), user_attrs={"config": "left", "seed": 0, "rank": 1, "split": "test"})
    again = run_cli("verify", "slow", "--top", "1", "--seeds", "2", *HEARTBEAT, "--storage", url, timeout=180)
    assert again.returncode == 0, again.stderr
    runs = trials(url, "slow:verify")
    assert not by_state(runs, TrialState.RUNNING, TrialState.WAITING)
    assert len(by_state(runs, TrialState.COMPLETE)) == 2
    (orphan,) = by_state(runs, TrialState.FAIL)
    assert orphan.user_attrs["fail_reason"] == ORPHAN_REASON


def test_settle_stops_when_the_queued_trials_are_not_taken_up(tmp_path) -> None:
    """A pass that takes none of the queued trials ends ``settle`` (no busy loop), leaving them queued."""
    import threading

    from hpsearch.run.settle import settle
    from hpsearch.store.connect import connect
    from hpsearch.store.heartbeat import Heartbeat

    beat = Heartbeat(1, 2)
    study = optuna.create_study(study_name="q", storage=connect(f"sqlite:///{tmp_path / 'q.db'}", heartbeat=beat, requeue=False))
    study.enqueue_trial({"x": 1.0})
    calls: list[int] = []
    done = threading.Event()
    worker = threading.Thread(target=lambda: (settle(study, beat, calls.append), done.set()), daemon=True)
    worker.start()
    assert done.wait(60), "settle kept looping over a queued trial it could not run"
    assert calls == [1]
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING]


def test_studies_lists_waiting_trials(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    study = optuna.create_study(study_name="queued", storage=url)
    study.enqueue_trial({"x": 1.0})
    out = run_cli("studies", "--storage", url)
    assert out.returncode == 0, out.stderr
    header, _, row = out.stdout.splitlines()[:3]
    assert "waiting" in header.split()
    assert row.split()[header.split().index("waiting")] == "1"
