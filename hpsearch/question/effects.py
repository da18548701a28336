"""The comparisons of an answer, as one Holm family: every level against the reference within
each ``within`` cell and, for a 2 × 2 factorial, each factor's main effect and the interaction
(difference of differences), all paired by seed."""

from __future__ import annotations

from typing import Any, Mapping

from hpsearch.analysis.compare import paired_family, reach_note
from hpsearch.analysis.stats import CONFIDENCE
from hpsearch.question.cells import Cell, QuestionPlan
from hpsearch.question.verdict import decide, share_better


def _common(*series: Mapping[int, float]) -> list[int]:
    seeds = set(series[0])
    for s in series[1:]:
        seeds &= set(s)
    return sorted(seeds)


def comparisons(design: QuestionPlan, values: Mapping[str, Mapping[int, float]], maximize: bool,
                confidence: float = CONFIDENCE) -> list[dict[str, Any]]:
    """One row per comparison: what is compared, the paired difference with its Holm-level
    interval, the adjusted p, the share of seeds the level won, and the verdict."""
    specs: list[tuple[dict[str, Any], list[float], list[float]]] = []
    for within in design.within:
        label = ",".join(f"{k}={v}" for k, v in within)
        ref = values.get(Cell(design.reference, within).key, {})
        for level in design.levels:
            if level == design.reference:
                continue
            mine = values.get(Cell(level, within).key, {})
            seeds = _common(mine, ref)
            a, b = [mine[s] for s in seeds], [ref[s] for s in seeds]
            specs.append(({"kind": "level", "within": label, "level": level.name, "reference": design.reference.name,
                           "share_better": share_better(a, b, maximize)}, a, b))
        if len(design.factors) == 2:
            specs += _factorial(design, values, within, label)
    family = paired_family([(a, b) for _, a, b in specs], confidence)
    rows = []
    min_effect = design.question.min_effect
    for (row, _, _), p in zip(specs, family):
        v = decide(p, min_effect, maximize)
        ci = None if p.ci_low is None or p.ci_high is None else [p.ci_low, p.ci_high]
        rows.append({**row, "seeds": p.seeds, "difference": p.mean_difference, "ci": ci, "ci_low": p.ci_low, "ci_high": p.ci_high,
                     "ci_confidence": p.ci_confidence, "p_value": p.p_value if p.test == "t" else p.permutation_p,
                     "p_adjusted": p.p_adjusted, "test": p.test, "comparisons": p.comparisons, "verdict": v.verdict,
                     "reason": v.reason, "seeds_to_settle": v.seeds_to_settle, "note": reach_note(p)})
    return rows


def _factorial(design: QuestionPlan, values: Mapping[str, Mapping[int, float]], within: tuple[tuple[str, Any], ...],
               label: str) -> list[tuple[dict[str, Any], list[float], list[float]]]:
    """Main effects of both factors and their interaction, per seed (2 × 2 levels)."""
    by_parts = {lv.parts: lv for lv in design.levels}
    (a0, a1), (b0, b1) = [_factor_levels(design, i) for i in range(2)]
    cell = {(x, y): values.get(Cell(by_parts[(x, y)], within).key, {}) for x in (a0, a1) for y in (b0, b1)}
    seeds = _common(*cell.values())
    v = {k: [s[seed] for seed in seeds] for k, s in cell.items()}
    fa, fb = design.factors
    out = []
    # main effect of A: mean over B of (a1 − a0), as (mean of a1 cells) − (mean of a0 cells)
    out.append(({"kind": "main effect", "within": label, "level": f"{fa}: {a1}", "reference": f"{fa}: {a0}",
                 "share_better": None},
                [(x + y) / 2 for x, y in zip(v[(a1, b0)], v[(a1, b1)])], [(x + y) / 2 for x, y in zip(v[(a0, b0)], v[(a0, b1)])]))
    out.append(({"kind": "main effect", "within": label, "level": f"{fb}: {b1}", "reference": f"{fb}: {b0}",
                 "share_better": None},
                [(x + y) / 2 for x, y in zip(v[(a0, b1)], v[(a1, b1)])], [(x + y) / 2 for x, y in zip(v[(a0, b0)], v[(a1, b0)])]))
    # interaction: (a1b1 − a0b1) − (a1b0 − a0b0) = (a1b1 + a0b0) − (a0b1 + a1b0)
    out.append(({"kind": "interaction", "within": label, "level": f"{fa} x {fb}",
                 "reference": "no interaction", "share_better": None},
                [x + y for x, y in zip(v[(a1, b1)], v[(a0, b0)])], [x + y for x, y in zip(v[(a0, b1)], v[(a1, b0)])]))
    return out


def _factor_levels(design: QuestionPlan, factor: int) -> list[str]:
    """The two level names of one factor, the reference's first."""
    names: list[str] = []
    for lv in design.levels:
        if lv.parts[factor] not in names:
            names.append(lv.parts[factor])
    ref = design.reference.parts[factor]
    return [ref] + [n for n in names if n != ref]
