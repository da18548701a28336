"""Decision-boundary figures of 2-D tasks for the report (drawn by :mod:`hpsearch.plots.boundaries`)."""

from __future__ import annotations

import logging
from pathlib import Path

from hpsearch.report.data import StudyData

log = logging.getLogger(__name__)


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


def boundary_figures(study_name: str, storage_url: str, data: StudyData, out_dir: Path) -> list[Path] | str | None:
    """``None`` for a non-2-D task; else the PNG files (best trial per activation × width), or
    a note (str) when the 2-D task lacks the dataset/activation/width parameters."""
    if not is_two_d(data):
        return None
    from hpsearch.errors import ConfigError
    from hpsearch.plots.boundaries import plot_boundaries

    try:
        return plot_boundaries(study_name, out_dir, storage_url)
    except ConfigError as exc:
        return str(exc)
