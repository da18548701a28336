"""``hpsearch report``: a self-contained HTML report, PNG figures and a text summary of a study.

Modules: :mod:`.build` (the steps), :mod:`.data` (one pass over the trials), :mod:`.importance`
(fANOVA, PED-ANOVA), :mod:`.figures_html` (plotly), :mod:`.figures_png` (matplotlib),
:mod:`.html` (the page), :mod:`.boundaries` (decision boundaries of 2-D tasks). The text
summary comes from :mod:`hpsearch.console`.
"""

from __future__ import annotations

from hpsearch.analysis.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
