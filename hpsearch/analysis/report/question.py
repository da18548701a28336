"""The report of a question's study: the answer as text, its forest plot (each comparison's
difference with its Holm-level interval, the ±min_effect band and the verdict), and the table
of levels. A question's own study holds no trials: its levels are tuned in linked studies, each
with a report of its own."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

VERDICT_COLORS = {"better": "#2ca02c", "worse": "#d62728", "equivalent": "#1f77b4", "inconclusive": "#7f7f7f"}


def forest_png(answer: dict[str, Any], path: Path) -> Path:
    """Forest plot of the answer's comparisons (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = answer["comparisons"]
    m = answer["min_effect"]
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.42 * max(len(rows), 1)))
    ax.axvspan(-m, m, color="#eeeeee", label=f"±min_effect ({m:g})")
    ax.axvline(0, color="black", linewidth=0.8)
    for i, r in enumerate(reversed(rows)):
        color = VERDICT_COLORS.get(r["verdict"], "black")
        if r["ci_low"] is not None and r["ci_high"] is not None:
            ax.plot([r["ci_low"], r["ci_high"]], [i, i], color=color, linewidth=2)
        if r["difference"] is not None:
            ax.plot([r["difference"]], [i], "o", color=color)
    labels = [f"{r['level']} vs {r['reference']}" + (f" ({r['within']})" if r.get("within") else "") + f": {r['verdict']}"
              for r in reversed(rows)]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlabel(f"difference in {answer['metric']} (level − reference), interval at the Holm level")
    ax.set_title(answer["asks"][:100], fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def question_section(page: Any, answer: dict[str, Any] | None, study_name: str) -> str:
    """Add the answer section to ``page``; returns the text summary."""
    from hpsearch.question.render import answer_text

    sec = page.section("answer", "Answer")
    if answer is None:
        text = f"question study {study_name}: not answered yet; run hpsearch answer {study_name}"
        sec.add_text(text)
        return text
    text = answer_text(answer)
    sec.parts.append(f"<pre>{html.escape(text)}</pre>")
    png = forest_png(answer, page.out / "forest.png")
    sec.add_image(png)
    page.png(png)
    return text
