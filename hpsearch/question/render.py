"""An answer as terminal text: the question, a table of levels, a table of comparisons with
their verdicts, one sentence per verdict, what the intervals cover, and the warnings."""

from __future__ import annotations

from typing import Any


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+.4g}"


def _ci(low: Any, high: Any) -> str:
    return "undefined" if low is None or high is None else f"[{low:+.4g}, {high:+.4g}]"


def verdict_sentence(row: dict[str, Any], metric: str, min_effect: float) -> str:
    """One sentence per comparison, from its numbers."""
    where = f" ({row['within']})" if row.get("within") else ""
    what = f"{row['level']} vs {row['reference']}{where}"
    diff = f"{metric} difference {_signed(row['difference'])}, {_ci(row['ci_low'], row['ci_high'])}"
    level = f" at {100 * row['ci_confidence']:.4g}%" if row.get("ci_confidence") else ""
    verdict = row["verdict"]
    if verdict in ("better", "worse"):
        head = f"{what}: {verdict.upper()}"
    elif verdict == "equivalent":
        head = f"{what}: EQUIVALENT (no effect as large as {min_effect:g})"
    else:
        head = f"{what}: INCONCLUSIVE"
    tail = f"; {row['reason']}"
    if verdict == "inconclusive" and row.get("seeds_to_settle"):
        tail += f"; about {row['seeds_to_settle']} seeds would likely settle it"
    return f"{head} ({diff}{level}, adjusted p = {_num(row['p_adjusted'], 3)}){tail}"


def answer_text(answer: dict[str, Any]) -> str:
    """The whole answer as text."""
    from hpsearch.console import table

    metric = answer["metric"]
    lines = [f"question: {answer['asks']}",
             f"study {answer['study']}: compare {' x '.join(answer['factors'])}, reference {answer['reference']}"
             + (f", within {', '.join(answer['within'])}" if answer["within"] else "")
             + f"; {answer['budget']} tuning trials per level, {len(answer['seeds'])} seeds, "
               f"{answer['max_epochs']} epochs, min_effect {answer['min_effect']:g}", ""]
    rows = [[lv["cell"], lv["tuning"]["trial"], f"{lv['tuning']['finished']}/{lv['tuning']['budget']}",
             _num(lv["tuning"]["value"]), lv["n"], _num(lv["mean"]), _num(lv["std"], 2),
             _ci(lv["ci_low"], lv["ci_high"]).replace("+", ""), _num(lv.get("train_mean"))] for lv in answer["levels"]]
    headers = ["level", "trial", "tuned", "validation (1 seed)", "seeds", f"{metric} mean", "std", "95% CI", "train"]
    for key, title in (("epochs_to_95", "epochs to 95%"), ("decay_shrinkage", "shrinkage"), ("bn_weight_norm", "BN-fed |W|")):
        if any(lv.get(key) is not None for lv in answer["levels"]):
            headers.append(title)
            for row, lv in zip(rows, answer["levels"]):
                row.append(_num(lv.get(key), 3))
    names = list(dict.fromkeys(b["name"] for b in answer.get("baselines", [])))
    for name in names:  # each test baseline beside every level it applies to
        headers.append(f"{name} (baseline)")
        for row, lv in zip(rows, answer["levels"]):
            row.append(_num(lv.get("baselines", {}).get(name)))
    lines.append(table(headers, rows))
    abouts = {b["name"]: b["about"] for b in answer.get("baselines", [])}
    lines += [f"baseline {n}: {abouts[n]} (test split of the study's seed)" for n in names]
    lines.append("")
    comp = [[c["kind"], c["level"], c["reference"], c.get("within") or "-", _signed(c["difference"]),
             _ci(c["ci_low"], c["ci_high"]), _num(c["p_adjusted"], 3),
             "-" if c.get("share_better") is None else f"{c['share_better']:.2f}", c["verdict"]]
            for c in answer["comparisons"]]
    lines.append(table(["kind", "level", "reference", "cell", "difference", "CI (Holm level)", "p adj", "won",
                        "verdict"], comp))
    lines.append("")
    lines += [verdict_sentence(c, metric, answer["min_effect"]) for c in answer["comparisons"]]
    lines += ["", f"intervals: {answer['adjustment']}; they cover {answer['covers']}."]
    if answer["warnings"]:
        lines += ["", "warnings:"] + [f"- {w}" for w in answer["warnings"]]
    return "\n".join(lines)
