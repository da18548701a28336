"""Local worker pools: resource assignment (pure functions), SQLite with 4 workers, and
4 workers x 40 trials on PostgreSQL."""

from __future__ import annotations

import pytest
from conftest import run_cli
from faults import FINISHED, by_state, trials
from optuna.trial import TrialState

from hpsearch.run.workers import gpu_for_worker, threads_per_worker, worker_argv, worker_env
from hpsearch.store.urls import STORAGE_ENV, STORAGE_FILE_ENV

FAST_STUDY = {
    "study": "fast",
    "max_epochs": 1,
    "fixed": {"optimizer": "adamw", "batch_size": 256, "hidden_units": 8, "hidden_layers": 1},
}


@pytest.mark.parametrize(
    ("index", "gpus", "expected"), [(0, 0, None), (5, 0, None), (0, 1, 0), (3, 1, 0), (0, 2, 0), (1, 2, 1), (2, 2, 0), (5, 4, 1), (3, 8, 3)]
)
def test_worker_i_uses_gpu_i_mod_g(index: int, gpus: int, expected: int | None) -> None:
    assert gpu_for_worker(index, gpus) == expected


def test_gpu_for_worker_rejects_negative_index() -> None:
    with pytest.raises(ValueError):
        gpu_for_worker(-1, 2)


@pytest.mark.parametrize(("cores", "workers", "threads"), [(2, 1, 2), (2, 2, 1), (2, 4, 1), (16, 4, 4), (16, 3, 5), (1, 1, 1)])
def test_threads_per_worker_do_not_oversubscribe(cores: int, workers: int, threads: int) -> None:
    assert threads_per_worker(cores, workers) == threads
    assert threads * workers <= max(cores, workers)


def test_worker_env_assigns_gpus_threads_and_passes_the_url_outside_argv() -> None:
    url = "postgresql+psycopg2://u:topsecret@db/hp"
    base = {"PATH": "/bin", STORAGE_FILE_ENV: "/run/secret"}
    envs = [worker_env(base, i, 3, 12, ["4", "6"], url) for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["4", "6", "4"]
    assert all(e["OMP_NUM_THREADS"] == "4" and e[STORAGE_ENV] == url and STORAGE_FILE_ENV not in e for e in envs)
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(base, 0, 2, 2, [], url)
    argv = worker_argv("s.yaml", 2, ["--trials", "5"])
    assert argv[argv.index("--worker-index") + 1] == "2" and "--trials" in argv
    assert not any("topsecret" in a for a in argv)


@pytest.mark.slow
def test_sqlite_with_four_workers_is_not_locked(sqlite_url, write_study) -> None:
    # 40 epochs (~0.3 s) per trial, so that the study outlasts the workers' staggered start-up
    # and all four write to the file at once (with 1 epoch the first worker could finish all 12
    # trials before the last one had imported torch).
    study = write_study(**{**FAST_STUDY, "max_epochs": 40}, trials=12)
    result = run_cli("optimize", str(study), "--storage", sqlite_url, "--workers", "4", "--heartbeat", "1", "--grace", "3")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "locked" not in output.lower()
    all_trials = trials(sqlite_url, "fast")
    assert not by_state(all_trials, TrialState.FAIL, TrialState.RUNNING)
    assert 12 <= len(by_state(all_trials, *FINISHED)) <= 12 + 4 - 1
    assert {line.split()[0] for line in result.stdout.splitlines() if line.startswith("[w")} == {"[w0]", "[w1]", "[w2]", "[w3]"}


def test_four_workers_forty_trials_on_postgres(pg_url, write_study) -> None:
    study = write_study(**FAST_STUDY, trials=40)
    result = run_cli("optimize", str(study), "--workers", "4", "--heartbeat", "1", "--grace", "3", HPSEARCH_STORAGE=pg_url)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    all_trials = trials(pg_url, "fast")
    numbers = [t.number for t in all_trials]
    assert len(numbers) == len(set(numbers)) and sorted(numbers) == list(range(len(numbers)))
    assert not by_state(all_trials, TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING)
    assert 40 <= len(by_state(all_trials, *FINISHED)) <= 40 + 4 - 1
    assert f"{len(by_state(all_trials, *FINISHED))}/40 finished" in result.stdout
