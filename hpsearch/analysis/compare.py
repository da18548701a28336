"""Paired comparisons of configurations run on the same seeds, as one Holm family.

Each comparison gets the mean paired difference, the paired t-test, an exact sign test and a
sign-flip permutation test. The family is every comparison whose test is defined (at least two
common seeds; a difference that is zero on every seed is p = 1, not dropped). The test a
verdict rests on is the t-test, or the exact permutation test where the difference is the same
on every seed (t undefined). Its p is Holm-adjusted over the family, and the interval printed
beside it is the t interval at the level Holm tested that comparison at (see
:func:`hpsearch.analysis.stats.holm_alphas`), so the interval excludes 0 exactly when the
adjusted p is below α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

from hpsearch.analysis.stats import (
    CONFIDENCE,
    holm,
    holm_alphas,
    paired_differences,
    permutation_test,
    seeds_to_reach,
    sign_test,
    smallest_exact_p,
    t_interval,
)


class SeedRuns(Protocol):
    """Results of one configuration: ``values[i]`` was measured with ``seeds[i]``."""

    @property
    def seeds(self) -> Sequence[int]: ...

    @property
    def values(self) -> Sequence[float]: ...


@dataclass(frozen=True)
class Paired:
    """One paired comparison ``a − b`` over the seeds both have, adjusted within its family.

    ``test`` names what the decision rests on: ``"t"`` (paired t-test), ``"permutation"`` (the
    difference is the same on every seed, so t is undefined), ``"identical"`` (zero on every
    seed: p = 1) or ``"none"`` (fewer than 2 common seeds: not in the family). ``ci_low`` /
    ``ci_high`` are the t interval at confidence ``ci_confidence`` (the Holm level; ``None`` when
    the spread is zero). ``smallest_p`` is the smallest p that test can give with these seeds,
    and ``seeds_needed`` the seeds the exact test would need to reach α when it cannot."""

    seeds: int
    mean_difference: float | None
    std_difference: float | None
    t_statistic: float | None
    p_value: float | None
    sign_p: float | None
    permutation_p: float | None
    test: str
    decision_p: float | None
    p_adjusted: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_confidence: float | None = None
    comparisons: int = 1
    smallest_p: float | None = None
    seeds_needed: int | None = None
    share_positive: float | None = None  # share of seeds with a − b > 0
    alpha: float = round(1 - CONFIDENCE, 12)

    @property
    def significant(self) -> bool:
        """The adjusted p is below α (and so the interval, where defined, excludes 0)."""
        return self.p_adjusted is not None and self.p_adjusted < self.alpha


def common_seeds(a: SeedRuns, b: SeedRuns) -> tuple[list[float], list[float]]:
    """The values of ``a`` and ``b`` on the seeds both have, in seed order."""
    va, vb = dict(zip(a.seeds, a.values)), dict(zip(b.seeds, b.values))
    common = sorted(set(va) & set(vb))
    return [va[s] for s in common], [vb[s] for s in common]


def _raw(xa: list[float], xb: list[float]) -> Paired:
    from scipy import stats

    n = len(xa)
    if n < 2:
        mean = xa[0] - xb[0] if n == 1 else None
        return Paired(n, mean, None, None, None, None, None, "none", None)
    d = paired_differences(xa, xb)
    mean = math.fsum(d) / n
    share = sum(x > 0 for x in d) / n
    sign_p, perm_p = sign_test(d), permutation_test(d)
    if all(x == 0 for x in d):
        return Paired(n, 0.0, 0.0, None, None, sign_p, perm_p, "identical", 1.0, share_positive=share)
    if len(set(d)) == 1:  # the same difference on every seed: zero variance, t undefined
        return Paired(n, mean, 0.0, None, None, sign_p, perm_p, "permutation", perm_p, share_positive=share)
    res = stats.ttest_1samp(d, 0.0)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1))
    return Paired(n, mean, sd, float(res.statistic), float(res.pvalue), sign_p, perm_p, "t", float(res.pvalue),
                  share_positive=share)


def paired_family(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], confidence: float = CONFIDENCE) -> list[Paired]:
    """Every ``(a, b)`` paired comparison (values already matched by seed), Holm-adjusted
    across the family, each with the interval that agrees with its adjusted p."""
    alpha = round(1 - confidence, 12)  # 0.05, not 0.050000000000000044
    raw = [_raw(list(a), list(b)) for a, b in pairs]
    decision = [t.decision_p for t in raw]
    adjusted, levels = holm(decision), holm_alphas(decision, alpha)
    m = sum(p is not None for p in decision)
    out = []
    for t, p_adj, level in zip(raw, adjusted, levels):
        ci: tuple[float | None, float | None] = (None, None)
        if t.test == "t" and level is not None:
            assert t.mean_difference is not None and t.std_difference is not None
            ci = t_interval(t.mean_difference, t.std_difference, t.seeds, 1 - level)
        smallest = 0.0 if t.test == "t" else smallest_exact_p(t.seeds) if t.test != "none" else None
        needed = None
        if t.test in ("permutation", "identical") and smallest is not None and max(m, 1) * smallest >= alpha:
            needed = seeds_to_reach(alpha, m)
        out.append(Paired(t.seeds, t.mean_difference, t.std_difference, t.t_statistic, t.p_value, t.sign_p,
                          t.permutation_p, t.test, t.decision_p, p_adj, ci[0], ci[1],
                          None if level is None else 1 - level, max(m, 1), smallest, needed, t.share_positive, alpha))
    return out


def adjustment_text(p: Paired) -> str:
    """How the interval and p of ``p`` are adjusted, in words."""
    if p.comparisons <= 1 or p.ci_confidence is None:
        return "unadjusted (one comparison)" if p.comparisons <= 1 else "undefined"
    return (f"Holm-adjusted over {p.comparisons} comparisons: p × its Holm step, interval at "
            f"{100 * p.ci_confidence:.4g}% (the level Holm tests it at)")


def reach_note(p: Paired) -> str:
    """Why this comparison cannot be significant with its seeds, or ''."""
    if p.seeds_needed is None or p.smallest_p is None:
        return ""
    scaled = f" (× {p.comparisons} at the first Holm step)" if p.comparisons > 1 else ""
    return (f"with {p.seeds} seeds the exact test cannot give p below 2/2^{p.seeds} = {p.smallest_p:.3g}{scaled}, "
            f"so it can never reach α = {p.alpha:g}; {p.seeds_needed} seeds could")


@dataclass(frozen=True)
class PairedTest(Paired):
    """The best configuration (rank 1) vs the one of rank ``other_rank`` (``verify``):
    ``mean_difference`` is best − other in the metric's units."""

    other_rank: int = 2
    best_beats_runner_up: bool = False
    verdict: str = ""


def compare_with_best(runs: Sequence[SeedRuns], maximize: bool, confidence: float = CONFIDENCE) -> list[PairedTest]:
    """Paired comparisons of ``runs[0]`` (the best) with each of ``runs[1:]`` as one Holm
    family; a verdict per comparison generated from the numbers only."""
    from dataclasses import asdict

    family = paired_family([common_seeds(runs[0], other) for other in runs[1:]], confidence)
    out = []
    for rank, p in enumerate(family, start=2):
        ahead = p.mean_difference is not None and (p.mean_difference > 0 if maximize else p.mean_difference < 0)
        out.append(PairedTest(**asdict(p), other_rank=rank, best_beats_runner_up=ahead and p.significant,
                              verdict=_verdict(p, ahead, rank)))
    return out


def paired_test(best: SeedRuns, runner_up: SeedRuns, maximize: bool, confidence: float = CONFIDENCE) -> PairedTest:
    """One paired comparison of ``best`` vs ``runner_up`` (nothing to adjust)."""
    return compare_with_best([best, runner_up], maximize, confidence)[0]


def _verdict(p: Paired, ahead: bool, rank: int) -> str:
    """One sentence from the numbers: who is ahead, whether significantly, on which test."""
    other = "the runner-up" if rank == 2 else f"rank {rank}"
    if p.test == "none":
        return f"too few common seeds ({p.seeds}) for a paired test with {other}"
    adjusted = f"; Holm-adjusted over {p.comparisons} comparisons: {_p(p.p_adjusted)}" if p.comparisons > 1 else ""
    if p.test == "identical":
        return f"identical results on every one of the {p.seeds} seeds: {other} does as well (p = 1{adjusted})"
    if p.test == "permutation":
        head = (f"the difference is {p.mean_difference:+.4g} on every one of the {p.seeds} seeds: zero variance, so the "
                f"t-test and its interval are undefined; exact permutation test p = {_p(p.permutation_p)}{adjusted}, "
                f"sign test p = {_p(p.sign_p)}")
    else:
        head = f"paired t-test p = {_p(p.p_value)}{adjusted}, sign test p = {_p(p.sign_p)}"
    note = reach_note(p)
    head += f"; {note}" if note else ""
    if p.seeds < 5:
        head += f"; only {p.seeds} seeds: the interval rests on the normality of the differences"
    if ahead and p.significant:
        return f"the best beats {other} ({head})"
    if ahead:
        return f"the best is ahead of {other} but not significantly ({head})"
    return f"{other} does as well or better on the test split ({head})"


def _p(p: float | None) -> str:
    return "undefined" if p is None else f"{p:.3g}"
