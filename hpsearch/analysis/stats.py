"""Statistics over seeds: mean, standard deviation and a t-distribution confidence interval of
one configuration, and a paired t-test of two configurations run on the same seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence

CONFIDENCE = 0.95


class Summary(NamedTuple):
    """Mean, sample standard deviation (ddof=1) and the two-sided confidence interval of a
    list of values; ``None`` where too few values define it."""

    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


def summarize(values: list[float], confidence: float = CONFIDENCE) -> Summary:
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
        return Summary(mean, std, mean, mean)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(mean, std, float(low), float(high))


@dataclass(frozen=True)
class PairedTest:
    """Best (rank 1) vs runner-up (rank 2) over the seeds both have: paired t-test."""

    seeds: int
    mean_difference: float | None  # best − runner-up, in the metric's units
    t_statistic: float | None
    p_value: float | None
    best_beats_runner_up: bool
    verdict: str


class SeedRuns(Protocol):
    """Results of one configuration: ``values[i]`` was measured with ``seeds[i]``."""

    @property
    def seeds(self) -> Sequence[int]: ...

    @property
    def values(self) -> Sequence[float]: ...


def paired_test(best: SeedRuns, runner_up: SeedRuns, maximize: bool, alpha: float = 1 - CONFIDENCE) -> PairedTest:
    """Paired t-test (``scipy.stats.ttest_rel``) of ``best`` vs ``runner_up`` over the seeds
    both have."""
    from scipy import stats

    a = dict(zip(best.seeds, best.values))
    b = dict(zip(runner_up.seeds, runner_up.values))
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return PairedTest(len(common), None, None, None, False, "too few common seeds for a paired test")
    xa = [a[s] for s in common]
    xb = [b[s] for s in common]
    diff = math.fsum(x - y for x, y in zip(xa, xb)) / len(common)
    if all(x == y for x, y in zip(xa, xb)):
        return PairedTest(len(common), 0.0, None, None, False, "identical results on every seed")
    res = stats.ttest_rel(xa, xb)
    t, p = float(res.statistic), float(res.pvalue)
    better = diff > 0 if maximize else diff < 0
    beats = better and p < alpha
    if beats:
        verdict = f"the best beats the runner-up (paired t-test p = {p:.3g} < {alpha:g})"
    elif better:
        verdict = f"the best is ahead but not significantly (p = {p:.3g})"
    else:
        verdict = f"the runner-up does as well or better on the test split (p = {p:.3g})"
    return PairedTest(len(common), diff, t, p, beats, verdict)
