"""The answer's verdict rule on simulated paired results (no training): A/A questions give
better/worse at the nominal 5%, a planted difference is found at the power the t-test predicts,
and a true zero difference with small noise is called equivalent."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hpsearch.question.cells import Cell, Level, QuestionPlan
from hpsearch.question.config import QuestionConfig
from hpsearch.question.effects import comparisons


def two_level_design(min_effect: float, seeds: int) -> QuestionPlan:
    q = QuestionConfig(asks="a or b?", compare="x", levels={"a": {}, "b": {}}, budget=1, seeds=seeds, min_effect=min_effect)
    a, b = Level("a", ("a",)), Level("b", ("b",))
    return QuestionPlan(q, ["x"], [a, b], a, [()], [Cell(a), Cell(b)])


def verdicts(rng: np.random.Generator, delta: float, noise: float, seeds: int, min_effect: float, n: int = 1000) -> list[str]:
    design = two_level_design(min_effect, seeds)
    out = []
    for _ in range(n):
        shared = rng.normal(0.85, 0.03, seeds)  # the seed's effect on both levels
        a = shared + rng.normal(0, noise, seeds)
        b = shared + delta + rng.normal(0, noise, seeds)
        values = {"a": dict(enumerate(a)), "b": dict(enumerate(b))}
        out.append(comparisons(design, values, maximize=True)[0]["verdict"])
    return out


def test_a_a_questions_give_better_or_worse_at_five_percent() -> None:
    got = verdicts(np.random.default_rng(7), delta=0.0, noise=0.01, seeds=10, min_effect=1e-6)
    rate = sum(v in ("better", "worse") for v in got) / len(got)
    assert 0.03 <= rate <= 0.07, rate


def test_a_planted_difference_is_found_at_the_power_the_t_test_predicts() -> None:
    seeds, noise = 5, 0.01
    delta = 2 * noise  # two standard deviations of one level's seed noise
    got = verdicts(np.random.default_rng(8), delta=delta, noise=noise, seeds=seeds, min_effect=1e-6)
    rate = sum(v == "better" for v in got) / len(got)
    effect = delta / (noise * np.sqrt(2))  # in units of the paired difference's sd
    crit = stats.t.ppf(0.975, seeds - 1)
    nc = effect * np.sqrt(seeds)
    predicted = stats.nct.sf(crit, seeds - 1, nc) + stats.nct.cdf(-crit, seeds - 1, nc)
    assert abs(rate - predicted) <= 0.05, (rate, predicted)
    assert not any(v == "worse" for v in got[:200]) or predicted < 0.99


def test_no_difference_with_small_noise_is_equivalent() -> None:
    got = verdicts(np.random.default_rng(9), delta=0.0, noise=0.002, seeds=10, min_effect=0.01, n=300)
    assert sum(v == "equivalent" for v in got) / len(got) >= 0.95


@pytest.mark.parametrize("delta, expected", [(0.05, "better"), (-0.05, "worse")])
def test_a_large_effect_is_better_or_worse_with_its_interval_excluding_zero(delta: float, expected: str) -> None:
    design = two_level_design(0.01, 10)
    rng = np.random.default_rng(1)
    shared = rng.normal(0.85, 0.03, 10)
    values = {"a": dict(enumerate(shared + rng.normal(0, 0.005, 10))),
              "b": dict(enumerate(shared + delta + rng.normal(0, 0.005, 10)))}
    row = comparisons(design, values, maximize=True)[0]
    assert row["verdict"] == expected and (row["ci_low"] > 0 or row["ci_high"] < 0)
    minimized = comparisons(design, values, maximize=False)[0]
    assert minimized["verdict"] == ("worse" if expected == "better" else "better")


def test_an_inconclusive_comparison_says_how_many_seeds_would_settle_it() -> None:
    design = two_level_design(0.01, 5)
    rng = np.random.default_rng(3)
    shared = rng.normal(0.85, 0.03, 5)
    values = {"a": dict(enumerate(shared + rng.normal(0, 0.02, 5))), "b": dict(enumerate(shared + 0.015 + rng.normal(0, 0.02, 5)))}
    row = comparisons(design, values, maximize=True)[0]
    assert row["verdict"] == "inconclusive" and row["seeds_to_settle"] is not None and row["seeds_to_settle"] > 5


def test_a_constant_difference_that_five_seeds_cannot_show_says_so() -> None:
    design = two_level_design(0.005, 5)
    base = np.array([0.80, 0.82, 0.85, 0.83, 0.81])
    values = {"a": dict(enumerate(base)), "b": dict(enumerate(base + 1 / 120))}
    row = comparisons(design, values, maximize=True)[0]
    assert row["verdict"] == "inconclusive" and row["seeds_to_settle"] == 6 and "6 seeds could" in row["reason"]


def test_factorial_main_effects_and_interaction_are_differences_of_cell_means() -> None:
    q = QuestionConfig(asks="2x2", compare=["a", "b"], levels={"a": {"a0": {}, "a1": {}}, "b": {"b0": {}, "b1": {}}},
                       budget=1, seeds=6, min_effect=0.01)
    levels = [Level(f"{x}+{y}", (x, y)) for x in ("a0", "a1") for y in ("b0", "b1")]
    design = QuestionPlan(q, ["a", "b"], levels, levels[0], [()], [Cell(lv) for lv in levels])
    rng = np.random.default_rng(5)
    base = rng.normal(0.8, 0.02, 6)
    effect = {"a0+b0": 0.0, "a1+b0": 0.05, "a0+b1": 0.02, "a1+b1": 0.03}  # interaction = 0.03 - 0.05 - 0.02 = -0.04
    values = {k: dict(enumerate(base + e + rng.normal(0, 0.002, 6))) for k, e in effect.items()}
    rows = {(r["kind"], r["level"]): r for r in comparisons(design, values, maximize=True)}
    assert rows[("main effect", "a: a1")]["difference"] == pytest.approx((0.05 + 0.03) / 2 - (0.0 + 0.02) / 2, abs=0.004)
    assert rows[("main effect", "b: b1")]["difference"] == pytest.approx((0.02 + 0.03) / 2 - (0.0 + 0.05) / 2, abs=0.004)
    assert rows[("interaction", "a x b")]["difference"] == pytest.approx(-0.04, abs=0.005)
    assert rows[("interaction", "a x b")]["verdict"] == "worse" and len(rows) == 6
    assert {r["comparisons"] for r in rows.values()} == {6}  # one Holm family


def test_a_constant_difference_inside_min_effect_with_enough_seeds_is_equivalent() -> None:
    design = two_level_design(0.02, 10)
    base = np.linspace(0.80, 0.85, 10)
    values = {"a": dict(enumerate(base)), "b": dict(enumerate(base + 1 / 360))}
    row = comparisons(design, values, maximize=True)[0]
    assert row["test"] == "permutation" and row["verdict"] == "equivalent" and row["seeds_to_settle"] is None
