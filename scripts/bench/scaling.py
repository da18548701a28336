"""Parallel scaling on PostgreSQL: 1 vs K local workers on a 1-second sleep objective.

The same study (task ``sleep_task:make_task``: each trial sleeps ``--sleep`` seconds inside a
real Lightning fit, random sampler, no pruner) runs with ``hpsearch optimize --workers 1`` for
``--single-trials`` trials and with ``--workers K`` for ``--trials`` trials, each on a fresh
database of one PostgreSQL server. Trials/minute is measured over the trials' own span (first
start to last completion; process start-up excluded). The K-worker run is checked: no FAIL or
RUNNING trial left, no trial number twice, finished count in [trials, trials + K - 1].

PostgreSQL: a private server on 127.0.0.1 started from tests/pg.py for the run (two fresh
databases), removed afterwards. Ends with ``RESULT scaling_<K>_workers_sleep <ratio> goal >= 7`` and
``RESULT scaling_<K>_workers_bad_trials <failed + duplicated> goal <= 0``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import yaml
from common import result
from optuna.trial import TrialState

HPSEARCH = Path(sys.executable).parent / "hpsearch"
BENCH_DIR = Path(__file__).resolve().parent


def write_study(directory: Path, trials: int, sleep: float) -> Path:
    path = directory / "sleep.yaml"
    path.write_text(yaml.safe_dump({
        "study": "sleep", "task": "sleep_task:make_task", "trials": trials, "max_epochs": 1, "seed": 0,
        "sampler": {"type": "random"}, "pruner": {"type": "none"},
        "search": {"learning_rate": {"low": 1e-4, "high": 1e-1, "log": True}},
        "fixed": {"sleep_seconds": sleep},
    }))
    return path


def run(url: str, directory: Path, workers: int, trials: int, sleep: float) -> tuple[float, list[optuna.trial.FrozenTrial]]:
    """Run the study with ``workers`` local workers; returns (trials/min over the span, trials)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HPSEARCH_STORAGE": url}
    started = time.perf_counter()
    proc = subprocess.run([str(HPSEARCH), "optimize", str(write_study(directory, trials, sleep)), "--workers", str(workers)],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"hpsearch optimize --workers {workers} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    all_trials = optuna.load_study(study_name="sleep", storage=url).get_trials()
    done = [t for t in all_trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    rate = 60 * len(done) / span
    print(f"--workers {workers}: {len(done)} finished trials, {rate:.1f} trials/min over the trials' span ({span:.1f} s; "
          f"whole command {wall:.1f} s)", flush=True)
    return rate, all_trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=2000, help="target of the K-worker run")
    parser.add_argument("--single-trials", type=int, default=60, help="target of the 1-worker run")
    parser.add_argument("--sleep", type=float, default=1.0)
    args = parser.parse_args()
    from hpsearch.testing import pg

    server = pg.start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            one, _ = run(server.admin_url(server.new_database()), Path(tmp), 1, args.single_trials, args.sleep)
            many, trials = run(server.admin_url(server.new_database()), Path(tmp), args.workers, args.trials, args.sleep)
    finally:
        pg.remove_server(server)
    states = Counter(t.state.name for t in trials)
    numbers = Counter(t.number for t in trials)
    duplicated = sum(n - 1 for n in numbers.values() if n > 1)
    finished = states["COMPLETE"] + states["PRUNED"]
    print(f"{args.workers} workers: states {dict(states)}, duplicated trial numbers {duplicated}, finished {finished} "
          f"(documented bound {args.trials}..{args.trials + args.workers - 1})")
    bad = states["FAIL"] + states["RUNNING"] + duplicated + (0 if args.trials <= finished <= args.trials + args.workers - 1 else 1)
    print(f"ratio {args.workers} workers / 1 worker: {many / one:.2f}")
    result(f"scaling_{args.workers}_workers_sleep", many / one, ">=", 7)
    result(f"scaling_{args.workers}_workers_bad_trials", bad, "<=", 0, ".0f")


if __name__ == "__main__":
    main()
