"""Storage errors by kind, caused for real: a SQLite file deleted mid-study, one that is
read-only (``chattr +i``, which holds even for root), a file-size limit that makes the
database's writes fail (disk full as the process sees it), and a PostgreSQL server that stays
down past the retry window. Each ends the run promptly with exit 1 and a line naming the cause,
never a traceback."""

from __future__ import annotations

import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_cli
from faults import SLOW_STUDY, finish, in_fit, kill_all, start, wait_for


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    assert len([ln for ln in err.splitlines() if ln.strip()]) <= 3, err[-3000:]


@pytest.mark.slow
def test_a_deleted_sqlite_file_ends_the_run_with_one_line(tmp_path, write_study) -> None:
    db = tmp_path / "gone.db"
    url = f"sqlite:///{db}"
    proc = start("optimize", str(write_study(**SLOW_STUDY, trials=6)), "--storage", url)
    try:
        wait_for(lambda: in_fit(url, proc.pid), 120, "a trial inside fit", (proc,))
        for path in tmp_path.glob("gone.db*"):
            path.unlink()
        removed = time.monotonic()
        rc, out, err = finish(proc, 120)
    finally:
        kill_all(proc)
    print(f"\nSQLite file removed -> exit {rc} after {time.monotonic() - removed:.1f} s")
    assert rc == 1, err[-3000:]
    assert "was removed or replaced" in err
    _no_traceback(err)


def _immutable(path: Path, on: bool) -> bool:
    """``chattr +i``/``-i``; False where the file system or the user cannot."""
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
def test_a_read_only_sqlite_file_is_read_but_not_written(tmp_path, write_study) -> None:
    db = tmp_path / "frozen.db"
    url = f"sqlite:///{db}"
    study = write_study(**SLOW_STUDY, trials=1)
    assert run_cli("optimize", str(study), "--storage", url).returncode == 0
    if not _immutable(db, True):
        pytest.skip("chattr +i is not available here (needs root and an ext2/3/4-like file system)")
    try:
        best = run_cli("best", "slow", "--storage", url)
        started = time.monotonic()
        again = run_cli("optimize", str(write_study(**SLOW_STUDY, trials=3)), "--storage", url)
        elapsed = time.monotonic() - started
    finally:
        _immutable(db, False)
    print(f"\nread-only SQLite file -> exit {again.returncode} after {elapsed:.1f} s (start-up included)")
    assert best.returncode == 0, best.stderr[-3000:]
    assert again.returncode == 1, again.stderr[-3000:]
    assert "database error" in again.stderr and "readonly" in again.stderr, again.stderr[-3000:]
    _no_traceback(again.stderr)


def _limit_file_size(limit: int):  # noqa: ANN202 - a preexec_fn
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write instead of a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_a_database_that_cannot_grow_ends_the_run_with_one_line(tmp_path, write_study) -> None:
    from conftest import HPSEARCH, cli_env

    db = tmp_path / "full.db"
    url = f"sqlite:///{db}"
    study = write_study(**SLOW_STUDY, trials=1)
    assert run_cli("optimize", str(study), "--storage", url).returncode == 0  # schema and a first trial
    limit = max(p.stat().st_size for p in Path(tmp_path).glob("full.db*")) + 16 * 1024
    study = write_study(**SLOW_STUDY, trials=40)
    started = time.monotonic()
    proc = subprocess.run(
        [str(HPSEARCH), "optimize", str(study), "--storage", url], env=cli_env(), capture_output=True, text=True,
        timeout=300, preexec_fn=_limit_file_size(limit),
    )
    print(f"\nfile-size limit reached -> exit {proc.returncode} after {time.monotonic() - started:.1f} s (start-up included)")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "database error" in proc.stderr
    _no_traceback(proc.stderr)


@pytest.mark.slow
def test_a_server_down_past_the_retry_window_ends_the_run_with_one_line(pg_server, write_study) -> None:
    url = pg_server.admin_url(pg_server.new_database())
    proc = start("optimize", str(write_study(**SLOW_STUDY, trials=6)), storage=url, HPSEARCH_DB_RETRY_SECONDS="8")
    try:
        wait_for(lambda: in_fit(url, proc.pid), 120, "a trial inside fit", (proc,))
        pg_server.stop("fast")
        stopped = time.monotonic()
        try:
            rc, out, err = finish(proc, 120)
        finally:
            pg_server.start()
            pg_server.wait_ready()
    finally:
        kill_all(proc)
    elapsed = time.monotonic() - stopped
    print(f"\nserver down, retry window 8 s -> exit {rc} after {elapsed:.1f} s")
    assert rc == 1, err[-3000:]
    assert "database unreachable" in err
    assert elapsed < 60
    _no_traceback(err)

