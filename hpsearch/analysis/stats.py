"""Statistics over seeds: mean, standard deviation and a t-distribution confidence interval of
one configuration; paired comparisons of configurations run on the same seeds (paired t-test
with the CI of the mean difference, an exact sign test and an exact or Monte-Carlo sign-flip
permutation test beside it) and Holm's adjustment when several comparisons are made.

Degenerate variance is reported as undefined, never as a certainty: a zero standard deviation
gives no confidence interval (not ``[m, m]``), and a paired difference that is the same on every
seed gives no t statistic (not ``t = inf, p = 0``); the exact tests still apply there.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence

CONFIDENCE = 0.95
#: Up to this many paired seeds the permutation test enumerates all 2^n sign flips (exact).
EXACT_PERMUTATION_MAX = 16
#: Sign flips drawn (fixed seed, reproducible) for a Monte-Carlo permutation test beyond that.
PERMUTATION_DRAWS = 20_000


class Summary(NamedTuple):
    """Mean, sample standard deviation (ddof=1) and the two-sided confidence interval of a
    list of values; ``None`` where too few values define it, and no interval when the values
    do not vary (a zero variance estimate says nothing about the spread)."""

    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """:class:`Summary` of ``values`` with scipy's ``t.interval`` for the interval."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return Summary(None, None, None, None)
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(mean, None, None, None)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    if std == 0.0:
        return Summary(mean, std, None, None)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(mean, std, float(low), float(high))


def sign_test(differences: Sequence[float]) -> float | None:
    """Two-sided exact sign test (``scipy.stats.binomtest`` on the positive differences among
    the non-zero ones); ``None`` when every difference is zero."""
    from scipy import stats

    nonzero = [d for d in differences if d != 0]
    if not nonzero:
        return None
    return float(stats.binomtest(sum(d > 0 for d in nonzero), len(nonzero), 0.5).pvalue)


def permutation_test(differences: Sequence[float], draws: int = PERMUTATION_DRAWS, seed: int = 0) -> float | None:
    """Two-sided paired permutation (sign-flip) test of the mean difference: the share of sign
    assignments whose |mean| is at least the observed one. Exact (all 2^n flips) up to
    :data:`EXACT_PERMUTATION_MAX` pairs, else Monte Carlo with ``draws`` flips (p = (k+1)/(draws+1)).
    ``None`` when every difference is zero."""
    d = [float(x) for x in differences]
    n = len(d)
    if n == 0 or all(x == 0 for x in d):
        return None
    observed = abs(math.fsum(d)) * (1 - 1e-12)  # tolerate rounding in the re-summed flips
    if n <= EXACT_PERMUTATION_MAX:
        hits = sum(abs(math.fsum(s * x for s, x in zip(signs, d))) >= observed
                   for signs in itertools.product((1, -1), repeat=n))
        return hits / 2**n
    rng = random.Random(seed)
    hits = sum(abs(math.fsum(x if rng.random() < 0.5 else -x for x in d)) >= observed for _ in range(draws))
    return (hits + 1) / (draws + 1)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order;
    ``None`` entries stay ``None`` and do not count as comparisons."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class PairedTest:
    """The best configuration (rank 1) vs another one (``other_rank``) over the seeds both have.

    ``mean_difference`` is best − other in the metric's units with its paired-t confidence
    interval; ``t_statistic``/``p_value`` are the paired t-test (``None`` when the difference
    does not vary over seeds: undefined, not infinite); ``sign_p`` the exact sign test,
    ``permutation_p`` the sign-flip permutation test; ``p_adjusted`` the Holm-adjusted p of the
    test the verdict uses (the t-test, or the permutation test where t is undefined) across all
    comparisons of the best with the others.
    """

    seeds: int
    mean_difference: float | None  # best − other, in the metric's units
    t_statistic: float | None
    p_value: float | None
    best_beats_runner_up: bool
    verdict: str
    other_rank: int = 2
    ci_low: float | None = None
    ci_high: float | None = None
    sign_p: float | None = None
    permutation_p: float | None = None
    p_adjusted: float | None = None
    comparisons: int = 1


class SeedRuns(Protocol):
    """Results of one configuration: ``values[i]`` was measured with ``seeds[i]``."""

    @property
    def seeds(self) -> Sequence[int]: ...

    @property
    def values(self) -> Sequence[float]: ...


def _paired_values(best: SeedRuns, other: SeedRuns) -> tuple[list[float], list[float]]:
    a = dict(zip(best.seeds, best.values))
    b = dict(zip(other.seeds, other.values))
    common = sorted(set(a) & set(b))
    return [a[s] for s in common], [b[s] for s in common]


def _raw_test(xa: list[float], xb: list[float], confidence: float) -> PairedTest:
    """The unadjusted statistics of one paired comparison (verdict filled in by the caller)."""
    from scipy import stats

    n = len(xa)
    if n < 2:
        return PairedTest(n, None, None, None, False, "too few common seeds for a paired test")
    diffs = [x - y for x, y in zip(xa, xb)]
    mean = math.fsum(diffs) / n
    sign_p, perm_p = sign_test(diffs), permutation_test(diffs)
    if all(d == 0 for d in diffs):
        return PairedTest(n, 0.0, None, None, False, "identical results on every seed", sign_p=sign_p, permutation_p=perm_p)
    if all(d == diffs[0] for d in diffs):  # constant difference: zero variance, t undefined
        return PairedTest(n, mean, None, None, False, "", sign_p=sign_p, permutation_p=perm_p)
    res = stats.ttest_rel(xa, xb)
    ci = summarize(diffs, confidence)  # the paired t interval: mean ± t·sd/√n of the differences
    return PairedTest(n, mean, float(res.statistic), float(res.pvalue), False, "", ci_low=ci.ci_low,
                      ci_high=ci.ci_high, sign_p=sign_p, permutation_p=perm_p)


def _decision_p(test: PairedTest) -> float | None:
    """The p the verdict rests on: the t-test's, or the permutation test's where t is undefined."""
    if test.mean_difference in (None, 0.0):
        return None
    return test.p_value if test.p_value is not None else test.permutation_p


def compare_with_best(runs: Sequence[SeedRuns], maximize: bool, confidence: float = CONFIDENCE) -> list[PairedTest]:
    """Paired comparisons of ``runs[0]`` (the best) with each of ``runs[1:]``, Holm-adjusted
    across them; a verdict per comparison generated from the numbers only."""
    alpha = 1 - confidence
    raw = [_raw_test(*_paired_values(runs[0], other), confidence) for other in runs[1:]]
    adjusted = holm([_decision_p(t) for t in raw])
    m = sum(p is not None for p in adjusted)
    out = []
    for rank, (test, p_adj) in enumerate(zip(raw, adjusted), start=2):
        verdict = test.verdict or _verdict(test, p_adj, m, maximize, alpha, rank)
        better = test.mean_difference is not None and (test.mean_difference > 0 if maximize else test.mean_difference < 0)
        beats = bool(better and p_adj is not None and p_adj < alpha)
        out.append(PairedTest(test.seeds, test.mean_difference, test.t_statistic, test.p_value, beats, verdict, rank,
                              test.ci_low, test.ci_high, test.sign_p, test.permutation_p, p_adj, max(m, 1)))
    return out


def _verdict(test: PairedTest, p_adj: float | None, m: int, maximize: bool, alpha: float, rank: int) -> str:
    """One sentence from the numbers: who is ahead, whether significantly, and on which test."""
    diff = test.mean_difference or 0.0
    better = diff > 0 if maximize else diff < 0
    other = "the runner-up" if rank == 2 else f"rank {rank}"
    adjusted = f"; Holm-adjusted over {m} comparisons: {_p(p_adj)}" if m > 1 else ""
    if test.p_value is None:
        head = (f"the difference is {diff:+.4g} on every one of the {test.seeds} seeds: zero variance, so the "
                f"t-test and its interval are undefined; permutation test p = {_p(test.permutation_p)}{adjusted}, "
                f"sign test p = {_p(test.sign_p)}")
    else:
        head = f"paired t-test p = {_p(test.p_value)}{adjusted}, sign test p = {_p(test.sign_p)}"
    if better and p_adj is not None and p_adj < alpha:
        return f"the best beats {other} ({head})"
    if better:
        return f"the best is ahead of {other} but not significantly ({head})"
    return f"{other} does as well or better on the test split ({head})"


def _p(p: float | None) -> str:
    return "undefined" if p is None else f"{p:.3g}"


def paired_test(best: SeedRuns, runner_up: SeedRuns, maximize: bool, alpha: float = 1 - CONFIDENCE) -> PairedTest:
    """One paired comparison of ``best`` vs ``runner_up`` over the seeds both have (see
    :func:`compare_with_best`; with one comparison there is nothing to adjust)."""
    return compare_with_best([best, runner_up], maximize, 1 - alpha)[0]
