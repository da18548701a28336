"""Statistics over seeds: mean, standard deviation and a t-distribution confidence interval of
one configuration; the exact sign test and sign-flip permutation test of paired differences;
Holm's step-down adjustment with intervals that agree with it; what n seeds can show.

One rule decides "no spread" everywhere: values whose range is within a tolerance scaled to the
data (:func:`tolerance`, ``1e-9 ×`` their largest magnitude) do not vary. Test accuracies are
k/N, so (k+1)/N − k/N is 1/N only up to rounding; exact float equality would call such a
difference constant on some seeds and give ``t = 1e14`` on others. Degenerate variance is
reported as undefined, never as a certainty: no interval (not ``[m, m]``), no t statistic (not
``t = inf, p = 0``). Non-finite values are refused before any statistic.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from typing import Any, NamedTuple, Sequence

CONFIDENCE = 0.95
#: Relative tolerance of "equal": far above float rounding (1e-16), far below any real
#: difference of test metrics (one example in a million is 1e-6).
RELATIVE_TOLERANCE = 1e-9
#: Up to this many paired seeds the permutation test enumerates all 2^n sign flips (exact).
EXACT_PERMUTATION_MAX = 16
#: Sign flips drawn (fixed seed, reproducible) for a Monte-Carlo permutation test beyond that.
PERMUTATION_DRAWS = 20_000


class NonFiniteScoreError(ValueError):
    """A NaN or infinite value was handed to a statistic: never a seed's score."""


def check_finite(values: Sequence[float], what: str = "score") -> list[float]:
    """``values`` as floats; :class:`NonFiniteScoreError` naming the first NaN/inf."""
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise NonFiniteScoreError(f"{what} #{i + 1} is {v!r}: a non-finite result is never a seed's score; "
                                      "fail that run instead of scoring it")
    return out


def tolerance(*groups: Sequence[float]) -> float:
    """The absolute tolerance below which values of these groups count as equal."""
    return RELATIVE_TOLERANCE * max((abs(v) for g in groups for v in g), default=0.0)


def is_constant(values: Sequence[float], tol: float) -> bool:
    """True when ``values`` span no more than ``tol`` (no spread to estimate)."""
    return not values or max(values) - min(values) <= tol


class Summary(NamedTuple):
    """Mean, sample standard deviation (ddof=1) and the two-sided confidence interval of a
    list of values; ``None`` where too few values define it, and no interval when the values
    do not vary (a zero variance estimate says nothing about the spread)."""

    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


def t_interval(mean: float, std: float, n: int, confidence: float) -> tuple[float, float]:
    """The t interval ``mean ± t_{(1+c)/2, n-1}·std/√n``."""
    from scipy import stats

    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return float(low), float(high)


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """:class:`Summary` of ``values`` (finite; see :func:`check_finite`)."""
    values = check_finite(values)
    n = len(values)
    if n == 0:
        return Summary(None, None, None, None)
    mean = values[0] if len(set(values)) == 1 else math.fsum(values) / n
    if n == 1:
        return Summary(mean, None, None, None)
    if is_constant(values, tolerance(values)):
        return Summary(mean, 0.0, None, None)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(mean, std, *t_interval(mean, std, n, confidence))


def paired_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a[i] − b[i]`` with rounding noise removed: a difference within :func:`tolerance` of
    the scores is 0, and differences that are equal within it are made exactly equal (their mean)."""
    a, b = check_finite(a), check_finite(b)
    if len(a) != len(b):
        raise ValueError(f"paired differences need as many values on each side, got {len(a)} and {len(b)}")
    tol = tolerance(a, b)
    diffs = [0.0 if abs(x - y) <= tol else x - y for x, y in zip(a, b)]
    if diffs and is_constant(diffs, tol):
        mean = math.fsum(diffs) / len(diffs)
        diffs = [0.0 if abs(mean) <= tol else mean] * len(diffs)
    return diffs


def sign_test(differences: Sequence[float]) -> float | None:
    """Two-sided exact sign test (``scipy.stats.binomtest`` on the positive differences among
    the non-zero ones); ``None`` when every difference is zero."""
    from scipy import stats

    nonzero = [d for d in check_finite(differences, "difference") if d != 0]
    if not nonzero:
        return None
    return float(stats.binomtest(sum(d > 0 for d in nonzero), len(nonzero), 0.5).pvalue)


def permutation_test(differences: Sequence[float], draws: int = PERMUTATION_DRAWS, seed: int = 0) -> float | None:
    """Two-sided paired permutation (sign-flip) test of the mean difference: the share of sign
    assignments whose |mean| is at least the observed one. Exact (all 2^n flips) up to
    :data:`EXACT_PERMUTATION_MAX` pairs, else Monte Carlo with ``draws`` flips (p = (k+1)/(draws+1)).
    ``None`` when every difference is zero."""
    d = check_finite(differences, "difference")
    n = len(d)
    if n == 0 or all(x == 0 for x in d):
        return None
    import numpy as np

    observed = abs(math.fsum(d)) * (1 - 1e-9)  # tolerate rounding in the re-summed flips
    if n <= EXACT_PERMUTATION_MAX:
        hits = int((np.abs(_all_signs(n) @ np.array(d)) >= observed).sum())
        return hits / 2**n
    rng = random.Random(seed)
    hits = sum(abs(math.fsum(x if rng.random() < 0.5 else -x for x in d)) >= observed for _ in range(draws))
    return (hits + 1) / (draws + 1)


@functools.lru_cache(maxsize=EXACT_PERMUTATION_MAX)
def _all_signs(n: int) -> Any:
    """Every assignment of ±1 to ``n`` pairs, one per row (2^n × n)."""
    import numpy as np

    return np.array(list(itertools.product((1.0, -1.0), repeat=n)))


def smallest_exact_p(n: int) -> float:
    """The smallest two-sided p the exact sign-flip (and sign) test can give with ``n`` pairs:
    2/2ⁿ (all differences of one sign)."""
    return min(1.0, 2.0 / 2**n)


def seeds_to_reach(alpha: float, comparisons: int = 1) -> int:
    """The fewest seeds with which the exact tests can reach ``alpha`` on every one of
    ``comparisons`` Holm-adjusted comparisons (the first Holm step multiplies p by their number)."""
    n = 1
    while max(comparisons, 1) * smallest_exact_p(n) >= alpha:
        n += 1
    return n


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order;
    ``None`` entries (undefined tests) stay ``None`` and do not count as comparisons."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def holm_alphas(p_values: Sequence[float | None], alpha: float) -> list[float | None]:
    """The level at which Holm's procedure tests each comparison: α/(m−r) for the r-th smallest
    p (0-based) up to the first one it does not reject, and that step's level for every later one
    (the procedure stops there). A raw interval at confidence 1 − that level excludes 0 exactly
    when the Holm-adjusted p is below α (for the t-test, whose p and interval invert each other)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    out: list[float | None] = [None] * len(p_values)
    stopped: int | None = None
    for rank, (p, i) in enumerate(indexed):
        step = rank if stopped is None else stopped
        out[i] = alpha / (m - step)
        if stopped is None and p >= alpha / (m - rank):
            stopped = rank
    return out
