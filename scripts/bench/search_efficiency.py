"""Search efficiency: random search without pruning vs hpsearch's default sampler + pruner.

On digits-cnn with the quickstart search space, per seed:
(a) random sampler, no pruner, ``--trials`` (60) trials × ``--max-epochs`` (20);
(b) hpsearch's defaults (TPE + Hyperband), run until its best validation accuracy is within
    0.5 points of (a)'s final best (or until it has spent (a)'s whole budget).
For each side: epochs consumed until its best validation accuracy first comes within 0.5 points
of (a)'s final best, and the test accuracy of its best configuration (retrained with the
trial's seed, evaluated on the held-out test split). Median over ``--seeds`` (5) seeds.

Ends with ``RESULT search_efficiency <median epochs(b) / epochs(a)> goal <= 0.2``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
from common import result, study_file

from hpsearch.runner import FINISHED, open_study
from hpsearch.space import settings_for
from hpsearch.training import evaluate, fit

SPACE = """
study: {name}
task: digits-cnn
trials: {trials}
max_epochs: {epochs}
seed: {seed}
sampler: {sampler}
pruner: {pruner}
search:
  learning_rate: {{low: 1.0e-4, high: 1.0e-1, log: true}}
  weight_decay: {{low: 1.0e-6, high: 1.0e-1, log: true}}
  l2_mode: [decoupled, loss]
  l2_scope: [all, weights, fc]
  keep_prob: {{low: 0.5, high: 1.0}}
  batchnorm: [none, before_activation, after_activation]
fixed:
  optimizer: adamw
  batch_size: 64
"""
TOLERANCE = 0.005


def run_side(name: str, seed: int, trials: int, epochs: int, sampler: str, pruner: str, db: Path,
             stop_at: float | None, budget: int | None) -> dict:
    """Run one side; returns its trials as (cumulative epochs, value) and its best trial."""
    sf = study_file(SPACE.format(name=name, trials=trials, epochs=epochs, seed=seed, sampler=sampler, pruner=pruner))
    study, objective = open_study(sf, f"sqlite:///{db}")
    spent = 0
    curve: list[tuple[int, float]] = []

    def track(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal spent
        spent += int(trial.user_attrs.get("epochs", 0))
        value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
        curve.append((spent, value if value is not None else float("-inf")))
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        reached = stop_at is not None and study.best_value >= stop_at - TOLERANCE if _has_best(study) else False
        if finished >= trials or reached or (budget is not None and spent >= budget):
            study.stop()

    started = time.perf_counter()
    study.optimize(objective, callbacks=[track], catch=(Exception,))
    return {"study": study, "objective": objective, "curve": curve, "spent": spent, "seconds": time.perf_counter() - started}


def _has_best(study: optuna.Study) -> bool:
    return any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def epochs_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    """Cumulative epochs when the best-so-far first comes within TOLERANCE of ``target``."""
    best = float("-inf")
    for spent, value in curve:
        best = max(best, value)
        if best >= target - TOLERANCE:
            return spent
    return None


def test_accuracy(side: dict) -> float:
    """Test accuracy of the side's best configuration, retrained with the trial's seed."""
    objective, best = side["objective"], side["study"].best_trial
    settings = settings_for(best.params, objective.config, objective.task)
    fitted = fit(objective.task, settings, objective.data, max_epochs=objective.config.max_epochs, seed=best.user_attrs["seed"])
    return evaluate(fitted.model, objective.data.test)["acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--max-epochs", type=int, default=20)
    args = parser.parse_args()
    from hpsearch.logs import setup_logging

    setup_logging(0, None)
    ratios = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            db = Path(tmp) / f"seed{seed}.db"
            a = run_side("random", seed, args.trials, args.max_epochs, "{type: random}", "{type: none}", db, None, None)
            a_best = a["study"].best_value
            budget = args.trials * args.max_epochs
            b = run_side("default", seed, 10 * args.trials, args.max_epochs, "{type: tpe}", "{type: hyperband}", db, a_best, budget)
            ea, eb = epochs_to_reach(a["curve"], a_best), epochs_to_reach(b["curve"], a_best)
            ta, tb = test_accuracy(a), test_accuracy(b)
            ratio = (eb if eb is not None else b["spent"]) / ea
            ratios.append(ratio)
            rows.append((seed, a_best, ea, a["spent"], b["study"].best_value, eb, b["spent"], ta, tb))
            print(
                f"seed {seed}: (a) random best val {a_best:.4f} reached at {ea} of {a['spent']} epochs, test {ta:.4f} "
                f"({a['seconds']:.0f} s) | (b) tpe+hyperband best val {b['study'].best_value:.4f} "
                f"{'reached at ' + str(eb) if eb is not None else 'NOT reached in'} {b['spent']} epochs, test {tb:.4f} "
                f"({b['seconds']:.0f} s) | epochs ratio b/a {ratio:.3f}",
                flush=True,
            )
    test_a = statistics.median(r[7] for r in rows)
    test_b = statistics.median(r[8] for r in rows)
    total_ratio = statistics.median(r[6] / r[3] for r in rows)
    print(f"median test accuracy of the best: (a) {test_a:.4f}, (b) {test_b:.4f}")
    print(f"median total-budget ratio b/a {total_ratio:.3f}")
    result("search_efficiency", statistics.median(ratios), "<=", 0.2)


if __name__ == "__main__":
    main()
