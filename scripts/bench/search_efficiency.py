"""Search efficiency: random search without pruning vs hpsearch's default sampler + pruner.

On digits-cnn with the quickstart search space, per seed:
(a) random sampler, no pruner, ``--trials`` (60) trials × ``--max-epochs`` (20);
(b) hpsearch's defaults (TPE + Hyperband), run until its best validation accuracy is within
    0.5 points of (a)'s final best (or until it has spent (a)'s whole budget).
The epochs of (a) are its whole budget (``trials × max_epochs``): without pruning, random search
has to run to the end, since nobody knows in advance when its best trial came. The epochs of
(b) are those consumed until its best validation accuracy first comes within 0.5 points of
(a)'s final best. Also printed: when (a) itself first came that close, and the test accuracy of
each side's best configuration (retrained with the trial's seed, evaluated on the held-out test
split). (b)'s sampler gets another seed than (a)'s (same data split), so its random start-up trials
are not copies of (a)'s. Median over ``--seeds`` (5) seeds.

Ends with ``RESULT search_efficiency <median epochs(b) / epochs(a)> goal <= 0.2``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
from common import QUICKSTART_SEARCH, result, study_file

from hpsearch.run.runner import open_study
from hpsearch.run.training import evaluate, fit
from hpsearch.store.queries import FINISHED
from hpsearch.study.algorithms import build_sampler
from hpsearch.study.definition import define
from hpsearch.study.space import settings_for

SPACE = """
study: {name}
task: digits-cnn
trials: {trials}
max_epochs: {epochs}
seed: {seed}
sampler: {sampler}
pruner: {pruner}
{search}fixed:
  optimizer: adamw
  batch_size: 64
"""
TOLERANCE = 0.005


def run_side(name: str, seed: int, trials: int, epochs: int, sampler: str, pruner: str, db: Path,
             stop_at: float | None, budget: int | None, sampler_seed: int | None = None) -> dict:
    """Run one side; returns its trials as (cumulative epochs, value) and its best trial.
    ``seed`` fixes the data split and trial seeds; ``sampler_seed`` (default: ``seed``) the sampler."""
    sf = study_file(SPACE.format(name=name, trials=trials, epochs=epochs, seed=seed, sampler=sampler, pruner=pruner,
                                 search=QUICKSTART_SEARCH))
    study, objective = open_study(define(sf), f"sqlite:///{db}")
    if sampler_seed is not None:
        study.sampler = build_sampler(sf.config.sampler, sampler_seed)
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
    settings = settings_for(best.params, objective.definition.config, objective.definition.task)
    fitted = fit(objective.definition.task, settings, objective.data, max_epochs=objective.definition.config.max_epochs, seed=best.user_attrs["seed"])
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
            b = run_side("default", seed, 10 * args.trials, args.max_epochs, "{type: tpe}", "{type: hyperband}", db, a_best, budget,
                         sampler_seed=seed + 1000)
            ea, eb = epochs_to_reach(a["curve"], a_best), epochs_to_reach(b["curve"], a_best)
            ta, tb = test_accuracy(a), test_accuracy(b)
            ratio = (eb if eb is not None else b["spent"]) / a["spent"]
            ratios.append(ratio)
            rows.append((seed, a_best, ea, a["spent"], b["study"].best_value, eb, b["spent"], ta, tb))
            print(
                f"seed {seed}: (a) random best val {a_best:.4f} in {a['spent']} epochs (first within 0.5 points at {ea}), test {ta:.4f} "
                f"({a['seconds']:.0f} s) | (b) tpe+hyperband best val {b['study'].best_value:.4f} "
                f"{f'reached at {eb}' if eb is not None else 'NOT reached in ' + str(b['spent'])} epochs, test {tb:.4f} "
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
