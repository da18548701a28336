"""Local worker pool: ``hpsearch optimize FILE --workers K`` runs K worker processes on this
node, all on the same study and database.

Each worker is a real subprocess (``python -m hpsearch.cli optimize FILE --worker-index i``)
in its own session, so a Ctrl-C reaches the pool once and is forwarded to every worker, and a
worker killed outright (SIGKILL, OOM killer) does not take the others down: its trial is
failed and re-run by a survivor through the heartbeat. The storage URL reaches the workers
through the environment, never argv (argv is visible in ``ps``).

Resources: torch threads per worker = cores // K (at least 1), so K workers do not
oversubscribe the CPU; with G visible GPUs, worker i trains on GPU ``i mod G``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from hpsearch.store.urls import STORAGE_ENV, STORAGE_FILE_ENV

if TYPE_CHECKING:
    import optuna

    from hpsearch.study.definition import StudyDefinition

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Most worker processes ``--workers`` starts on one node (each is a full Python process with
#: torch, about 400 MB); more workers belong on more nodes.
MAX_WORKERS = 64


def check_workers(workers: int) -> int:
    """``workers`` if it is between 1 and :data:`MAX_WORKERS`, else :class:`ConfigError`."""
    from hpsearch.errors import ConfigError

    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(
            f"--workers: {workers} is outside 1..{MAX_WORKERS}, the limit of worker processes on one node "
            "(each holds its own torch, ~400 MB); run more nodes on one PostgreSQL database instead"
        )
    return workers


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_worker(cores: int, workers: int) -> int:
    """Torch threads for each of ``workers`` processes sharing ``cores`` cores (at least 1)."""
    return max(1, cores // max(1, workers))


def gpu_for_worker(index: int, gpus: int) -> int | None:
    """The GPU (index among the visible ones) of worker ``index`` with ``gpus`` visible GPUs:
    ``index mod gpus``; ``None`` without GPUs."""
    if index < 0:
        raise ValueError("worker index must be >= 0")
    return index % gpus if gpus > 0 else None


def visible_gpus(env: Mapping[str, str]) -> list[str]:
    """The GPU ids visible to this process: ``$CUDA_VISIBLE_DEVICES`` if set, else
    ``0..count-1`` from torch (an empty list on CPU-only machines)."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover - a broken CUDA install means "no GPU" here
        return []


def worker_env(base: Mapping[str, str], index: int, workers: int, cores: int, gpus: Sequence[str], storage_url: str) -> dict[str, str]:
    """Environment of worker ``index``: the storage URL, its thread count and its GPU."""
    env = {k: v for k, v in base.items() if k != STORAGE_FILE_ENV}
    env[STORAGE_ENV] = storage_url
    threads = str(threads_per_worker(cores, workers))
    for var in THREAD_ENV_VARS:
        env[var] = threads
    gpu = gpu_for_worker(index, len(gpus))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus[gpu]
    return env


def worker_argv(study_file: str, index: int, options: Sequence[str], root_options: Sequence[str] = ()) -> list[str]:
    """Command line of worker ``index``; ``options`` are forwarded optimize options (never
    the storage URL)."""
    return [sys.executable, "-m", "hpsearch.cli", *root_options, "optimize", study_file, *options, "--worker-index", str(index), "--pool-worker"]


@dataclass
class PoolResult:
    """How the workers ended: exit codes by worker index, and the signal that stopped the
    pool (``None`` if it was not stopped)."""

    returncodes: list[int]
    signal: int | None = None
    failed: list[int] = field(default_factory=list)


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def run_pool(argvs: Sequence[Sequence[str]], envs: Sequence[Mapping[str, str]]) -> PoolResult:
    """Start one process per argv (all at once), forward SIGINT/SIGTERM to them, and wait for
    all of them. Output goes straight to this process's stdout/stderr."""
    received: list[int] = []
    procs: list[subprocess.Popen] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for argv, env in zip(argvs, envs):
            procs.append(subprocess.Popen(list(argv), env=dict(env), start_new_session=True))
            if received:  # a signal arrived while starting: stop the new one too
                procs[-1].send_signal(received[0])
        codes = [proc.wait() for proc in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return PoolResult(codes, received[0] if received else None, [i for i, c in enumerate(codes) if c != 0])


@dataclass(frozen=True)
class PoolStart:
    """The study when the pool starts its workers, for a banner."""

    finished: int
    workers: int
    threads: int
    gpus: list[str]


@dataclass
class PoolOutcome:
    """How a local pool ended: the workers' exits, the study afterwards and its target."""

    result: PoolResult
    study: "optuna.Study"
    counts: Counter
    target: int

    @property
    def finished(self) -> int:
        return self.counts["complete"] + self.counts["pruned"]

    @property
    def short_of_target(self) -> bool:
        """A worker failed and the study holds fewer finished trials than its target."""
        return bool(self.result.failed) and self.finished < self.target

    @property
    def exit_code(self) -> int:
        """128 + signal when stopped by SIGINT/SIGTERM; when a worker failed and the study is
        short of its target, the workers' common exit code, else 1; otherwise 0."""
        if self.result.signal is not None:
            return 128 + self.result.signal
        if self.short_of_target:
            codes = {self.result.returncodes[i] for i in self.result.failed}
            return codes.pop() if len(codes) == 1 and min(codes) > 0 else 1
        return 0


def run_local_pool(
    definition: "StudyDefinition",
    url: str,
    workers: int,
    forwarded: Mapping[str, object],
    root_options: Sequence[str] = (),
    first_index: int = 0,
    on_start: Callable[[PoolStart], None] | None = None,
    allow_changes: bool = False,
) -> PoolOutcome:
    """``hpsearch optimize --workers K``: open the study of ``definition`` (checked once, by
    the caller) once (schema, study row), start K workers and wait for them; ``on_start`` is
    called before they start. Each worker parses and checks the study file once, at its start.

    Worker i gets the global index ``first_index + i`` (sampler seed offset; with
    ``--workers K --worker-index J`` on every node, pass ``first_index = J * K``) and the local
    index i for its GPU. Everything is checked before the study is created or changed: the
    worker count, the sampler and pruner, the task's data, the study's definition (a changed
    one only with ``allow_changes``)."""
    from hpsearch.run.runner import create_or_load, preflight
    from hpsearch.store.queries import load_study, study_state_counts
    from hpsearch.study.algorithms import build_pruner, build_sampler
    from hpsearch.tasks.checked import load_checked_data

    check_workers(workers)
    config = definition.config
    # Built here to check them before anything is written; the workers sample with their own.
    sampler = build_sampler(config.sampler, config.seed, definition.path, len(definition.metrics), config.population)
    pruner = None if definition.multi else build_pruner(config.pruner, config.max_epochs, definition.path)
    load_checked_data(definition.task, config.seed, definition.path)
    preflight(definition, url)
    study = create_or_load(definition, url, pruner=pruner, allow_changes=allow_changes, sampler=sampler)
    cores = available_cores()
    gpus = visible_gpus(os.environ)
    if on_start is not None:
        counts = study_state_counts(study)
        on_start(PoolStart(counts["complete"] + counts["pruned"], workers, threads_per_worker(cores, workers), gpus))
    options: list[str] = []
    for name, value in forwarded.items():
        if value is True:  # a flag
            options.append(name)
        elif value is not None and value is not False:
            options += [name, str(value)]
    argvs = [worker_argv(definition.path, first_index + i, options, root_options) for i in range(workers)]
    envs = [worker_env(os.environ, i, workers, cores, gpus, url) for i in range(workers)]
    result = run_pool(argvs, envs)
    study = load_study(config.study, url)  # a fresh copy: the workers wrote the trials
    return PoolOutcome(result, study, study_state_counts(study), config.trials)
