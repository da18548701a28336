"""The best model kept: weights and settings of every COMPLETE trial that is the best so far.

When a trial finishes and no feasible complete trial beats it (one objective: none is at least
as good; several: none dominates it), its final weights and the settings that rebuild the
model are written as one ``torch.save`` checkpoint and uploaded through Optuna's artifact store
(:class:`optuna.artifacts.FileSystemArtifactStore`, so optuna-dashboard lists it with the trial);
the trial user attr ``model_artifact`` holds the artifact id. Artifacts of trials it supersedes
are removed, so the directory holds the current best (or the current Pareto front) plus at most
one file per worker racing it.

Where: ``$HPSEARCH_MODEL_DIR``, else the study file's ``model_dir``, else ``<db>-models/`` next
to a SQLite database (no models are kept for a server database without one of the first two:
set a shared directory on a cluster). The directory used is recorded with the study.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.trial import TrialState

import hpsearch
from hpsearch.errors import ConfigError
from hpsearch.store.queries import is_feasible, set_study_system_attr, study_system_attrs
from hpsearch.study.meta import dominates

if TYPE_CHECKING:
    from hpsearch.models.base import RegularizedModule
    from hpsearch.study.definition import StudyDefinition
    from hpsearch.study.space import TrialSettings

log = logging.getLogger(__name__)

#: Trial user attr: the artifact id of the trial's kept model.
MODEL_ATTR = "model_artifact"
#: Study system attr: the directory the study's models are kept in.
MODEL_DIR_ATTR = "hpsearch:model_dir"
MODEL_DIR_ENV = "HPSEARCH_MODEL_DIR"
FORMAT = "hpsearch-model/1"


def model_dir_for(definition: "StudyDefinition", url: str) -> Path | None:
    """``$HPSEARCH_MODEL_DIR``, the study file's ``model_dir``, or ``<db>-models`` next to a
    SQLite file; ``None`` (keep nothing) for another database without either."""
    chosen = os.environ.get(MODEL_DIR_ENV, "").strip() or definition.config.model_dir
    if chosen:
        return Path(chosen).expanduser().resolve()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        db = Path(url.removeprefix("sqlite:///"))
        return db.resolve().with_name(f"{db.stem}-models")
    return None


@dataclass(frozen=True)
class ModelKeeper:
    """Keeps the model of a trial that is the best so far (see the module docstring)."""

    root: Path

    @property
    def store(self) -> FileSystemArtifactStore:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileSystemArtifactStore(str(self.root))

    @classmethod
    def open(cls, study: optuna.Study, definition: "StudyDefinition", url: str) -> "ModelKeeper | None":
        """The keeper for ``study`` (its directory recorded with the study), or ``None``."""
        root = model_dir_for(definition, url)
        if root is None:
            log.info("no model directory for a server database: set %s or model_dir to keep the best models", MODEL_DIR_ENV)
            return None
        if study_system_attrs(study).get(MODEL_DIR_ATTR) != str(root):
            set_study_system_attr(study, MODEL_DIR_ATTR, str(root))
        return cls(root)

    def keep_if_best(self, trial: optuna.Trial, definition: "StudyDefinition", settings: "TrialSettings",
                     model: "RegularizedModule", values: list[float], feasible: bool, seed: int) -> bool:
        """Upload the model if the trial (about to be COMPLETE with ``values``) is the best so
        far, then remove the artifacts it supersedes; returns whether it was kept."""
        if not feasible:
            return False
        signs = [1.0 if d == "maximize" else -1.0 for d in definition.directions]
        others = [t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values and is_feasible(t)]
        if definition.multi:
            if any(dominates(t.values, values, signs) for t in others):
                return False
        elif any(signs[0] * t.values[0] >= signs[0] * values[0] for t in others):
            return False
        import torch

        checkpoint = {
            "format": FORMAT,
            "hpsearch_version": hpsearch.__version__,
            "study": definition.config.study,
            "trial": trial.number,
            "task": definition.config.task,
            "data_seed": definition.config.seed,
            "seed": seed,
            "settings": settings.as_dict(),
            "metrics": dict(zip(definition.metrics, values)),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        }
        store = self.store
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            path = Path(tmp) / f"trial-{trial.number}.pt"
            torch.save(checkpoint, path)
            artifact_id = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial,
                                          mimetype="application/octet-stream")
        trial.set_user_attr(MODEL_ATTR, artifact_id)
        for t in others:
            old = t.user_attrs.get(MODEL_ATTR)
            if old and (not definition.multi or dominates(values, t.values, signs)):
                try:
                    store.remove(old)
                except Exception as exc:  # already removed (by another worker) or unreadable
                    log.debug("artifact %s of trial %d not removed: %s", old, t.number, exc)
        return True


def export_model(study: optuna.Study, trial: Any, out: Path, model_dir: str | None = None) -> Path:
    """Copy the kept model of ``trial`` to ``out`` and write ``out`` with suffix ``.py``: a
    snippet that loads it; returns the snippet's path. :class:`ConfigError` when the trial has
    no model (it was never the best) or the model was removed (a better trial superseded it)."""
    artifact_id = trial.user_attrs.get(MODEL_ATTR)
    if not artifact_id:
        raise ConfigError(f"trial #{trial.number} of {study.study_name!r} has no kept model (it was never the best so far)")
    root = model_dir or study_system_attrs(study).get(MODEL_DIR_ATTR)
    if not root:
        raise ConfigError(f"study {study.study_name!r} records no model directory; give --model-dir")
    store = FileSystemArtifactStore(str(root))
    if not (Path(root) / artifact_id).exists():
        raise ConfigError(
            f"the model of trial #{trial.number} is no longer in {root} (a better trial superseded it and it was removed)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    download_artifact(artifact_store=store, file_path=str(out), artifact_id=artifact_id)
    snippet = out.with_suffix(".py") if out.suffix != ".py" else out.with_name(out.name + ".load.py")
    snippet.write_text(
        f'"""Load the model of trial #{trial.number} of study {study.study_name} (written by hpsearch export-model)."""\n'
        "from hpsearch.models.load import load_model\n\n"
        f"model, info = load_model({str(out.resolve())!r})  # a LightningModule in eval mode, on the CPU\n"
        'print(info["settings"], info["metrics"])\n'
        "# predictions: model(x) for a batch x shaped like the task's inputs\n",
        encoding="utf-8",
    )
    return snippet
