"""The warnings a reviewer would raise beside an answer's verdicts: a tuned value on the edge of
its range, levels with few or mostly pruned tuning trials, retrained scores far from the tuning
score, no overfitting for a regularizer to act on, a task baseline that beats every level, a
test split so small that one example outweighs ``min_effect``, failed seeds, a seed far from the rest
of its level."""

from __future__ import annotations

import math
from typing import Any

from hpsearch.study.config import Range
from hpsearch.study.meta import metric_key

#: A tuned value within this share of its range's end (log scale for log ranges) is "on the edge".
EDGE = 0.03


def _position(value: float, rng: Range) -> float | None:
    lo, hi = float(rng.low), float(rng.high)
    if rng.log:
        if value <= 0:
            return None
        lo, hi, value = math.log(lo), math.log(hi), math.log(value)
    return (value - lo) / (hi - lo) if hi > lo else None


def edge_warnings(runs: list[Any], levels: list[dict[str, Any]]) -> list[str]:
    """A tuned continuous value within :data:`EDGE` of an end of its searched range."""
    out = []
    by_cell = {r.cell.key: r for r in runs}
    for row in levels:
        search = by_cell[row["cell"]].definition.config.search
        for name, value in row["tuning"]["params"].items():
            rng = search.get(name)
            if not isinstance(rng, Range) or not isinstance(value, (int, float)):
                continue
            pos = _position(float(value), rng)
            if pos is not None and (pos <= EDGE or pos >= 1 - EDGE):
                end = "low" if pos <= EDGE else "high"
                out.append(f"{row['cell']}: the tuned {name} = {value:.4g} is at the {end} end of its range "
                           f"[{rng.low:g}, {rng.high:g}]; the best value may lie outside it: widen the range")
    return out


def tuning_warnings(levels: list[dict[str, Any]], min_effect: float) -> list[str]:
    """Few finished or mostly pruned tuning trials; retrained validation far from the tuning score."""
    out = []
    for row in levels:
        t = row["tuning"]
        if t["finished"] < t["budget"]:
            out.append(f"{row['cell']}: only {t['finished']} of its budget of {t['budget']} tuning trials finished; "
                       "run hpsearch optimize again to complete it")
        if t["finished"] and t["pruned"] / t["finished"] > 0.5:
            out.append(f"{row['cell']}: {t['pruned']} of {t['finished']} tuning trials were pruned: the level was "
                       "tuned on few complete trials")
        val, spread = row.get("val_mean"), row.get("val_std") or 0.0
        if val is not None and t["value"] is not None and abs(t["value"] - val) > max(min_effect, 2 * spread):
            out.append(f"{row['cell']}: tuning validation {t['value']:.4g} (one seed) but a retrained validation mean of "
                       f"{val:.4g} over {row['n']} seeds: the tuning score was a lucky seed (selection optimism), or "
                       "training is unstable")
        if row.get("failed"):
            seeds = ", ".join(sorted(row["failed"]))
            first = next(iter(row["failed"].values()))
            out.append(f"{row['cell']}: retraining failed for seed(s) {seeds}: {first}")
    return out


#: A seed is flagged when it is worse than its level's median by this many median absolute
#: deviations and this many ``min_effect``s (a normal sample of 30 has nothing beyond about 4.5 MADs).
OUTLIER_SPREADS = 10.0


def outlier_seed_warnings(levels: list[dict[str, Any]], min_effect: float, maximize: bool) -> list[str]:
    """A retrain far worse than the rest of its level (beyond :data:`OUTLIER_SPREADS` median
    absolute deviations and ``min_effect``s below the level's median): a seed that diverged or
    did not train moves the mean and widens the interval, so the reader should see it by name."""
    import statistics

    out = []
    for row in levels:
        values = dict(zip(row.get("seeds", []), row.get("values", [])))
        if len(values) < 5:
            continue
        median = statistics.median(values.values())
        mad = statistics.median(abs(v - median) for v in values.values())
        limit = OUTLIER_SPREADS * max(mad, min_effect)
        far = {s: v for s, v in values.items() if ((median - v) if maximize else (v - median)) > limit}
        if far:
            listed = ", ".join(f"seed {s}: {v:.4g}" for s, v in far.items())
            out.append(f"{row['cell']}: {listed}, far worse than the level's median {median:.4g} over {len(values)} "
                       "seeds (a retrain that diverged or did not train); it moves the mean and widens the interval")
    return out


#: Settings whose effect depends on the model overfitting.
REGULARIZERS = frozenset({"weight_decay", "l2_mode", "l2_scope", "keep_prob", "batchnorm", "input_norm"})


def convergence_warnings(levels: list[dict[str, Any]], min_effect: float, maximize: bool, metric: str) -> list[str]:
    """A level whose mean validation curve still improved by min_effect/2 or more over the
    last 10% of its epochs: training was not long enough to compare final values."""
    out = []
    for row in levels:
        gain = row.get("late_gain")
        if gain is not None and (gain if maximize else -gain) >= min_effect / 2:
            out.append(f"{row['cell']}: validation {metric} still improved by {abs(gain):.3g} over the last 10% of "
                       "epochs (mean over seeds): train longer before comparing final values")
    return out


def overfit_warning(levels: list[dict[str, Any]], min_effect: float, maximize: bool) -> list[str]:
    """No level's training score beats its test score by ``min_effect``: nothing to regularize
    (raised for questions about a regularizer only; see :func:`reviewer_warnings`)."""
    gaps = [(row["train_mean"] - row["mean"]) * (1 if maximize else -1) for row in levels
            if row.get("train_mean") is not None and row.get("mean") is not None]
    if gaps and max(gaps) < min_effect:
        return [f"no level overfits: the largest train - test gap is {max(gaps):.3g} < min_effect {min_effect:g}; "
                "a regularizer has little to act on (train longer, or use a bigger model or less data)"]
    return []


def baseline_warning(definition: Any, levels: list[dict[str, Any]], maximize: bool) -> list[str]:
    """A baseline the task computed (``baseline_<metric>`` on the validation split, stored on
    the study from ``load_data``'s info as the runner does) that is at least as good as every
    level's retrained validation score."""
    info = definition.task.load_data(definition.config.seed).info.get("study_user_attrs", {})
    baseline = info.get(f"baseline_{definition.metric}")
    vals = [row["val_mean"] for row in levels if row.get("val_mean") is not None]
    if not isinstance(baseline, (int, float)) or not vals:
        return []
    best = max(vals) if maximize else min(vals)
    if (baseline >= best) if maximize else (baseline <= best):
        about = info.get("baseline", "the task's baseline")
        return [f"{about} scores {definition.metric} = {baseline:.4g}, as good as or better than every level "
                f"(best {best:.4g}): the models do not beat a trivial method"]
    return []


def _test_size(test: Any) -> int | None:
    """Examples in a test split: tensors' rows, or what a Lightning task's test loader reads."""
    examples = getattr(test, "examples", None)
    return examples() if callable(examples) else len(test[1])


def split_warning(definition: Any, runs: list[Any], min_effect: float) -> list[str]:
    """One test example is worth more than ``min_effect`` (accuracy-like metrics)."""
    key = metric_key(definition.metric)
    if "acc" not in key:
        return []
    sizes = [_test_size(run.splits(definition.config.seed).test) for run in runs]
    n = min((s for s in sizes if s is not None), default=0)
    if n and 1 / n > min_effect:
        return [f"the test split has {n} examples: one example is {1 / n:.3g} > min_effect {min_effect:g}; "
                "differences below one example cannot be seen"]
    return []


def reviewer_warnings(definition: Any, design: Any, runs: list[Any], answer: dict[str, Any]) -> list[str]:
    """Every warning for ``answer`` (see the module docstring)."""
    from hpsearch.question.baselines import baseline_warnings

    levels, m = answer["levels"], design.question.min_effect
    maximize = definition.direction == "maximize"
    touched = set(design.factors) | {k for lv in design.levels for k in lv.settings}
    overfit = overfit_warning(levels, m, maximize) if touched & REGULARIZERS else []
    converged = convergence_warnings(levels, m, maximize, definition.metric)
    return [*edge_warnings(runs, levels), *tuning_warnings(levels, m), *outlier_seed_warnings(levels, m, maximize), *converged, *overfit,
            *baseline_warning(definition, levels, maximize),
            *baseline_warnings(answer.get("baselines", []), levels, maximize, answer["metric"]),
            *split_warning(definition, runs, m)]
