"""``hpsearch answer``: for every level (× ``within`` cell), the best tuned configuration by
validation among the cell's first ``budget`` finished trials, retrained with seeds 0..S-1 (the
same seeds for every level: paired), unpruned, scored on the held-out test split; then the
comparisons with the reference, their verdicts and the warnings a reviewer would raise. The
answer is stored on the question's study (user attr :data:`ANSWER_ATTR`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.analysis.stats import CONFIDENCE, summarize
from hpsearch.errors import ConfigError
from hpsearch.question import ANSWER_ATTR, QUESTION_ATTR
from hpsearch.question.effects import comparisons
from hpsearch.question.optimize import CellRun, cell_runs
from hpsearch.question.retrains import Pair, PairResult, collect, open_answer_study, run_pairs

VARY = ("seed", "split")


@dataclass(frozen=True)
class Selection:
    """A cell's tuning outcome: its best trial among the first ``budget`` finished ones."""

    best: FrozenTrial | None
    finished: int
    pruned: int
    budget: int


def select(study: optuna.Study, budget: int, maximize: bool) -> Selection:
    """The best feasible COMPLETE trial (validation value; ties: the earlier trial) among the first
    ``budget`` finished (complete or pruned) trials by number: every level is judged on exactly
    its budget, however many trials extra workers added. Never reads the test split."""
    from hpsearch.store.queries import is_feasible

    finished = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))]
    first = sorted(finished, key=lambda t: t.number)[:budget]
    complete = [t for t in first if t.state == TrialState.COMPLETE and t.value is not None and is_feasible(t)]
    sign = -1.0 if maximize else 1.0
    best = min(complete, key=lambda t: (sign * float(t.value or 0.0), t.number)) if complete else None
    return Selection(best, len(first), sum(t.state == TrialState.PRUNED for t in first), budget)


def tuned_params(definition: Any, trial: FrozenTrial) -> dict[str, Any]:
    """The settings of a cell's chosen trial that a retrain uses: those that act in the cell's
    study (see :meth:`~hpsearch.study.definition.StudyDefinition.acting`; a setting that does
    not act is not part of the retrained configuration)."""
    return definition.acting(dict(trial.params))


def _question_definition(name: str, url: str) -> tuple[optuna.Study, Any]:
    from hpsearch.store.queries import load_study
    from hpsearch.study.stored import searched_definition

    hub = load_study(name, url)
    if QUESTION_ATTR not in hub.user_attrs:
        raise ConfigError(f"study {name!r} has no question: give its study file a question: block and run "
                          "hpsearch optimize on it (see README, Asking a question)")
    return hub, searched_definition(hub)


def run_answer(name: str, url: str, seeds: int | None = None, vary: str | None = None, population: int | None = None,
               heartbeat: Any = None, on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Retrain what is missing, compute and store the answer; returns it (JSON-ready)."""
    from hpsearch.store.heartbeat import Heartbeat
    from hpsearch.store.queries import load_study
    from hpsearch.study.identity import fingerprint, fingerprint_hash

    heartbeat = heartbeat or Heartbeat()
    started = time.perf_counter()
    hub, definition = _question_definition(name, url)
    design, runs = cell_runs(definition)
    q = design.question
    vary = q.vary if vary is None else vary
    if vary not in VARY:
        raise ConfigError(f"--vary: {vary!r}; valid: {', '.join(VARY)}")
    seeds = q.seeds if seeds is None else seeds
    # by default a level's seeds train as members of one population (where the task stacks)
    population = max(definition.config.population, seeds) if population is None else population
    if seeds < 2:
        raise ConfigError(f"--seeds must be >= 2 for a paired comparison, got {seeds}")
    maximize = definition.direction == "maximize"
    selections = {r.cell.key: select(load_study(r.study_name, url), q.budget, maximize) for r in runs}
    empty = [k for k, s in selections.items() if s.best is None]
    if empty:
        raise ConfigError(f"question {name!r}: level {empty[0]} has no completed tuning trial yet; "
                          f"run hpsearch optimize on the study file first")
    split = definition.config.seed
    if vary == "split":
        check_split_varies(definition, runs[0])
    hashes = {r.cell.key: fingerprint_hash(fingerprint(r.definition)) for r in runs}
    pairs = [Pair(r.cell.key, tuned_params(r.definition, sel), sel.number, hashes[r.cell.key], s, s if vary == "split" else split)
             for r in runs for sel in [selections[r.cell.key].best] if sel is not None for s in range(seeds)]
    astudy = open_answer_study(hub, url, heartbeat)
    first_min_effect = astudy.user_attrs.get("min_effect_first_answer")
    if first_min_effect is None:
        astudy.set_user_attr("min_effect_first_answer", q.min_effect)

    def done(pair: Pair, result: PairResult, finished: int, total: int) -> None:
        if on_progress is not None:
            outcome = f"{result.value:.4g}" if result.error is None else f"FAIL {result.error}"
            on_progress(f"[{finished}/{total}] {pair.cell} seed {pair.seed}: {outcome} "
                        f"({result.attrs.get('wall_seconds', 0):.1f} s)")

    run_pairs(astudy, pairs, {r.cell.key: r.definition for r in runs}, population, heartbeat, done)
    results = collect(astudy, pairs)
    answer = build_answer(name, definition, design, runs, selections, pairs, results, vary, maximize)
    if first_min_effect is not None and first_min_effect != q.min_effect:
        answer["warnings"].insert(0, f"min_effect was {first_min_effect:g} when this question was first answered and is "
                                     f"{q.min_effect:g} now: a threshold chosen after seeing results is not fixed in advance")
    answer["wall_seconds"] = round(time.perf_counter() - started, 1)
    hub.set_user_attr(ANSWER_ATTR, answer)
    return answer


def build_answer(name: str, definition: Any, design: Any, runs: list[CellRun], selections: dict[str, Selection],
                 pairs: list[Pair], results: dict[Any, PairResult], vary: str, maximize: bool) -> dict[str, Any]:
    """The answer document (see the module docstring)."""
    from hpsearch.analysis.retrain import covers_text
    from hpsearch.question.baselines import cell_baselines
    from hpsearch.question.warnings import reviewer_warnings

    q = design.question
    values: dict[str, dict[int, float]] = {}
    levels = []
    for run in runs:
        got = {p.seed: results[p.key] for p in pairs if p.cell == run.cell.key and p.key in results}
        values[run.cell.key] = {s: float(r.value) for s, r in sorted(got.items()) if r.value is not None}
        levels.append(_level_row(run, selections[run.cell.key], got, values[run.cell.key], maximize))
    rows = comparisons(design, values, maximize)
    baselines = cell_baselines(definition, runs)
    for row in levels:
        row["baselines"] = {b["name"]: b["value"] for b in baselines if b["cell"] == row["cell"]}
    covers = covers_text(vary == "split", definition.task.name, definition.config.seed)
    answer: dict[str, Any] = {
        "study": name, "asks": q.asks, "metric": definition.meta.test_metric, "direction": definition.direction,
        "factors": design.factors, "reference": design.reference.name, "within": list(q.within), "budget": q.budget,
        "seeds": sorted({p.seed for p in pairs}), "min_effect": q.min_effect, "vary": vary, "covers": covers,
        "confidence": CONFIDENCE, "max_epochs": definition.config.max_epochs,
        "adjustment": (f"Holm over all {rows[0]['comparisons'] if rows else 0} comparisons of the question; each "
                       "interval at the level Holm tests it at, so it excludes 0 exactly when the adjusted p < 0.05"),
        "levels": levels, "comparisons": rows, "baselines": baselines,
    }
    answer["warnings"] = reviewer_warnings(definition, design, runs, answer)
    return answer


def _level_row(run: CellRun, sel: Selection, got: dict[int, PairResult], values: dict[int, float],
               maximize: bool) -> dict[str, Any]:
    """One level of the answer: its tuning, its test values over seeds and their summary, and
    what its retrains recorded (train/validation scores, curves, weight norms, failures)."""
    assert sel.best is not None
    ok = [got[s] for s in values]
    test, val = summarize(list(values.values())), summarize(_numbers([r.attrs.get("val_value") for r in ok]))
    return {
        "cell": run.cell.key, "level": run.cell.level.name, "within": run.cell.within_label, "study": run.study_name,
        "tuning": {"trial": sel.best.number, "value": sel.best.value, "finished": sel.finished, "pruned": sel.pruned,
                   "budget": sel.budget, "params": dict(sel.best.params)},
        "seeds": list(values), "values": list(values.values()), "n": len(values),
        "mean": test.mean, "std": test.std, "ci_low": test.ci_low, "ci_high": test.ci_high,
        "train_mean": _mean([r.attrs.get("train_value") for r in ok]), "val_mean": val.mean, "val_std": val.std,
        "failed": {str(s): r.error for s, r in got.items() if r.error is not None},
        "decay_shrinkage": sel.best.user_attrs.get("decay_shrinkage"),
        **_curve_fields([r.attrs.get("val_curve") for r in ok], maximize),
        "bn_weight_norm": _mean([_total_norm(r.attrs.get("bn_weight_norms")) for r in ok]),
    }


def check_split_varies(definition: Any, run: CellRun) -> None:
    """``--vary split`` on a task whose data does not depend on the seed would vary nothing:
    refuse it with one line."""
    from hpsearch.study.space import settings_for

    if definition.task.lightning is not None:
        raise ConfigError(f"--vary split: task {definition.task.name} is your own DataModule, which splits its data "
                          "itself (the same for every seed); use --vary seed")
    options = settings_for({}, run.definition.config, run.definition.task).options
    a, b = (definition.task.splits(s, options) for s in (0, 1))
    if a.test[1].shape == b.test[1].shape and bool((a.test[1] == b.test[1]).all()) and _same(a.test[0], b.test[0]):
        raise ConfigError(f"--vary split: task {definition.task.name} draws the same data for every seed, so the "
                          "split would not vary; use --vary seed")


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, (tuple, list)):
        return all(_same(a, b) for a, b in zip(x, y))
    return bool(x.shape == y.shape and (x == y).all())


def _curve_fields(curves: list[Any], maximize: bool) -> dict[str, Any]:
    """The mean validation curve over seeds, how much it still rose at the end, and the
    median epochs to 95% of the final value (a maximized metric)."""
    import statistics

    from hpsearch.run.curves import epochs_to_fraction, late_gain

    curves = [c for c in curves if isinstance(c, list) and c]
    if not curves or len({len(c) for c in curves}) != 1:
        return {"curve_mean": None, "late_gain": None, "epochs_to_95": None}
    mean = [sum(values) / len(values) for values in zip(*curves)]
    reached = [e for c in curves if (e := epochs_to_fraction(c)) is not None] if maximize else []
    return {"curve_mean": [round(v, 5) for v in mean], "late_gain": late_gain(mean),
            "epochs_to_95": statistics.median(reached) if reached else None}


def _total_norm(norms: Any) -> float | None:
    """The norm of all the weights that feed a BatchNorm together."""
    if not isinstance(norms, dict) or not norms:
        return None
    return float(sum(float(v) ** 2 for v in norms.values()) ** 0.5)


def _numbers(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float))]


def _mean(values: list[Any]) -> float | None:
    nums = _numbers(values)
    return sum(nums) / len(nums) if nums else None


def stored_answer(name: str, url: str) -> dict[str, Any] | None:
    """The answer stored on study ``name``, if any."""
    from hpsearch.store.queries import load_study

    value = load_study(name, url).user_attrs.get(ANSWER_ATTR)
    return value if isinstance(value, dict) else None
