"""Search quality of the bounded-history TPE against full-history TPE, past the bound.

Not one of the five benchmarks of docs/benchmarks.md: a check that bounding what TPE looks at
(hpsearch.study.history, section 3) does not make the search worse. Both samplers (same seed,
in-memory storage, no pruner) minimize the same noisy 6-parameter function shaped like a
regularization search (log-scaled learning rate and weight decay, keep probability, width,
a categorical) for ``--trials`` trials, with the bound set to ``--bound`` so that it is in
force for most of the run. Per seed: the best value, and the mean of the last 200 trials
(how well the sampler keeps exploiting late in a long study). Ends with
``RESULT history_quality_best_gap <median of best(bounded) - best(full)> goal <= 0.05``: 0.05
is the amplitude of the function's noise, so a gap below it is no measurable loss.

Usage: python scripts/bench/history_quality.py [--trials 1500] [--bound 300] [--seeds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import optuna
from common import result

from hpsearch.study.history import BoundedHistorySampler

NOISE = 0.05  # amplitude of the objective's per-trial noise


def objective(trial: optuna.Trial) -> float:
    """A noisy bowl over a regularization-like space (minimum about 0)."""
    lr = trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
    wd = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
    keep = trial.suggest_float("keep_prob", 0.3, 1.0)
    width = trial.suggest_int("hidden_units", 16, 512, log=True)
    bn = trial.suggest_categorical("batchnorm", ["none", "before_activation", "after_activation"])
    layers = trial.suggest_int("hidden_layers", 1, 4)
    loss = (math.log10(lr) + 2.5) ** 2 + 0.5 * (math.log10(wd) + 4.0) ** 2 + 4 * (keep - 0.8) ** 2
    loss += 0.3 * (math.log2(width) - 7.0) ** 2 / 4 + (0.0 if bn == "before_activation" else 0.3) + 0.2 * abs(layers - 2)
    rng = trial.number * 7919 % 1000 / 1000.0  # deterministic "noise" per trial number
    return loss + NOISE * rng


def run(sampler: optuna.samplers.BaseSampler, trials: int) -> tuple[float, float, float]:
    """(best value, mean of the last 200 values, seconds)."""
    study = optuna.create_study(sampler=sampler)
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    values = [t.value for t in study.trials]
    return study.best_value, statistics.mean(values[-200:]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1500)
    parser.add_argument("--bound", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    gaps = []
    for seed in range(args.seeds):
        full = run(optuna.samplers.TPESampler(seed=seed), args.trials)
        bounded = run(BoundedHistorySampler(optuna.samplers.TPESampler(seed=seed), max_trials=args.bound,
                                            keep_best=min(250, args.bound)), args.trials)
        gaps.append(bounded[0] - full[0])
        print(f"seed {seed}: full history best {full[0]:.4f}, last-200 mean {full[1]:.4f} ({full[2]:.0f} s) | "
              f"bounded to {args.bound}: best {bounded[0]:.4f}, last-200 mean {bounded[1]:.4f} ({bounded[2]:.0f} s)",
              flush=True)
    result("history_quality_best_gap", statistics.median(gaps), "<=", NOISE, ".4f")


if __name__ == "__main__":
    main()
