"""Verdicts fixed in advance by the numbers alone.

For a paired difference d = level − reference (in the metric's units) with its Holm-level
interval (see :mod:`hpsearch.analysis.compare`) and the smallest effect that matters ``m``:

- **better / worse**: the interval excludes 0 (the adjusted p < α) and |d| ≥ m; better when d
  moves the metric in its direction;
- **equivalent**: the whole interval lies inside (−m, +m): no effect as large as m;
- **inconclusive**: anything else, with the seeds that would likely settle it.

Where the difference is the same on every seed (no interval), only the exact test can make it
better/worse; zero on every seed (the levels trained the same models) is equivalent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from hpsearch.analysis.compare import Paired, reach_note

VERDICTS = ("better", "worse", "equivalent", "inconclusive")
#: Power at which "seeds that would likely settle it" is computed.
POWER = 0.8
MAX_SEEDS_ESTIMATE = 100_000


@dataclass(frozen=True)
class Verdict:
    """A verdict, why, and (when inconclusive) about how many seeds would settle it."""

    verdict: str
    reason: str
    seeds_to_settle: int | None = None


def seeds_to_settle(p: Paired, min_effect: float) -> int | None:
    """Seeds with which, at the observed spread, the interval would likely (power
    :data:`POWER`) exclude 0 (when |d| ≥ ``min_effect``) or fit inside ±``min_effect`` (when
    smaller); normal approximation at the comparison's adjusted level."""
    from scipy import stats

    if p.std_difference is None or p.mean_difference is None or p.std_difference == 0:
        return p.seeds_needed
    size = abs(p.mean_difference)
    target = size if size >= min_effect else min_effect - size
    if target <= 0:
        return None
    level = 1 - (p.ci_confidence if p.ci_confidence is not None else 1 - p.alpha)
    z = stats.norm.ppf(1 - level / 2) + stats.norm.ppf(POWER)
    n = math.ceil((z * p.std_difference / target) ** 2)
    return min(max(n, p.seeds + 1), MAX_SEEDS_ESTIMATE)


def decide(p: Paired, min_effect: float, maximize: bool) -> Verdict:
    """The verdict of one comparison (see the module docstring)."""
    if p.test == "none":
        return Verdict("inconclusive", f"only {p.seeds} common seed(s): no paired test", 2)
    d = p.mean_difference or 0.0
    improves = d > 0 if maximize else d < 0
    if p.test == "identical":
        return Verdict("equivalent", f"identical test results on all {p.seeds} seeds (the levels trained the same models)")
    if p.test == "permutation":
        same = f"the same difference on all {p.seeds} seeds"
        if p.significant and abs(d) >= min_effect:
            return Verdict("better" if improves else "worse", f"{same} (exact permutation test, adjusted p = {p.p_adjusted:.3g})")
        if abs(d) < min_effect and p.seeds_needed is None:  # enough seeds for the exact test to see a difference
            return Verdict("equivalent", f"{same}, {d:+.4g}, inside ±{min_effect:g}")
        return Verdict("inconclusive", reach_note(p) or f"{same}, not significant after adjustment", p.seeds_needed)
    assert p.ci_low is not None and p.ci_high is not None
    if p.significant and abs(d) >= min_effect:
        return Verdict("better" if improves else "worse", f"the interval excludes 0 and |difference| ≥ {min_effect:g}")
    if -min_effect < p.ci_low and p.ci_high < min_effect:
        return Verdict("equivalent", f"the whole interval lies inside ±{min_effect:g}")
    why = ("the interval excludes 0 but the difference is below min_effect and the interval reaches past it"
           if p.significant else "the interval includes 0 and reaches past ±min_effect")
    return Verdict("inconclusive", why, seeds_to_settle(p, min_effect))


def share_better(level: Sequence[float], reference: Sequence[float], maximize: bool) -> float | None:
    """The share of seeds on which the level beat the reference (ties count half)."""
    if not level:
        return None
    score = sum(1.0 if (a > b if maximize else a < b) else 0.5 if a == b else 0.0 for a, b in zip(level, reference))
    return score / len(level)
