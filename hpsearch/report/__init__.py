"""``hpsearch report``: a self-contained HTML report, PNG figures and a text summary of a study.

Modules: :mod:`.data` (one pass over the trials), :mod:`.importance` (fANOVA, PED-ANOVA),
:mod:`.figures_html` (plotly), :mod:`.figures_png` (matplotlib), :mod:`.html` (the page),
:mod:`.text` (the printed summary), :mod:`.boundaries` (2-D tasks hook).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["ReportResult", "build_report", "SECTIONS"]

# Every section id the report can contain, in page order ("boundaries" only for 2-D tasks,
# "verification" only after `hpsearch verify`).
SECTIONS = ("summary", "history", "intermediate", "importance", "params", "categorical", "boundaries", "verification")


@dataclass
class ReportResult:
    """Where the report went and what it holds."""

    html: Path
    pngs: list[Path]
    sections: list[str]
    text: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def build_report(
    study_name: str,
    storage: str | None = None,
    out_dir: str | Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write ``report.html`` and PNG figures for ``study_name`` into ``out_dir``
    (default ``reports/STUDY_NAME``) and return the paths and the text summary."""
    from hpsearch.api import load_study
    from hpsearch.errors import ConfigError
    from hpsearch.report import boundaries, figures_html as fh, figures_png as fp, text
    from hpsearch.report.data import extract
    from hpsearch.report.html import Section, render_page
    from hpsearch.report.importance import compute_importances
    from hpsearch.storage import open_storage, resolve_url
    from hpsearch.verify import load_verification

    started = time.perf_counter()
    timings: dict[str, float] = {}
    step = on_step or (lambda _msg: None)

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        return now

    out = Path(out_dir) if out_dir is not None else Path("reports") / _safe(study_name)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    t = time.perf_counter()
    study = load_study(study_name, storage)  # a missing study is an error before any output
    out.mkdir(parents=True, exist_ok=True)
    step(f"loading the trials of {study_name}")
    data = extract(study)
    verification = load_verification(study_name, open_storage(resolve_url(storage), create=False))
    t = lap("load", t)
    step(f"importances over {len(data.complete)} complete trials")
    imp = compute_importances(study)
    t = lap("importance", t)

    step("figures")
    pngs: list[Path] = []
    sections: list[Section] = []
    summary = Section("summary", "Summary")
    sections.append(summary)

    hist = Section("history", "Optimization history and best so far")
    hist.add_figure(fh.history(data))
    pngs.append(fp.history(data, out / "history.png"))
    sections.append(hist)

    inter = Section("intermediate", "Intermediate values: pruned vs complete")
    inter.add_figure(fh.intermediate(data))
    pngs.append(fp.intermediate(data, out / "intermediate.png"))
    sections.append(inter)

    impsec = Section("importance", "Parameter importances (fANOVA, PED-ANOVA)")
    if imp.values:
        impsec.add_table(["param", "fANOVA", "PED-ANOVA"], text.importance_rows(imp))
        impsec.add_figure(fh.importances(imp))
        pngs.append(fp.importances(imp, out / "importances.png"))
    for name, err in imp.errors.items():
        impsec.add_text(f"{name}: not computed ({err})")
    for note in imp.notes:
        impsec.add_text(note)
    sections.append(impsec)

    numeric = [p for p in data.params if not p.categorical]
    params = Section("params", "Metric and train–validation gap per parameter")
    params.add_text("Left: the metric of each complete trial against the parameter's value. Right: the train–validation gap "
                    "(user attr train_val_gap; positive means overfitting): does this regularizer close the gap?")
    for p in numeric:
        params.add_figure(fh.numeric_param(data, p))
        pngs.append(fp.numeric_param(data, p, out / f"param_{_safe(p.name)}.png"))
    if not numeric:
        params.add_text("no numeric parameter was searched")
    sections.append(params)

    cats = [p for p in data.params if p.categorical]
    catsec = Section("categorical", "Categorical parameters: per-choice distributions")
    if cats:
        catsec.add_table(["param", "choice", "n", f"mean {data.metric}", "best"], text.categorical_rows(data))
    for p in cats:
        catsec.add_figure(fh.categorical_param(data, p))
        pngs.append(fp.categorical_param(data, p, out / f"choice_{_safe(p.name)}.png"))
    if not cats:
        catsec.add_text("no categorical parameter was searched")
    sections.append(catsec)

    bounds = boundaries.boundary_figures(study_name, resolve_url(storage), data, out)
    if bounds is not None:
        bsec = Section("boundaries", "Decision boundaries (2-D task)")
        if isinstance(bounds, str):
            bsec.add_text(bounds)
        else:
            for png in bounds:
                bsec.add_image(png)
                pngs.append(png)
        sections.append(bsec)

    if verification:
        vsec = Section("verification", "Multi-seed verification on the test split")
        vsec.add_text("Each configuration retrained with fresh seeds for the full epochs, scored on the held-out test split.")
        vsec.add_table(["rank", "trial", "seeds", "mean", "std", "95% CI"], text.verification_rows(verification))
        vsec.add_figure(fh.verification(verification, str(study.user_attrs.get("metric", "value")).replace("val_", "test_")))
        pngs.append(fp.verification(verification, data.metric.replace("val_", "test_"), out / "verification.png"))
        sections.append(vsec)
    t = lap("figures", t)

    ids = [s.id for s in sections]
    summary_text = text.summary(data, imp, verification, ids)
    summary.parts.append(f"<pre>{_escape(summary_text)}</pre>")
    page = out / "report.html"
    step("writing HTML")
    page.write_text(render_page(f"hpsearch report: {study_name}", sections), encoding="utf-8")
    lap("html", t)
    return ReportResult(page, pngs, ids, summary_text, time.perf_counter() - started, timings)


def _escape(s: str) -> str:
    import html

    return html.escape(s)
