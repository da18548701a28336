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


def curves_png(answer: dict[str, Any], path: Path) -> Path | None:
    """Mean validation curve over seeds of every level, one panel per ``within`` cell."""
    rows = [lv for lv in answer["levels"] if lv.get("curve_mean")]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(dict.fromkeys(lv["within"] for lv in rows))
    cols = min(3, len(cells))
    grid = (len(cells) + cols - 1) // cols
    fig, axes = plt.subplots(grid, cols, figsize=(4.2 * cols, 2.8 * grid), squeeze=False)
    for ax, cell in zip(axes.flat, cells):
        for lv in rows:
            if lv["within"] == cell:
                ax.plot(range(1, len(lv["curve_mean"]) + 1), lv["curve_mean"], label=lv["level"], linewidth=1.2)
        ax.set_title(cell or "all", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    fig.suptitle(f"validation curves, mean over {len(answer['seeds'])} seeds (retrains of each level's best configuration)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def boundaries_png(answer: dict[str, Any], hub: Any, path: Path) -> Path | None:
    """For a 2-D task: the decision boundary of every cell's seed-0 retrain (rows: ``within``
    cells, columns: levels), retrained again here (deterministic from its seed)."""
    from hpsearch.question.optimize import cell_runs
    from hpsearch.run.training import fit
    from hpsearch.study.space import settings_for
    from hpsearch.study.stored import searched_definition

    definition = searched_definition(hub)
    runs = {r.cell.key: r for r in cell_runs(definition)[1]}
    first = next(iter(runs.values()))
    probe = first.definition.task.splits(definition.config.seed, settings_for({}, first.definition.config, first.definition.task).options)
    x: Any = probe.train[0] if isinstance(probe.train, tuple) else None  # a Lightning task's splits are loaders
    if not hasattr(x, "ndim") or x.ndim != 2 or x.shape[1] != 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hpsearch.analysis.report.boundaries import draw_boundary

    cells = list(dict.fromkeys(lv["within"] for lv in answer["levels"]))
    levels = list(dict.fromkeys(lv["level"] for lv in answer["levels"]))
    fig, axes = plt.subplots(len(cells), len(levels), figsize=(2.6 * len(levels), 2.5 * len(cells)), squeeze=False)
    for lv in answer["levels"]:
        ax = axes[cells.index(lv["within"])][levels.index(lv["level"])]
        run = runs[lv["cell"]]
        settings = settings_for(lv["tuning"]["params"], run.definition.config, run.definition.task)
        data = run.definition.task.splits(definition.config.seed, settings.options)
        model = fit(run.definition.task, settings, data, max_epochs=run.definition.config.max_epochs, seed=0,
                    accelerator="cpu").model
        draw_boundary(ax, model, data.train)
        value = lv["values"][lv["seeds"].index(0)] if 0 in lv["seeds"] else None
        score = f", test {value:.3f}" if value is not None else ""
        ax.set_title(f"{lv['level']} | {lv['within'] or 'all'}{score}", fontsize=7)
    fig.suptitle("decision boundaries of the seed-0 retrain of every cell", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def question_section(page: Any, answer: dict[str, Any] | None, study_name: str, hub: Any = None) -> str:
    """Add the answer section to ``page``; returns the text summary."""
    from hpsearch.question.render import answer_text

    sec = page.section("answer", "Answer")
    if answer is None:
        text = f"question study {study_name}: not answered yet; run hpsearch answer {study_name}"
        sec.add_text(text)
        return text
    text = answer_text(answer)
    sec.parts.append(f"<pre>{html.escape(text)}</pre>")
    pngs = [forest_png(answer, page.out / "forest.png"), curves_png(answer, page.out / "curves.png")]
    if hub is not None:
        pngs.append(boundaries_png(answer, hub, page.out / "boundaries.png"))
    for png in pngs:
        if png is not None:
            sec.add_image(png)
            page.png(png)
    return text
