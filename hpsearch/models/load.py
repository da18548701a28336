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
    as the model builder may use it. A model of the user's own LightningModule is rebuilt from
    the class path in the file, imported only from source under the current directory (see
    :mod:`hpsearch.lightning_task.imports`)."""
    from hpsearch.params import REGULARIZATION_PARAMS
    from hpsearch.regularization import Regularization
    from hpsearch.tasks import resolve_task

    checkpoint = read_checkpoint(path)
    settings = dict(checkpoint["settings"])
    reg = Regularization(**{k: v for k, v in settings.items() if k in REGULARIZATION_PARAMS})
    options = {k: v for k, v in settings.items() if k not in REGULARIZATION_PARAMS}
    if "task_block" in checkpoint:  # the user's Lightning classes, imported only from the current directory
        from hpsearch.lightning_task.task import setup_from_model_file

        named = checkpoint.get("task_named")
        model = setup_from_model_file(checkpoint, str(path)).build_model(
            reg, options, named=None if named is None else frozenset(str(n) for n in named))
    else:
        task = resolve_task(checkpoint["task"])
        data = task.splits(int(checkpoint["data_seed"]), options)
        model = task.build_model(reg, options, data)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    info = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    return model, info
