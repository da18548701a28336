"""Verdict statistics that rounding cannot fool: realistic k/N accuracies, the Holm family,
non-finite inputs, what n seeds can show, intervals that agree with the adjusted verdict, and an
A/A calibration on discrete accuracies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hpsearch.analysis.compare import paired_family, paired_test
from hpsearch.analysis.stats import (
    NonFiniteScoreError,
    holm,
    permutation_test,
    seeds_to_reach,
    sign_test,
    smallest_exact_p,
    summarize,
)
from hpsearch.analysis.verify import ConfigStats, default_seeds

SEEDS = list(range(100, 120))


def runs(values: list[float]) -> ConfigStats:
    return ConfigStats(1, 1, 0.0, {}, SEEDS[: len(values)], values, len(values), *summarize(values))


def test_one_more_test_example_on_every_seed_is_a_constant_difference() -> None:
    """k = [343, 337, 332, 333, 355] of 360: (k+1)/360 − k/360 is 1/360 only up to rounding.
    Exact equality gave t = 1.25e14, p = 2.4e-56 and a 1e-13-wide CI; now t and the CI are
    undefined, the exact test decides, and 5 seeds cannot reach 0.05 (p ≥ 2/32), which is said."""
    k = np.array([343, 337, 332, 333, 355])
    a, b = list((k + 1) / 360), list(k / 360)
    assert len(set(np.subtract(a, b))) > 1  # not bit-identical: the case exact equality missed
    test = paired_test(runs(a), runs(b), maximize=True)
    assert test.t_statistic is None and test.p_value is None and test.ci_low is None and test.ci_high is None
    assert test.mean_difference == pytest.approx(1 / 360) and test.test == "permutation"
    assert test.permutation_p == pytest.approx(2 / 32) and not test.best_beats_runner_up
    assert test.smallest_p == pytest.approx(2 / 32) and test.seeds_needed == 6
    assert "cannot give p below" in test.verdict and "6 seeds could" in test.verdict


def test_constant_values_have_no_interval_whatever_the_rounding() -> None:
    assert summarize([0.1] * 3) == (0.1, 0.0, None, None)
    k = np.array([100, 100, 100])
    assert summarize(list((k + 1) / 360 - k / 360 + 0.5)) [1:] == (0.0, None, None)
    mean, std, lo, hi = summarize([0.9, 0.9 + 1 / 360, 0.9])
    assert std is not None and std > 0 and lo is not None and hi is not None and lo < mean < hi


def test_identical_results_count_in_the_holm_family_as_p_one() -> None:
    """Best vs three others, two with a mean difference of exactly 0: the family has 3
    comparisons (p_adj of the first 3 × 0.034: not significant), not 1 (0.034: "beats")."""
    best = [0.95, 0.96, 0.97, 0.96, 0.95]
    other = [0.94, 0.94, 0.96, 0.96, 0.94]
    tests = [paired_test(runs(best), runs(other), maximize=True)]
    family = paired_family([(best, other), (best, best), (best, [0.96, 0.95, 0.97, 0.95, 0.96])])
    raw = stats.ttest_rel(best, other).pvalue
    assert tests[0].p_adjusted == pytest.approx(raw) and tests[0].significant  # alone: 0.0196
    assert [f.comparisons for f in family] == [3, 3, 3]
    assert family[1].test == "identical" and family[1].decision_p == 1.0
    assert family[2].mean_difference == pytest.approx(0.0) and family[2].decision_p == pytest.approx(1.0)
    assert family[0].p_adjusted == pytest.approx(holm([raw, 1.0, 1.0])[0]) == pytest.approx(3 * raw)
    assert not family[0].significant
    assert family[0].ci_low is not None and family[0].ci_low < 0  # the interval agrees: it covers 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_refused_before_any_statistic(bad: float) -> None:
    with pytest.raises(NonFiniteScoreError, match="never a seed's score"):
        summarize([0.9, bad, 0.91])
    with pytest.raises(NonFiniteScoreError):
        permutation_test([0.01, bad, 0.02])
    with pytest.raises(NonFiniteScoreError):
        sign_test([0.01, bad])
    with pytest.raises(NonFiniteScoreError):
        paired_test(runs([0.9, 0.91, bad]), runs([0.9, 0.9, 0.9]), maximize=True)


def test_what_n_seeds_can_show() -> None:
    assert smallest_exact_p(5) == pytest.approx(0.0625) and smallest_exact_p(6) == pytest.approx(0.03125)
    assert seeds_to_reach(0.05) == 6 and seeds_to_reach(0.05, comparisons=2) == 7
    assert default_seeds(top=3) == 7 and default_seeds(top=2) == 6 and default_seeds(top=1) == 6
    a = [0.9, 0.91, 0.92, 0.93, 0.94, 0.95]
    reached = paired_test(runs([x + 1 / 120 for x in a]), runs(a), maximize=True)
    assert reached.test == "permutation" and reached.significant and reached.seeds_needed is None


def test_two_seed_verdicts_carry_a_caveat() -> None:
    test = paired_test(runs([0.95, 0.97]), runs([0.90, 0.91]), maximize=True)
    assert "only 2 seeds" in test.verdict


def test_the_printed_interval_excludes_zero_exactly_when_the_adjusted_p_is_significant() -> None:
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(300):
        m, n = int(rng.integers(2, 6)), int(rng.integers(3, 12))
        base = rng.normal(0.9, 0.02, n)
        pairs = [(list(base + rng.normal(rng.normal(0, 0.01), 0.01, n)), list(base)) for _ in range(m)]
        for p in paired_family(pairs):
            assert p.test == "t" and p.ci_low is not None and p.ci_high is not None
            assert (p.ci_low > 0 or p.ci_high < 0) == p.significant
            checked += 1
    assert checked > 600


@pytest.mark.parametrize("n_test, seeds", [(120, 5), (120, 10), (360, 5), (360, 10)])
def test_a_a_calibration_on_discrete_accuracies(n_test: int, seeds: int) -> None:
    """Two configurations of the same quality, scored on a k/N test split with a shared per-seed
    effect: the interval excludes 0 in 5% ± 2% of 1,000 questions, and never is zero-width."""
    rng = np.random.default_rng(n_test + seeds)
    excluded = 0
    for _ in range(1000):
        p = np.clip(0.9 + rng.normal(0, 0.03, seeds), 0.5, 0.99)  # the seed's effect on both
        a, b = rng.binomial(n_test, p) / n_test, rng.binomial(n_test, p) / n_test
        c = paired_family([(list(a), list(b))])[0]
        if c.ci_low is not None and c.ci_high is not None:
            assert c.ci_high - c.ci_low > 1e-6
            excluded += c.ci_low > 0 or c.ci_high < 0
        else:
            assert not c.significant or c.test == "permutation"
    assert 0.03 <= excluded / 1000 <= 0.07


def test_custom_optimizer_groups_get_exactly_their_scopes_decay() -> None:
    from hpsearch.regularization import Regularization, decay_shrinkage, make_optimizer, parameter_groups

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    for optimizer in ("adamw", "adam", "sgd"):
        zero = Regularization(optimizer=optimizer, weight_decay=0.0)
        opt = make_optimizer(net, zero, groups=[{"params": list(net.parameters())}])
        assert all(g["weight_decay"] == 0.0 for g in opt.param_groups)
        reg = Regularization(optimizer=optimizer, weight_decay=1e-2, l2_scope="weights")
        opt = make_optimizer(net, reg, groups=[{"params": list(net.parameters())}])
        decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 1e-2 for p in g["params"]}
        assert decayed == {id(net[0].weight), id(net[2].weight)}  # biases are out of scope
    reg = Regularization(weight_decay=1e-2, learning_rate=1e-3)
    head = {"name": "head", "params": list(net[2].parameters()), "lr": 3e-3}
    groups = parameter_groups(net, reg, extra_groups=[head])
    assert decay_shrinkage(reg, 100, groups) == pytest.approx(3e-3 * 1e-2 * 100)  # the head's own lr
    assert decay_shrinkage(reg, 100) == pytest.approx(1e-3 * 1e-2 * 100)


def test_a_seed_far_worse_than_its_level_is_named_and_ordinary_spread_is_not() -> None:
    from hpsearch.question.warnings import outlier_seed_warnings

    def level(values: list[float]) -> dict:
        return {"cell": "c", "seeds": list(range(len(values))), "values": values}

    ordinary = [0.47 + 0.01 * ((7 * i) % 11 - 5) for i in range(30)]  # ±0.05 around 0.47
    assert outlier_seed_warnings([level(ordinary)], 0.05, maximize=False) == []
    diverged = ordinary[:24] + [18.6] + ordinary[25:]
    (warning,) = outlier_seed_warnings([level(diverged)], 0.05, maximize=False)
    assert warning.startswith("c: seed 24: 18.6, far worse than the level's median")
    assert outlier_seed_warnings([level(diverged)], 0.05, maximize=True) == []  # better is never flagged
    accuracies = [0.95] * 9 + [0.5]  # a chance-level seed among identical ones (MAD 0)
    assert "seed 9: 0.5" in outlier_seed_warnings([level(accuracies)], 0.01, maximize=True)[0]
    assert outlier_seed_warnings([level([0.95] * 9 + [0.9])], 0.01, maximize=True) == []  # within 10 x min_effect
