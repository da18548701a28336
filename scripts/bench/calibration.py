"""Calibration of the verdict statistics on simulated results (no training).

1. A/A on discrete accuracies (issue "verdicts you can trust"): two configurations of the same
   quality scored on a k/N test split (N = 120, 360) with a shared per-seed effect, 5 and 10
   seeds: the share of comparisons whose (paired t) interval excludes 0, and how many intervals
   had zero width.
2. Questions (``hpsearch answer``'s rule): 1,000 A/A questions (share of better/worse), a planted
   difference of 2 standard deviations of one level's seed noise at 5 seeds (found share vs the
   power the t-test predicts), and a zero difference with small noise (share equivalent).

Ends with RESULT lines: ``aa_rate_gap_<N>_<seeds>`` and ``question_aa_rate_gap`` (|rate − 0.05|,
goal <= 0.02), ``question_power_gap`` (|found − predicted|, goal <= 0.05) and
``question_equivalent_rate`` (goal >= 0.95). ``--reps`` sets the comparisons per A/A case.
"""

from __future__ import annotations

import numpy as np
from common import result
from scipy import stats

from hpsearch.analysis.compare import paired_family
from hpsearch.question.cells import Cell, Level, QuestionPlan
from hpsearch.question.config import QuestionConfig
from hpsearch.question.effects import comparisons


def aa_discrete(n_test: int, seeds: int, reps: int) -> tuple[float, int]:
    rng = np.random.default_rng(n_test * 100 + seeds)
    excluded = zero_width = 0
    for _ in range(reps):
        p = np.clip(0.9 + rng.normal(0, 0.03, seeds), 0.5, 0.99)
        a, b = rng.binomial(n_test, p) / n_test, rng.binomial(n_test, p) / n_test
        c = paired_family([(list(a), list(b))])[0]
        if c.ci_low is not None and c.ci_high is not None:
            zero_width += c.ci_high - c.ci_low <= 1e-12
            excluded += c.ci_low > 0 or c.ci_high < 0
    return excluded / reps, zero_width


def design(min_effect: float, seeds: int) -> QuestionPlan:
    q = QuestionConfig(asks="a or b?", compare="x", levels={"a": {}, "b": {}}, budget=1, seeds=seeds, min_effect=min_effect)
    a, b = Level("a", ("a",)), Level("b", ("b",))
    return QuestionPlan(q, ["x"], [a, b], a, [()], [Cell(a), Cell(b)])


def verdicts(seed: int, delta: float, noise: float, seeds: int, min_effect: float, n: int = 1000) -> list[str]:
    rng, plan, out = np.random.default_rng(seed), design(min_effect, seeds), []
    for _ in range(n):
        shared = rng.normal(0.85, 0.03, seeds)
        a, b = shared + rng.normal(0, noise, seeds), shared + delta + rng.normal(0, noise, seeds)
        out.append(comparisons(plan, {"a": dict(enumerate(a)), "b": dict(enumerate(b))}, maximize=True)[0]["verdict"])
    return out


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000, help="comparisons per A/A case (questions: half)")
    reps = parser.parse_args().reps
    for n_test in (120, 360):
        for seeds in (5, 10):
            rate, zero = aa_discrete(n_test, seeds, reps)
            print(f"A/A k/{n_test}, {seeds} seeds: interval excludes 0 in {rate:.3f} of {reps}; zero-width intervals: {zero}")
            result(f"aa_rate_gap_{n_test}_{seeds}", abs(rate - 0.05), "<=", 0.02)
    questions = max(reps // 2, 1)
    aa = verdicts(7, 0.0, 0.01, 10, 1e-6, n=questions)
    rate = sum(v in ("better", "worse") for v in aa) / len(aa)
    print(f"question A/A (10 seeds, {questions} questions): better/worse in {rate:.3f}")
    result("question_aa_rate_gap", abs(rate - 0.05), "<=", 0.02)
    seeds, noise = 5, 0.01
    found = sum(v == "better" for v in verdicts(8, 2 * noise, noise, seeds, 1e-6, n=questions)) / questions
    nc = (2 / np.sqrt(2)) * np.sqrt(seeds)
    crit = stats.t.ppf(0.975, seeds - 1)
    predicted = stats.nct.sf(crit, seeds - 1, nc) + stats.nct.cdf(-crit, seeds - 1, nc)
    print(f"planted 2-sd difference, 5 seeds: found {found:.3f}, t-test power {predicted:.3f}")
    result("question_power_gap", abs(found - predicted), "<=", 0.05)
    eq = verdicts(9, 0.0, 0.002, 10, 0.01, n=questions)
    share = sum(v == "equivalent" for v in eq) / len(eq)
    print(f"zero difference, small noise (sd 0.002, min_effect 0.01, 10 seeds): equivalent in {share:.3f}")
    result("question_equivalent_rate", share, ">=", 0.95)


if __name__ == "__main__":
    main()
