"""Populations: the same study with ``--population 1`` and ``--population K`` side by side.

Part 1 (per seed, ``--seeds`` 3): a ``--trials`` (48) trial digits-mlp study on the quickstart
search space with the random sampler, no pruner and ``--max-epochs`` (20), run as a whole
``hpsearch optimize`` command (a new process each: start-up, data, training, database) with
population 1 and population ``--population`` (16), one after the other for each seed so both
sides see the same machine load. Reported: wall time of each command, the ratio of the summed
wall times, and the best validation accuracy of each side per seed (the same random proposals
and per-trial seeds on both sides, so accuracies should agree up to dropout masks and float
rounding).

Part 2 (``--hyperband``, on by default): the quickstart study itself (TPE + Hyperband) with
both population sizes; wall time ratio and best validation accuracy.

``--device cuda`` runs the commands on the first GPU (``--device cpu``, the default, hides any
GPU). On a GPU the per-step overhead dominates even more; expect the best ratio around K = 64-256
(``--population 128``).

Ends with ``RESULT population_speedup <t(1)/t(K)> goal >= 3``, ``RESULT
population_best_acc_gap <mean best(K) - mean best(1)> goal >= -0.01`` and, with Hyperband,
``RESULT population_hyperband_speedup <ratio> goal >= 2`` and ``RESULT
population_hyperband_acc_gap <best(K) - best(1)> goal >= -0.01``.
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
from common import QUICKSTART_SEARCH, REPO, result

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")

RANDOM_STUDY = """
study: population
task: digits-mlp
trials: {trials}
max_epochs: {epochs}
seed: {seed}
sampler: {{type: random}}
pruner: {{type: none}}
{search}fixed:
  optimizer: adamw
  batch_size: 64
"""


THREADS = {"n": 1}


def run(study: Path, url: str, population: int, device: str, extra: list[str]) -> float:
    """Wall seconds of one whole ``hpsearch optimize`` command."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(THREADS["n"])
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    started = time.perf_counter()
    subprocess.run([HPSEARCH, "optimize", str(study), "--storage", url, "--population", str(population), "-q", *extra],
                   check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def best(url: str, name: str) -> float:
    return optuna.load_study(study_name=name, storage=url).best_value


def side_by_side(study: Path, tmp: Path, tag: str, k: int, device: str, extra: list[str] = ()) -> tuple[float, float, float, float]:
    """(t1, tK, best1, bestK) of the study with population 1 and k."""
    name = "population" if "quickstart" not in str(study) else "quickstart"
    out = []
    for size in (1, k):
        url = f"sqlite:///{tmp / f'{tag}-k{size}.db'}"
        seconds = run(study, url, size, device, list(extra))
        out.append((seconds, best(url, name)))
    (t1, b1), (tk, bk) = out
    print(f"  {tag}: population 1: {t1:.1f} s, best val_acc {b1:.4f}; population {k}: {tk:.1f} s, best val_acc {bk:.4f}; "
          f"speed-up {t1 / tk:.2f}x", flush=True)
    return t1, tk, b1, bk


def spread(xs: list[float]) -> str:
    """``mean ± sd`` (or the one value)."""
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--hyperband-trials", type=int, default=48)
    parser.add_argument("--no-hyperband", action="store_true", help="Skip part 2.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each command (1: steadier timings on a shared machine)")
    args = parser.parse_args()
    THREADS["n"] = args.threads
    k = args.population
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{os.cpu_count()} CPUs, {args.threads} torch thread(s), device {args.device}; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    times1, timesk, best1, bestk = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"part 1: {args.trials} trials x {args.max_epochs} epochs, random sampler, no pruner, digits-mlp", flush=True)
        for seed in range(args.seeds):
            study = tmp / f"random-{seed}.yaml"
            study.write_text(RANDOM_STUDY.format(trials=args.trials, epochs=args.max_epochs, seed=seed, search=QUICKSTART_SEARCH))
            t1, tk, b1, bk = side_by_side(study, tmp, f"seed {seed}", k, args.device)
            times1.append(t1)
            timesk.append(tk)
            best1.append(b1)
            bestk.append(bk)
        print(f"best val_acc over {args.seeds} seed(s): population 1 {spread(best1)}; population {k} {spread(bestk)}")
        print(f"load average {os.getloadavg()[0]:.1f} at the end of part 1", flush=True)
        result("population_speedup", sum(times1) / sum(timesk), ">=", 3, ".2f")
        result("population_best_acc_gap", statistics.mean(bestk) - statistics.mean(best1), ">=", -0.01, ".4f")
        if not args.no_hyperband:
            print(f"part 2: quickstart (TPE + Hyperband), {args.hyperband_trials} trials x {args.max_epochs} epochs", flush=True)
            study = tmp / "quickstart.yaml"
            text = (REPO / "studies" / "quickstart.yaml").read_text()
            study.write_text(text)
            t1, tk, b1, bk = side_by_side(study, tmp, "quickstart", k, args.device,
                                          ["--trials", str(args.hyperband_trials), "--max-epochs", str(args.max_epochs)])
            result("population_hyperband_speedup", t1 / tk, ">=", 2, ".2f")
            result("population_hyperband_acc_gap", bk - b1, ">=", -0.01, ".4f")


if __name__ == "__main__":
    main()
