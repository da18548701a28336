"""The report, step by step: load the study once, compute importances, then one section per
part of the page (each with its interactive figure and its PNG), then the summary and the page."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hpsearch.analysis.report import figures_html as fh
from hpsearch.analysis.report import figures_png as fp
from hpsearch.analysis.report.data import StudyData, extract
from hpsearch.analysis.report.html import Section, render_page
from hpsearch.analysis.report.importance import Importances, compute_importances
from hpsearch.console import categorical_rows, importance_rows, report_summary, verification_rows
from hpsearch.errors import ConfigError
from hpsearch.store.urls import resolve_url


@dataclass
class ReportResult:
    """Where the report went and what it holds."""

    html: Path
    pngs: list[Path]
    sections: list[str]
    text: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def safe_name(name: str) -> str:
    """``name`` with every character a file name should not hold replaced by ``_``; a name of
    dots only (``..``, made before hpsearch checked study names) becomes underscores, so it
    never points outside ``reports/``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return "_" * max(1, len(safe)) if safe.strip(".") == "" else safe


@dataclass
class _Page:
    """The sections and PNG files of a report being built into ``out``."""

    out: Path
    sections: list[Section] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)

    def section(self, sid: str, title: str) -> Section:
        s = Section(sid, title)
        self.sections.append(s)
        return s

    def png(self, path: Path) -> None:
        self.pngs.append(path)


def build_report(
    study_name: str,
    storage: str | None = None,
    out_dir: str | Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write ``report.html`` and PNG figures for ``study_name`` into ``out_dir``
    (default ``reports/STUDY_NAME``) and return the paths and the text summary."""
    from hpsearch.analysis.verify import load_verification
    from hpsearch.store.queries import load_study

    started = time.perf_counter()
    step = on_step or (lambda _msg: None)
    url = resolve_url(storage)
    out = Path(out_dir) if out_dir is not None else Path("reports") / safe_name(study_name)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    clock = _Clock()
    study = load_study(study_name, url)  # a missing study is an error before any output
    out.mkdir(parents=True, exist_ok=True)
    from hpsearch.study.meta import QUESTION_ATTR

    if QUESTION_ATTR in study.user_attrs:  # a question's study: its levels are linked studies
        return _question_report(study, out, started)
    step(f"loading the trials of {study_name}")
    data = extract(study)
    verification = load_verification(study_name, url)
    clock.lap("load")
    step(f"importances over {len(data.complete)} complete trials")
    imp = compute_importances(study)
    clock.lap("importance")
    step("figures")
    page = _Page(out)
    summary = page.section("summary", "Summary")
    if data.multi:
        _pareto_section(page, study, data)
    _history_sections(page, data)
    _importance_section(page, imp)
    _param_sections(page, data)
    bias = _pruning_section(page, data)
    _boundary_section(page, study_name, url, data)
    if verification:
        _verification_section(page, data, verification)
    clock.lap("figures")
    ids = [s.id for s in page.sections]
    summary_text = report_summary(data, imp, verification, ids) + "\n\npruning bias and decay strength:\n" + "\n".join(bias)
    if data.multi:
        from hpsearch.console import pareto_table

        summary_text = summary_text.replace("\n", "\n" + pareto_table(study) + "\n", 1)
    summary.parts.append(f"<pre>{html.escape(summary_text)}</pre>")
    step("writing HTML")
    path = out / "report.html"
    path.write_text(render_page(f"hpsearch report: {study_name}", page.sections), encoding="utf-8")
    clock.lap("html")
    return ReportResult(path, page.pngs, ids, summary_text, time.perf_counter() - started, clock.timings)


def _question_report(study: Any, out: Path, started: float) -> ReportResult:
    """The report of a question's study: the answer and its forest plot."""
    from hpsearch.analysis.report.question import question_section

    page = _Page(out)
    from hpsearch.study.meta import ANSWER_ATTR

    text = question_section(page, study.user_attrs.get(ANSWER_ATTR), study.study_name, study)
    path = out / "report.html"
    path.write_text(render_page(f"hpsearch report: {study.study_name}", page.sections), encoding="utf-8")
    return ReportResult(path, page.pngs, [s.id for s in page.sections], text, time.perf_counter() - started)


class _Clock:
    """Seconds spent in each named step."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._last, 3)
        self._last = now


def _pareto_section(page: _Page, study: Any, data: StudyData) -> None:
    from hpsearch.console import pareto_table

    sec = page.section("pareto", "Pareto front")
    sec.add_text("Several objectives: no trial is best in all of them. The front holds the feasible trials no other feasible "
                 "trial beats in every objective; pick one with `hpsearch best NAME --trial N`. Crosses violate the constraints.")
    sec.parts.append(f"<pre>{html.escape(pareto_table(study))}</pre>")
    if len(data.objectives) >= 2:
        sec.add_figure(fh.pareto(data))
        page.png(fp.pareto(data, page.out / "pareto_front.png"))


def _history_sections(page: _Page, data: StudyData) -> None:
    hist = page.section("history", "Optimization history and best so far")
    hist.add_figure(fh.history(data))
    page.png(fp.history(data, page.out / "history.png"))
    inter = page.section("intermediate", "Intermediate values: pruned vs complete")
    inter.add_figure(fh.intermediate(data))
    page.png(fp.intermediate(data, page.out / "intermediate.png"))


def _importance_section(page: _Page, imp: Importances) -> None:
    sec = page.section("importance", "Parameter importances (fANOVA, PED-ANOVA)")
    if imp.warning:
        sec.add_text(imp.warning, css_class="warning")
    if imp.values:
        sec.add_table(["param", "fANOVA", "PED-ANOVA"], importance_rows(imp))
        sec.add_figure(fh.importances(imp))
        page.png(fp.importances(imp, page.out / "importances.png"))
    for name, err in imp.errors.items():
        sec.add_text(f"{name}: not computed ({err})")
    for note in imp.notes:
        sec.add_text(note)


def _param_sections(page: _Page, data: StudyData) -> None:
    numeric = [p for p in data.params if not p.categorical]
    sec = page.section("params", "Metric and train–validation gap per parameter")
    sec.add_text("Left: the metric of each complete trial against the parameter's value. Right: the train–validation gap "
                 "(user attr train_val_gap; positive means overfitting): does this regularizer close the gap?")
    for p in numeric:
        sec.add_figure(fh.numeric_param(data, p))
        page.png(fp.numeric_param(data, p, page.out / f"param_{safe_name(p.name)}.png"))
    if not numeric:
        sec.add_text("no numeric parameter was searched")
    cats = [p for p in data.params if p.categorical]
    catsec = page.section("categorical", "Categorical parameters: per-choice distributions")
    if cats:
        catsec.add_table(["param", "choice", "n", f"mean {data.metric}", "best"], categorical_rows(data))
    for p in cats:
        catsec.add_figure(fh.categorical_param(data, p))
        page.png(fp.categorical_param(data, p, page.out / f"choice_{safe_name(p.name)}.png"))
    if not cats:
        catsec.add_text("no categorical parameter was searched")


def _pruning_section(page: _Page, data: StudyData) -> list[str]:
    """Pruned vs completed trials per parameter and the decay shrinkage; returns its sentences
    (also appended to the text summary)."""
    from hpsearch.analysis.report.pruning import pruning_bias_rows, pruning_bias_sentences, shrinkage_sentence

    sec = page.section("pruning-bias", "Pruning bias and decay strength")
    sec.add_text("Strongly regularized settings learn slower; if pruned trials sit at stronger regularization than "
                 "completed ones, early pruning may have favoured weak regularization.")
    lines = pruning_bias_sentences(data)
    shrink = shrinkage_sentence(data)
    if shrink is not None:
        lines.append(shrink)
    for line in lines:
        sec.add_text(line)
    rows = pruning_bias_rows(data)
    if rows:
        sec.add_table(["param", "statistic", "completed", "pruned"], rows)
    return lines


def _boundary_section(page: _Page, study_name: str, url: str, data: StudyData) -> None:
    from hpsearch.analysis.report.boundaries import boundary_figures

    bounds = boundary_figures(study_name, url, data, page.out)
    if bounds is None:
        return
    sec = page.section("boundaries", "Decision boundaries (2-D task)")
    if isinstance(bounds, str):
        sec.add_text(bounds)
        return
    for png in bounds:
        sec.add_image(png)
        page.png(png)


def _verification_section(page: _Page, data: StudyData, verification: list[dict[str, Any]]) -> None:
    metric = data.meta.test_metric
    sec = page.section("verification", "Multi-seed verification on the test split")
    sec.add_text("Each configuration retrained with fresh seeds for the full epochs, scored on the held-out test split.")
    sec.add_table(["rank", "trial", "seeds", "mean", "std", "95% CI"], verification_rows(verification))
    sec.add_figure(fh.verification(verification, metric))
    page.png(fp.verification(verification, metric, page.out / "verification.png"))
