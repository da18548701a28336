"""Measure local worker pools on this machine, side by side in one run.

    python scripts/bench/workers.py throughput [--trials 24] [--max-epochs 10]
    python scripts/bench/workers.py recovery   [--heartbeat 1] [--grace 2]

throughput: the same digits-mlp study with `hpsearch optimize --workers 1` and `--workers 2`
(fresh SQLite files in a temp dir, random sampler, no pruner), one after the other; prints
trials/minute over the trials' own time span (first start to last completion: process start-up
excluded) and over the whole command, and the 2-vs-1 ratio.

recovery: two workers on one study with heartbeats and checkpoints; one is SIGKILLed in the
middle of a trial; prints the time from the kill until the re-run of its trial (same
parameters) is RUNNING on the survivor, and the epoch it resumed from.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

HPSEARCH = Path(sys.executable).parent / "hpsearch"


def study_file(directory: Path, trials: int, max_epochs: int) -> Path:
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump({
        "study": "bench", "task": "digits-mlp", "trials": trials, "max_epochs": max_epochs, "seed": 0,
        "sampler": {"type": "random"}, "pruner": {"type": "none"},
        "search": {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "keep_prob": {"low": 0.7, "high": 1.0}},
        "fixed": {"optimizer": "adamw", "batch_size": 64, "hidden_units": 64, "hidden_layers": 2},
    }))
    return path


def finished_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="bench", storage=url)
    return [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def throughput(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = study_file(directory, args.trials, args.max_epochs)
        rates = {}
        # (label, --workers, OMP_NUM_THREADS for a single in-process worker: None = torch default)
        configs = [("--workers 1", 1, None), ("--workers 1, OMP_NUM_THREADS=1", 1, "1"), ("--workers 2", 2, None)]
        for label, workers, threads in configs:
            url = f"sqlite:///{directory / f'w{len(rates)}.db'}"
            env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
            if threads:
                env["OMP_NUM_THREADS"] = threads
            started = time.perf_counter()
            subprocess.run([str(HPSEARCH), "optimize", str(path), "--storage", url, "--workers", str(workers)],
                           check=True, capture_output=True, env=env)
            wall = time.perf_counter() - started
            done = finished_trials(url)
            span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
            rates[label] = 60 * len(done) / span
            print(f"{label}: {len(done)} trials, {rates[label]:.1f} trials/min over the trials' span "
                  f"({span:.1f} s), {60 * len(done) / wall:.1f} trials/min over the whole command ({wall:.1f} s)")
        one, one_thread, two = rates.values()
        print(f"ratio 2 workers / 1 worker: {two / one:.2f}; 2 workers / 1 worker with 1 thread: {two / one_thread:.2f} "
              f"(cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f})")
        # The goal compares against the faster of the two single-worker set-ups.
        print(f"RESULT scaling_2_workers {two / max(one, one_thread):.3f} goal >= 1.8", flush=True)


def recovery(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = study_file(directory, trials=8, max_epochs=40)
        url = f"sqlite:///{directory / 'r.db'}"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [str(HPSEARCH), "optimize", str(path), "--storage", url, "--heartbeat", str(args.heartbeat),
               "--grace", str(args.grace), "--checkpoint-dir", str(directory / "ckpt")]
        victim = subprocess.Popen([*cmd, "--worker-index", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        survivor = subprocess.Popen([*cmd, "--worker-index", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = None
        while target is None:
            time.sleep(0.1)
            try:
                running = optuna.load_study(study_name="bench", storage=url).get_trials(states=(TrialState.RUNNING,))
            except KeyError:
                continue
            for t in running:
                if str(t.user_attrs.get("worker", "")).endswith(f":{victim.pid}") and len(t.intermediate_values) >= 3:
                    target = t
        os.kill(victim.pid, signal.SIGKILL)
        killed = datetime.datetime.now()
        victim.wait()
        survivor.wait(timeout=600)
        trials = optuna.load_study(study_name="bench", storage=url).get_trials()
        retry = next(t for t in trials if t.system_attrs.get("failed_trial") == target.number)
        print(f"killed trial {target.number} after {len(target.intermediate_values)} epochs; re-run as trial "
              f"{retry.number} ({retry.state.name}, same params: {retry.params == target.params}, resumed from epoch "
              f"{retry.user_attrs.get('resumed_from_epoch')})")
        print(f"SIGKILL recovery (kill -> re-run RUNNING): {(retry.datetime_start - killed).total_seconds():.1f} s "
              f"with --heartbeat {args.heartbeat} --grace {args.grace}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--trials", type=int, default=24)
    tp.add_argument("--max-epochs", type=int, default=10)
    rc = sub.add_parser("recovery")
    rc.add_argument("--heartbeat", type=int, default=1)
    rc.add_argument("--grace", type=int, default=2)
    args = parser.parse_args()
    throughput(args) if args.what == "throughput" else recovery(args)


if __name__ == "__main__":
    main()
