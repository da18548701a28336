"""Decision boundaries of the best trial per activation × width of a 2-D classification study
(``hpsearch plot-boundaries``, and a section of the report for 2-D tasks).

The models are not stored, so each cell's best configuration is retrained from its stored
parameters and ``seed`` user attribute (the same seeded build and batch order as the trial, so
on one worker the retrained model is the trial's model); the figure prints the retrained
validation metric next to the stored one, so any difference is visible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hpsearch.errors import ConfigError
from hpsearch.study.meta import StudyMeta, primary_value

if TYPE_CHECKING:
    from hpsearch.analysis.report.data import StudyData
    from hpsearch.study.config import StudyConfig
    from hpsearch.tasks import Task

log = logging.getLogger(__name__)

CELL_KEYS = ("dataset", "activation", "width")
GRID_POINTS = 150


@dataclass(frozen=True)
class Cell:
    """The best trial of one (dataset, activation, width) combination."""

    dataset: str
    activation: str
    width: int
    trial: Any  # optuna FrozenTrial


def best_per_cell(study: Any, resolved: Callable[[Any], dict[str, Any]]) -> dict[tuple[str, str, int], Cell]:
    """Best complete trial per (dataset, activation, width); ``resolved(trial)`` gives a
    trial's full settings (defaults, fixed and sampled values)."""
    from optuna.trial import TrialState

    meta = StudyMeta.of(study)
    best: dict[tuple[str, str, int], Cell] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        values = resolved(trial)
        key = (values["dataset"], values["activation"], values["width"])
        held = best.get(key)
        if held is None or meta.better(float(primary_value(trial) or 0.0), float(primary_value(held.trial) or 0.0)):
            best[key] = Cell(*key, trial=trial)
    return best


@dataclass(frozen=True)
class _Plotting:
    """What drawing the cells of one study needs."""

    study_name: str
    config: "StudyConfig"
    task: "Task"
    metric: str


def _open(study_name: str, storage: str | None) -> tuple[_Plotting, dict[tuple[str, str, int], Cell]]:
    """The study's task, config and best cells; a study that cannot be plotted is a
    :class:`ConfigError`."""
    from hpsearch.store.queries import load_study
    from hpsearch.store.urls import resolve_url
    from hpsearch.study.config import parse_study
    from hpsearch.study.meta import stored_config, stored_study_file
    from hpsearch.study.space import settings_for
    from hpsearch.tasks import resolve_task

    study = load_study(study_name, resolve_url(storage))
    task_name = study.user_attrs.get("task")
    text = stored_study_file(study)
    if not task_name or not text:
        raise ConfigError(f"study {study_name!r} was not created by hpsearch optimize (no task/study_file attrs)")
    task = resolve_task(task_name)
    if not set(CELL_KEYS) <= set(task.params):
        raise ConfigError(
            f"study {study_name!r} uses task {task_name}; plot-boundaries needs a 2-D task with "
            f"dataset, activation and width parameters, such as toy2d-mlp"
        )
    config = stored_config(study, f"study {study_name!r}") or parse_study(text, f"study {study_name!r}")
    cells = best_per_cell(study, lambda t: settings_for(t.params, config, task).as_dict())
    if not cells:
        raise ConfigError(f"study {study_name!r} has no completed trial to plot")
    metric = StudyMeta.of(study, default_metric=task.metric).metric
    return _Plotting(study_name, config, task, metric), cells


def plot_boundaries(
    study_name: str,
    out_dir: str | Path,
    storage: str | None = None,
    on_cell: Callable[[Cell, float], None] | None = None,
) -> list[Path]:
    """Write one PNG per dataset (rows: activation, columns: width) into ``out_dir``; returns
    the paths. ``on_cell(cell, retrained_metric)`` is called after each retraining."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plotting, cells = _open(study_name, storage)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    activations = [a for a in plotting.task.params["activation"].choices if any(k[1] == a for k in cells)]
    widths = sorted({k[2] for k in cells})
    written = []
    for dataset in sorted({k[0] for k in cells}):
        fig, axes = plt.subplots(len(activations), len(widths), figsize=(3.2 * len(widths), 3.0 * len(activations)), squeeze=False)
        for r, act in enumerate(activations):
            for c, width in enumerate(widths):
                _draw_cell(axes[r][c], plotting, cells.get((dataset, act, width)), f"{act}, width {width}", on_cell)
        fig.suptitle(f"study {study_name}: {dataset}, best trial per activation × width")
        fig.tight_layout()
        path = out / f"{study_name}-{dataset}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


def _draw_cell(ax: Any, plotting: _Plotting, cell: Cell | None, label: str, on_cell: Callable[[Cell, float], None] | None) -> None:
    """Retrain the cell's trial and draw its decision boundary over the training points."""

    from hpsearch.run.training import fit
    from hpsearch.study.space import settings_for

    ax.set_xticks([])
    ax.set_yticks([])
    if cell is None:
        ax.set_title(f"{label}: no trial", fontsize=9)
        return
    settings = settings_for(cell.trial.params, plotting.config, plotting.task)
    data = plotting.task.splits(plotting.config.seed, settings.options)
    epochs = int(cell.trial.user_attrs.get("epochs") or plotting.config.max_epochs)
    result = fit(plotting.task, settings, data, max_epochs=epochs, seed=int(cell.trial.user_attrs["seed"]), accelerator="cpu")
    retrained = result.metrics.get(plotting.metric, float("nan"))
    if on_cell is not None:
        on_cell(cell, retrained)
    draw_boundary(ax, result.model, data.train)
    ax.set_title(
        f"{label}: #{cell.trial.number}\n{plotting.metric} {primary_value(cell.trial):.3f} (retrained {retrained:.3f})",
        fontsize=8,
    )


def draw_boundary(ax: Any, model: Any, train: tuple[Any, Any]) -> None:
    """A 2-D classifier's probability of class 1 and its 0.5 contour over the training points."""
    import numpy as np
    import torch

    x, y = train
    lo, hi = x.min(0).values.numpy() - 0.5, x.max(0).values.numpy() + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], GRID_POINTS), np.linspace(lo[1], hi[1], GRID_POINTS))
    grid = torch.tensor(np.c_[gx.ravel(), gy.ravel()], dtype=torch.float32)
    model = model.eval()
    with torch.no_grad():
        prob = torch.softmax(model(grid.to(model.device)), dim=1)[:, 1].cpu().numpy().reshape(gx.shape)
    ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap="RdBu", alpha=0.6)
    ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu", edgecolors="k", linewidths=0.3, s=8)
    ax.set_xticks([])
    ax.set_yticks([])


# --- the report's hook


def is_two_d(data: "StudyData") -> bool:
    """Whether the study's task has exactly two input features (loads the task's data)."""
    if not data.task or not data.study_file:
        return False
    try:
        from hpsearch.study.config import parse_study
        from hpsearch.tasks import resolve_task

        seed = parse_study(data.study_file).seed
        x = resolve_task(data.task).load_data(seed).train[0]
    except Exception as exc:  # a custom task that no longer imports: no boundaries, say why in logs
        log.info("cannot load task %s to check for 2-D inputs: %s", data.task, exc)
        return False
    return x.ndim == 2 and x.shape[1] == 2


def boundary_figures(study_name: str, storage_url: str, data: "StudyData", out_dir: Path) -> list[Path] | str | None:
    """``None`` for a non-2-D task; else the PNG files (best trial per activation × width), or
    a note (str) when the 2-D task lacks the dataset/activation/width parameters."""
    if not is_two_d(data):
        return None
    try:
        return plot_boundaries(study_name, out_dir, storage_url)
    except ConfigError as exc:
        return str(exc)
