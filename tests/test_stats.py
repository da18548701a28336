"""The verification statistics against scipy on known inputs: paired t interval, sign test,
permutation test, Holm's adjustment; degenerate variance reported as undefined; configurations
that train the same model merged."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from scipy import stats

from hpsearch.analysis.compare import compare_with_best, paired_test
from hpsearch.analysis.stats import holm, permutation_test, sign_test, summarize
from hpsearch.analysis.verify import ConfigStats, top_configs
from hpsearch.params import same_model_key

SEEDS = [10, 11, 12, 13, 14, 15]


def runs(values: list[float]) -> ConfigStats:
    return ConfigStats(1, 1, 0.0, {}, SEEDS[: len(values)], values, len(values), *summarize(values))


def test_zero_variance_has_no_interval() -> None:
    assert summarize([0.9, 0.9, 0.9]) == (0.9, 0.0, None, None)  # not [0.9, 0.9]


def test_paired_t_interval_and_p_match_scipy() -> None:
    a = [0.95, 0.96, 0.97, 0.96, 0.93, 0.94]
    b = [0.90, 0.905, 0.92, 0.90, 0.93, 0.91]
    test = paired_test(runs(a), runs(b), maximize=True)
    ref = stats.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert test.t_statistic == pytest.approx(ref.statistic) and test.p_value == pytest.approx(ref.pvalue)
    assert (test.ci_low, test.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert test.mean_difference == pytest.approx(np.mean(np.subtract(a, b)))
    assert test.best_beats_runner_up and test.p_adjusted == test.p_value and test.comparisons == 1


def test_constant_paired_difference_is_undefined_not_certain() -> None:
    """One test image more on every seed: t would be inf and p 0; here t, p and the CI are
    undefined, the exact tests decide, and 4 seeds cannot make it significant (p = 2/16)."""
    a = [0.9 + 1 / 360, 0.91 + 1 / 360, 0.92 + 1 / 360, 0.93 + 1 / 360]
    b = [0.9, 0.91, 0.92, 0.93]
    diffs = np.subtract(a, b)
    a = list(np.add(b, diffs[0]))  # make the difference exactly constant in floating point
    test = paired_test(runs(a), runs(b), maximize=True)
    assert test.t_statistic is None and test.p_value is None and test.ci_low is None and test.ci_high is None
    assert test.permutation_p == pytest.approx(2 / 16) and test.sign_p == pytest.approx(stats.binomtest(4, 4).pvalue)
    assert not test.best_beats_runner_up and "undefined" in test.verdict


def test_sign_test_matches_scipy_binomtest() -> None:
    d = [0.1, 0.2, -0.05, 0.3, 0.0, 0.1, 0.2]
    assert sign_test(d) == pytest.approx(stats.binomtest(5, 6, 0.5).pvalue)
    assert sign_test([0.0, 0.0]) is None


def test_exact_permutation_test_matches_scipy() -> None:
    a = np.array([0.95, 0.91, 0.97, 0.96, 0.93, 0.90, 0.94])
    b = np.array([0.90, 0.92, 0.92, 0.90, 0.93, 0.91, 0.91])
    ref = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                                 n_resamples=np.inf, alternative="two-sided", vectorized=True)
    assert permutation_test(list(a - b)) == pytest.approx(ref.pvalue)
    many = list(np.random.default_rng(0).normal(0.01, 0.02, size=20))  # Monte-Carlo beyond 16 pairs
    p = permutation_test(many)
    assert p is not None and 0 < p <= 1 and p == permutation_test(many)  # reproducible


def test_holm_known_values_and_none() -> None:
    # sorted p: 0.01·3 = 0.03, 0.03·2 = 0.06, then max(0.06, 0.04·1) = 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.2]) == [pytest.approx(0.5), None, pytest.approx(0.4)]
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_comparisons_with_the_best_are_holm_adjusted() -> None:
    best = [0.95, 0.96, 0.97, 0.96, 0.95, 0.97]
    others = [[0.90, 0.905, 0.92, 0.90, 0.91, 0.93], [0.94, 0.965, 0.96, 0.955, 0.96, 0.95], [0.93, 0.95, 0.96, 0.94, 0.92, 0.95]]
    tests = compare_with_best([runs(best)] + [runs(o) for o in others], maximize=True)
    raw = [stats.ttest_rel(best, o).pvalue for o in others]
    assert [t.p_value for t in tests] == pytest.approx(raw)
    assert [t.p_adjusted for t in tests] == pytest.approx(holm(raw))
    assert [t.other_rank for t in tests] == [2, 3, 4] and all(t.comparisons == 3 for t in tests)
    assert all(t.best_beats_runner_up == (t.p_adjusted < 0.05) for t in tests)


def test_configurations_that_train_the_same_model_are_merged() -> None:
    assert same_model_key({"weight_decay": 0.0, "l2_scope": "fc", "l2_mode": "loss"}) == {"weight_decay": 0.0}
    assert same_model_key({"l2_scope": "fc", "momentum": 0.5}, {"weight_decay": 0.0, "optimizer": "adamw"}) == {}
    assert same_model_key({"l2_scope": "fc", "momentum": 0.5}, {"weight_decay": 1e-3, "optimizer": "sgd"}) == {
        "l2_scope": "fc", "momentum": 0.5}
    study = optuna.create_study(direction="maximize")
    dists = {"weight_decay": CategoricalDistribution([0.0, 1e-3]), "l2_scope": CategoricalDistribution(["all", "fc"])}
    for value, wd, scope in [(0.90, 0.0, "fc"), (0.89, 0.0, "all"), (0.88, 1e-3, "fc"), (0.87, 1e-3, "all")]:
        study.add_trial(optuna.trial.create_trial(params={"weight_decay": wd, "l2_scope": scope}, distributions=dists, value=value))
    assert [t.number for t in top_configs(study, 3)] == [0, 2, 3]


def test_task_defaults_decide_which_settings_are_inactive() -> None:
    """The triplet task defaults to sgd: momentum matters there even though it is not fixed."""
    from hpsearch.tasks import resolve_task

    defaults = resolve_task("digits-triplet").defaults
    assert same_model_key({"momentum": 0.5}, defaults) == {"momentum": 0.5}
    assert same_model_key({"momentum": 0.5}, {}) == {}
