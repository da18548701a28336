"""Faults 2-4, caused for real: SIGKILL of a worker mid-trial, SIGINT/SIGTERM inside
Lightning's fit, and a PostgreSQL restart while workers run."""

from __future__ import annotations

import datetime
import os
import signal
import time

import pytest
from conftest import run_cli
from faults import FINISHED, SLOW_STUDY, by_state, finish, in_fit, kill_all, start, trials, wait_for
from optuna.trial import TrialState


def test_sigkill_mid_trial_is_retried_with_same_params_and_resumes_from_checkpoint(pg_url, write_study, tmp_path) -> None:
    study = write_study(**SLOW_STUDY, trials=6)
    ckpt_dir = tmp_path / "checkpoints"
    args = ["optimize", str(study), "--heartbeat", "1", "--grace", "2", "--checkpoint-dir", str(ckpt_dir)]
    victim_proc = start(*args, "--worker-index", "0", storage=pg_url)
    survivor = start(*args, "--worker-index", "1", storage=pg_url)
    try:
        # the victim is inside fit with >= 2 epochs done and checkpointed
        def victim_ready():
            for t in in_fit(pg_url, victim_proc.pid, epochs=2):
                if list((ckpt_dir / "slow").glob(f"*/trial-{t.number}.ckpt")):  # DIR/<study>/<key>/
                    return t
            return None

        victim = wait_for(victim_ready, 180, "the victim's trial to pass epoch 2", (victim_proc, survivor))
        os.kill(victim_proc.pid, signal.SIGKILL)
        killed_at = datetime.datetime.now()
        victim_proc.wait()
        rc, out, err = finish(survivor)
    finally:
        kill_all(victim_proc, survivor)
    assert rc == 0, err[-3000:]

    all_trials = trials(pg_url)
    dead = next(t for t in all_trials if t.number == victim.number)
    assert dead.state == TrialState.FAIL
    retry = next(t for t in all_trials if t.system_attrs.get("failed_trial") == victim.number)
    assert retry.state == TrialState.COMPLETE, retry
    assert retry.params == victim.params
    assert retry.user_attrs["seed"] == victim.user_attrs["seed"]
    assert retry.user_attrs["worker"].endswith(f":{survivor.pid}")
    resumed = retry.user_attrs["resumed_from_epoch"]
    assert len(victim.intermediate_values) <= resumed < SLOW_STUDY["max_epochs"]
    # it trained only the remaining epochs: its first reported epoch is the first one not done
    assert min(retry.intermediate_values) == resumed
    assert retry.user_attrs["epochs"] == SLOW_STUDY["max_epochs"]
    assert not by_state(all_trials, TrialState.RUNNING, TrialState.WAITING)
    assert len(by_state(all_trials, *FINISHED)) >= 6
    assert not list(ckpt_dir.rglob("*.ckpt"))  # removed when the trials finished
    recovery = (retry.datetime_start - killed_at).total_seconds()
    print(f"\nSIGKILL recovery (kill -> retried trial running, heartbeat 1 s, grace 2 s): {recovery:.1f} s")


@pytest.mark.slow
def test_sigint_and_sigterm_fail_the_running_trial_and_a_rerun_continues(sqlite_url, write_study) -> None:
    study = write_study(**SLOW_STUDY, trials=2)
    # SIGINT to a single worker inside Lightning's fit
    proc = start("optimize", str(study), "--storage", sqlite_url)
    try:
        running = wait_for(lambda: in_fit(sqlite_url, proc.pid), 120, "a trial inside fit", (proc,))
        proc.send_signal(signal.SIGINT)
        rc, out, err = finish(proc, 60)
    finally:
        kill_all(proc)
    assert rc == 130, err[-3000:]
    assert "interrupted by SIGINT" in err
    failed = next(t for t in trials(sqlite_url) if t.number == running[0].number)
    assert failed.state == TrialState.FAIL
    assert "SIGINT" in failed.user_attrs["fail_reason"]

    # SIGTERM to a local pool: forwarded to both workers, both trials fail, exit 143
    pool = start("optimize", str(study), "--storage", sqlite_url, "--workers", "2")
    try:
        running = wait_for(lambda: len(in_fit(sqlite_url)) == 2 and in_fit(sqlite_url), 180, "two trials inside fit", (pool,))
        pool.send_signal(signal.SIGTERM)
        rc, out, err = finish(pool, 60)
    finally:
        kill_all(pool)
    assert rc == 143, err[-3000:]
    assert "interrupted by SIGTERM" in err
    for trial in running:
        stored = next(t for t in trials(sqlite_url) if t.number == trial.number)
        assert stored.state == TrialState.FAIL
        assert "SIGTERM" in stored.user_attrs["fail_reason"]
    assert not by_state(trials(sqlite_url), TrialState.RUNNING)

    # the same command again continues the study to its target
    before = len(by_state(trials(sqlite_url), *FINISHED))
    result = run_cli("optimize", str(study), "--storage", sqlite_url)
    assert result.returncode == 0, result.stderr[-3000:]
    after = trials(sqlite_url)
    assert len(by_state(after, *FINISHED)) == 2 > before
    assert len(by_state(after, TrialState.FAIL)) == 3
    assert not by_state(after, TrialState.RUNNING)


def test_postgres_restart_mid_study_loses_no_trial(pg_server, write_study) -> None:
    url = pg_server.admin_url(pg_server.new_database())
    study = write_study(**{**SLOW_STUDY, "max_epochs": 4}, trials=6)
    pool = start("optimize", str(study), "--workers", "2", "--heartbeat", "1", "--grace", "20", storage=url)
    try:
        wait_for(lambda: len(by_state(trials(url), *FINISHED)) >= 1 and len(in_fit(url)) == 2, 180,
                 "one finished trial and two inside fit", (pool,))
        pg_server.stop("fast")
        time.sleep(3)
        pg_server.start()
        rc, out, err = finish(pool, 240)
    finally:
        kill_all(pool)
    assert rc == 0, err[-3000:]
    assert "database unavailable" in err and "database reachable again" in err
    all_trials = trials(url)
    assert sorted(t.number for t in all_trials) == list(range(len(all_trials)))  # none twice
    assert not by_state(all_trials, TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING)
    assert 6 <= len(by_state(all_trials, *FINISHED)) <= 6 + 2 - 1
