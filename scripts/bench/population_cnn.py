"""CNN populations: a digits-cnn study with ``--population 1`` and ``--population K`` side by side.

A ``--trials`` (64) trial digits-cnn study (two conv + two FC layers, 16/32 channels, 64 hidden
units) on the quickstart search space (learning rate, weight decay, ``l2_mode``, ``l2_scope``,
``keep_prob``, ``batchnorm``; AdamW, batch 64), random sampler, no pruner, ``--max-epochs``
(10), run as a whole ``hpsearch optimize`` command (a new process each: start-up, data,
training, database) with population 1 and population ``--population`` (8), back to back for
each of ``--seeds`` (1) seeds so both sides see the same machine. Both sides get the same random
proposals and per-trial seeds, so the best validation accuracies should agree up to dropout
masks and float rounding.

Ends with ``RESULT population_cnn_speedup <t(1)/t(K)> goal >= 2`` (summed wall times) and
``RESULT population_cnn_best_acc_gap <mean best(K) - mean best(1)> goal >= -0.01``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from common import QUICKSTART_SEARCH, RANDOM_STUDY, result

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")



def run(study: Path, url: str, population: int, threads: int) -> float:
    """Wall seconds of one whole ``hpsearch optimize`` command on the CPU."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="")
    started = time.perf_counter()
    subprocess.run([HPSEARCH, "optimize", str(study), "--storage", url, "--population", str(population), "-q"],
                   check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each command (1: steadier timings on a shared machine)")
    args = parser.parse_args()
    k = args.population
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{os.cpu_count()} CPUs, {args.threads} torch thread(s); load average {os.getloadavg()[0]:.2f} at start; "
          f"digits-cnn, {args.trials} trials x {args.max_epochs} epochs, random sampler, no pruner", flush=True)
    times1, timesk, best1, bestk = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for seed in range(args.seeds):
            study = tmp / f"cnn-{seed}.yaml"
            study.write_text(RANDOM_STUDY.format(name="population-cnn", task="digits-cnn", trials=args.trials,
                                                 epochs=args.max_epochs, seed=seed, search=QUICKSTART_SEARCH))
            row = []
            for size in (1, k):
                url = f"sqlite:///{tmp / f'cnn-{seed}-k{size}.db'}"
                seconds = run(study, url, size, args.threads)
                row.append((seconds, optuna.load_study(study_name="population-cnn", storage=url).best_value))
            (t1, b1), (tk, bk) = row
            times1.append(t1)
            timesk.append(tk)
            best1.append(b1)
            bestk.append(bk)
            print(f"  seed {seed}: population 1: {t1:.1f} s, best val_acc {b1:.4f}; population {k}: {tk:.1f} s, "
                  f"best val_acc {bk:.4f}; speed-up {t1 / tk:.2f}x; load average {os.getloadavg()[0]:.2f}", flush=True)
    result("population_cnn_speedup", sum(times1) / sum(timesk), ">=", 2, ".2f")
    result("population_cnn_best_acc_gap", statistics.mean(bestk) - statistics.mean(best1), ">=", -0.01, ".4f")


if __name__ == "__main__":
    main()
