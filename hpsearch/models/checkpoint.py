"""The model file format: tensors and plain data only, never anything that runs code to load.

A kept model (``hpsearch.run.kept_models``) and an exported one (``hpsearch export-model``) are
one ``torch.save`` file holding a dict: the format tag, the information that rebuilds the model
(task name, settings, metrics, study, trial, seeds: JSON-able values only) and the state dict
(``{name: tensor}``). It is read back with ``torch.load(..., weights_only=True)``: a file that
needs more (a pickle that would import or call something) is refused before anything in it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import ConfigError, first_line

if TYPE_CHECKING:
    import torch

FORMAT = "hpsearch-model/1"
#: Keys of the information every model file holds (besides ``format`` and ``state_dict``).
INFO_TYPES: dict[str, type | tuple[type, ...]] = {
    "study": str, "trial": int, "task": str, "data_seed": int, "seed": int, "settings": dict, "metrics": dict,
}


def plain(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` as JSON data (tuples become lists); ``TypeError`` for anything JSON cannot hold."""
    return json.loads(json.dumps(info, allow_nan=True))


def checkpoint_dict(info: dict[str, Any], state_dict: dict[str, "torch.Tensor"]) -> dict[str, Any]:
    """The dict written to a model file: the format tag, ``info`` as plain data, the tensors on the CPU."""
    return {"format": FORMAT, **plain(info), "state_dict": {str(k): v.detach().cpu() for k, v in state_dict.items()}}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict in ``path``, loaded with ``weights_only=True`` and checked; a file
    that is not one (or that would need more than tensors and plain data) is a one-line
    :class:`ConfigError`, raised before anything from the file is run."""
    import pickle

    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"{path}: refused: not a model file of tensors and plain data only (loading it could run code)"
        ) from None
    except Exception as exc:  # missing, truncated, not a torch file
        raise ConfigError(f"{path}: cannot read the model file: {first_line(exc)}") from None
    _check(path, checkpoint)
    return checkpoint


def _check(path: str | Path, checkpoint: Any) -> None:
    import torch

    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a model file written by hpsearch (format {FORMAT})")
    for key, kind in INFO_TYPES.items():
        if not isinstance(checkpoint.get(key), kind) or isinstance(checkpoint.get(key), bool):
            raise ConfigError(f"{path}: not a model file written by hpsearch ({key!r} is missing or not a {getattr(kind, '__name__', kind)})")
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ConfigError(f"{path}: not a model file written by hpsearch (its state_dict is not tensors by name)")
