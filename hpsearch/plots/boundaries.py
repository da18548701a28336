"""Decision boundaries of the best trial per activation × width of a 2-D classification study.

The models are not stored, so each cell's best configuration is retrained from its stored
parameters and ``seed`` user attribute (the same seeded build and batch order as the trial, so
on one worker the retrained model is the trial's model); the figure prints the retrained
validation metric next to the stored one, so any difference is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hpsearch.errors import ConfigError

CELL_KEYS = ("dataset", "activation", "width")


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

    maximize = study.direction.name.lower() == "maximize"
    best: dict[tuple[str, str, int], Cell] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        values = resolved(trial)
        key = (values["dataset"], values["activation"], values["width"])
        held = best.get(key)
        if held is None or (trial.value > held.trial.value if maximize else trial.value < held.trial.value):
            best[key] = Cell(*key, trial=trial)
    return best


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
    import numpy as np
    import torch

    from hpsearch.api import load_study
    from hpsearch.config import parse_study
    from hpsearch.space import settings_for
    from hpsearch.tasks import resolve_task
    from hpsearch.training import fit

    study = load_study(study_name, storage)
    task_name = study.user_attrs.get("task")
    text = study.user_attrs.get("study_file")
    if not task_name or not text:
        raise ConfigError(f"study {study_name!r} was not created by hpsearch optimize (no task/study_file attrs)")
    task = resolve_task(task_name)
    if not set(CELL_KEYS) <= set(task.params):
        raise ConfigError(
            f"study {study_name!r} uses task {task_name}; plot-boundaries needs a 2-D task with "
            f"dataset, activation and width parameters, such as toy2d-mlp"
        )
    config = parse_study(text, f"study {study_name!r}")
    metric = str(study.user_attrs.get("metric", task.metric))
    cells = best_per_cell(study, lambda t: settings_for(t.params, config, task).as_dict())
    if not cells:
        raise ConfigError(f"study {study_name!r} has no completed trial to plot")
    data_all = task.load_data(config.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    activations = [a for a in task.params["activation"].choices if any(k[1] == a for k in cells)]
    widths = sorted({k[2] for k in cells})
    written = []
    for dataset in sorted({k[0] for k in cells}):
        fig, axes = plt.subplots(len(activations), len(widths), figsize=(3.2 * len(widths), 3.0 * len(activations)), squeeze=False)
        for r, act in enumerate(activations):
            for c, width in enumerate(widths):
                ax = axes[r][c]
                ax.set_xticks([])
                ax.set_yticks([])
                cell = cells.get((dataset, act, width))
                if cell is None:
                    ax.set_title(f"{act}, width {width}: no trial", fontsize=9)
                    continue
                settings = settings_for(cell.trial.params, config, task)
                data = task.data_for(data_all, settings.options)
                epochs = int(cell.trial.user_attrs.get("epochs") or config.max_epochs)
                result = fit(task, settings, data, max_epochs=epochs, seed=int(cell.trial.user_attrs["seed"]), accelerator="cpu")
                retrained = result.metrics.get(metric, float("nan"))
                if on_cell is not None:
                    on_cell(cell, retrained)
                x, y = data.train
                lo, hi = x.min(0).values.numpy() - 0.5, x.max(0).values.numpy() + 0.5
                gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
                grid = torch.tensor(np.c_[gx.ravel(), gy.ravel()], dtype=torch.float32)
                model = result.model.eval()
                with torch.no_grad():
                    prob = torch.softmax(model(grid), dim=1)[:, 1].numpy().reshape(gx.shape)
                ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap="RdBu", alpha=0.6)
                ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1)
                ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu", edgecolors="k", linewidths=0.3, s=8)
                ax.set_title(
                    f"{act}, width {width}: #{cell.trial.number}\n{metric} {cell.trial.value:.3f} (retrained {retrained:.3f})",
                    fontsize=8,
                )
        fig.suptitle(f"study {study_name}: {dataset}, best trial per activation × width")
        fig.tight_layout()
        path = out / f"{study_name}-{dataset}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
