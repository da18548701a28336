"""Hook for decision-boundary figures of 2-D tasks.

The report asks :func:`boundary_figures` for PNG files; it returns ``None`` (section skipped)
when the study's task is not 2-D. Rendering belongs to the ``plot-boundaries`` feature: a module
``hpsearch.boundaries`` exposing ``report_figures(study, out_dir) -> list[Path]`` (best trial per
activation × width) is picked up here when present; until then a 2-D study gets a note that
points to that command.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import optuna

from hpsearch.report.data import StudyData

log = logging.getLogger(__name__)

RENDERER_MODULE = "hpsearch.boundaries"
RENDERER_FUNCTION = "report_figures"


def is_two_d(data: StudyData) -> bool:
    """Whether the study's task has exactly two input features (loads the task's data)."""
    if not data.task or not data.study_file:
        return False
    try:
        from hpsearch.config import parse_study
        from hpsearch.tasks import resolve_task

        seed = parse_study(data.study_file).seed
        x = resolve_task(data.task).load_data(seed).train[0]
    except Exception as exc:  # a custom task that no longer imports: no boundaries, say why in logs
        log.info("cannot load task %s to check for 2-D inputs: %s", data.task, exc)
        return False
    return x.ndim == 2 and x.shape[1] == 2


def boundary_figures(study: optuna.Study, data: StudyData, out_dir: Path) -> list[Path] | str | None:
    """``None`` for a non-2-D task; else the PNG files of the renderer, or a note (str) when
    no renderer is installed."""
    if not is_two_d(data):
        return None
    try:
        module = importlib.import_module(RENDERER_MODULE)
    except ImportError:
        return "decision boundaries need the plot-boundaries feature (hpsearch.boundaries), not installed"
    render = getattr(module, RENDERER_FUNCTION, None)
    if render is None:
        return f"{RENDERER_MODULE} has no {RENDERER_FUNCTION}(study, out_dir); see `hpsearch plot-boundaries`"
    return list(render(study, out_dir))
