"""Helpers of the fault tests: a slow study (about 0.3 s per epoch, so a signal or a kill lands
inside Lightning's fit), worker subprocesses, and polling the study database."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Callable, TypeVar

import optuna
from conftest import HPSEARCH, cli_env
from optuna.trial import FrozenTrial, TrialState

from hpsearch.store.queries import FINISHED  # noqa: F401 - used by the fault and worker tests

T = TypeVar("T")

SLOW_STUDY = {
    "study": "slow",
    "task": "custom_tasks:toy_regression",
    "max_epochs": 6,
    "search": {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "weight_decay": {"low": 1e-5, "high": 1e-2, "log": True}},
    "fixed": {"behaviour": "slow", "batch_size": 32, "width": 8},
}


def start(*args: str, storage: str | None = None, **env: str) -> subprocess.Popen:
    """Start ``hpsearch ARGS`` (storage URL through the environment), output captured."""
    extra = dict(env)
    if storage:
        extra["HPSEARCH_STORAGE"] = storage
    return subprocess.Popen([str(HPSEARCH), *args], env=cli_env(**extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], T], timeout: float, what: str, procs: tuple[subprocess.Popen, ...] = ()) -> T:
    """Poll ``condition`` every 0.1 s until it returns something truthy; fail after ``timeout``
    or when one of ``procs`` exits early."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}:\n{out[-3000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def storage(url: str) -> optuna.storages.RDBStorage:
    """One RDBStorage per URL for the whole test session (no connection pile-up)."""
    if url not in _STORAGES:
        kwargs = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
        _STORAGES[url] = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    return _STORAGES[url]


def trials(url: str, study: str = "slow") -> list[FrozenTrial]:
    """All trials of ``study`` (an empty list while it does not exist yet)."""
    try:
        return optuna.load_study(study_name=study, storage=storage(url)).get_trials()
    except KeyError:
        return []


def by_state(all_trials: list[FrozenTrial], *states: TrialState) -> list[FrozenTrial]:
    return [t for t in all_trials if t.state in states]


def in_fit(url: str, pid: int | None = None, epochs: int = 1, study: str = "slow") -> list[FrozenTrial]:
    """RUNNING trials (of worker ``pid`` if given) that reported at least ``epochs`` epochs."""
    return [
        t for t in by_state(trials(url, study), TrialState.RUNNING)
        if len(t.intermediate_values) >= epochs and (pid is None or str(t.user_attrs.get("worker", "")).endswith(f":{pid}"))
    ]


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def kill_all(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
            proc.wait()
