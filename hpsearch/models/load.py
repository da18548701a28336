"""Load a model written by ``hpsearch export-model``: rebuild it from its settings, load the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpsearch.models.base import RegularizedModule
from hpsearch.models.checkpoint import read_checkpoint


def load_model(path: str | Path) -> tuple[RegularizedModule, dict[str, Any]]:
    """The model saved at ``path`` (in eval mode, on the CPU) and the checkpoint's information
    (task, settings, metrics, study, trial). The file is read with ``weights_only=True``: one
    holding more than tensors and plain data is refused (:class:`~hpsearch.errors.ConfigError`)
    without running anything from it. The task is rebuilt by name (a custom task must be
    importable and marked with ``@hpsearch.task``) and its data loaded with the study's seed,
    as the model builder may use it."""
    from hpsearch.params import REGULARIZATION_PARAMS
    from hpsearch.regularization import Regularization
    from hpsearch.tasks import resolve_task

    checkpoint = read_checkpoint(path)
    task = resolve_task(checkpoint["task"])
    settings = dict(checkpoint["settings"])
    reg = Regularization(**{k: v for k, v in settings.items() if k in REGULARIZATION_PARAMS})
    options = {k: v for k, v in settings.items() if k not in REGULARIZATION_PARAMS}
    data = task.splits(int(checkpoint["data_seed"]), options)
    model = task.build_model(reg, options, data)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    info = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    return model, info
