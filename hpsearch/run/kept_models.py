"""The best model kept: weights and settings of every COMPLETE trial that is the best so far.

When a trial finishes and no feasible complete trial beats it (one objective: none is at least
as good; several: none dominates it), its final weights and the settings that rebuild the
model are written as one ``torch.save`` checkpoint of tensors and plain data
(:mod:`hpsearch.models.checkpoint`) and uploaded through Optuna's artifact store
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

from hpsearch.errors import ConfigError, first_line
from hpsearch.models.checkpoint import checkpoint_dict
from hpsearch.store.queries import is_feasible, set_study_system_attr, study_system_attrs
from hpsearch.study.meta import dominates
from hpsearch.version import __version__

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


def model_dir_for(definition: "StudyDefinition", url: str) -> Path | None:
    """``$HPSEARCH_MODEL_DIR``, the study file's ``model_dir``, or ``<db>-models`` next to a
    SQLite file; ``None`` (keep nothing) for another database without either. A directory that
    cannot hold the models is a :class:`ConfigError` (see :func:`check_model_dir`)."""
    env = os.environ.get(MODEL_DIR_ENV, "").strip()
    chosen = env or definition.config.model_dir
    if chosen:
        return check_model_dir(chosen, f"${MODEL_DIR_ENV}" if env else f"{definition.path}: model_dir")
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        db = Path(url.removeprefix("sqlite:///"))
        return db.resolve().with_name(f"{db.stem}-models")
    return None


#: System directories that never hold kept models (``/dev/shm``, a plain tmpfs, may).
SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_model_dir(chosen: str, where: str) -> Path:
    """The resolved directory ``chosen``, checked before anything is written: no control
    characters, not in ``/proc``, ``/sys`` or ``/dev``, not an existing file, and its nearest
    existing ancestor a writable directory; else a one-line :class:`ConfigError`."""
    bad = next((c for c in chosen if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ConfigError(f"{where}: cannot contain {bad!r} (control characters are not allowed)")
    try:
        path = Path(chosen).expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{where}: cannot resolve {chosen!r}: {first_line(exc)}") from None
    shm = Path("/dev/shm")
    if any(path == d or d in path.parents for d in SYSTEM_DIRS) and not (path == shm or shm in path.parents):
        raise ConfigError(f"{where}: {path} is a system path (/proc, /sys, /dev); give a directory for the kept models")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: {path} exists and is not a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{where}: cannot create {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: cannot write the kept models in {path}: {existing} is not writable")
    return path


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

        info = {
            "hpsearch_version": __version__,
            "study": definition.config.study,
            "trial": trial.number,
            "task": definition.config.task_ref,
            "data_seed": definition.config.seed,
            "seed": seed,
            "settings": settings.as_dict(),
            "metrics": dict(zip(definition.metrics, values)),
        }
        if definition.task.lightning is not None:  # what rebuilds the user's module
            info.update(definition.task.lightning.model_file_info())
            if settings.named is not None:  # which settings the trial set (the others keep init_args)
                info["task_named"] = sorted(settings.named)
        checkpoint = checkpoint_dict(info, model.state_dict())
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


def export_model(study: optuna.Study, trial: Any, out: Path, model_dir: str | None = None, force: bool = False) -> Path:
    """Copy the kept model of ``trial`` to ``out`` and write ``out`` with suffix ``.py``: a
    snippet that loads it; returns the snippet's path. Everything is checked before anything is
    written (:class:`ConfigError`): the trial has a kept model (it was the best so far and no
    better trial superseded it), the kept file holds only tensors and plain data, and neither
    ``out`` nor the snippet exists and ``out``'s directory does (unless ``force``)."""
    from hpsearch.models.checkpoint import read_checkpoint

    artifact_id = trial.user_attrs.get(MODEL_ATTR)
    if not artifact_id:
        raise ConfigError(f"trial #{trial.number} of {study.study_name!r} has no kept model (it was never the best so far)")
    root = model_dir or study_system_attrs(study).get(MODEL_DIR_ATTR)
    if not root:
        raise ConfigError(f"study {study.study_name!r} records no model directory; give --model-dir")
    kept = Path(root) / artifact_id
    if not kept.exists():
        raise ConfigError(
            f"the model of trial #{trial.number} is no longer in {root} (a better trial superseded it and it was removed)"
        )
    read_checkpoint(kept)  # refuses a file that is not tensors and plain data
    snippet = snippet_path(out)
    check_targets([out, snippet], force)
    out.parent.mkdir(parents=True, exist_ok=True)
    for target in (out, snippet):
        if target.is_symlink() or target.exists():
            target.unlink()
    download_artifact(artifact_store=FileSystemArtifactStore(str(root)), file_path=str(out), artifact_id=artifact_id)
    snippet.write_text(loader_snippet(study.study_name, trial.number, out), encoding="utf-8")
    return snippet


def snippet_path(out: Path) -> Path:
    """Where ``export-model --out out`` writes the loading snippet."""
    return out.with_suffix(".py") if out.suffix != ".py" else out.with_name(out.name + ".load.py")


def check_targets(paths: list[Path], force: bool) -> None:
    """:class:`ConfigError` unless every path can be written: an existing file or a missing
    directory only with ``force``; never something that is not a regular file."""
    for path in paths:
        if path.is_symlink() or path.exists():
            if path.exists() and not path.is_file():
                raise ConfigError(f"--out: {path} exists and is not a regular file")
            if not force:
                raise ConfigError(f"--out: {path} exists; pass --force to replace it")
        parent = path.parent
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"--out: {parent} is not a directory")
        if not parent.exists() and not force:
            raise ConfigError(f"--out: directory {parent} does not exist; pass --force to create it")


def loader_snippet(study_name: str, trial: int, out: Path) -> str:
    """Python code that loads the exported model; every value in it is quoted with ``repr``,
    so no study name or path can change what the code does."""
    return (
        '"""Load a model exported by hpsearch export-model."""\n'
        "from hpsearch.models.load import load_model\n\n"
        f"STUDY = {study_name!r}\n"
        f"TRIAL = {int(trial)!r}\n"
        f"PATH = {str(out.resolve())!r}\n\n"
        "model, info = load_model(PATH)  # a LightningModule in eval mode, on the CPU\n"
        'print(f"trial #{TRIAL} of study {STUDY!r}:", info["settings"], info["metrics"])\n'
        "# predictions: model(x) for a batch x shaped like the task's inputs\n"
    )
