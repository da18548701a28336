"""Per-epoch trial checkpoints, so that a trial re-run after its worker died resumes training
from the dead worker's last finished epoch instead of from scratch.

Layout: ``DIR/<study>/<key>/trial-<N>.ckpt`` where ``key`` names the study as created (its
uid) and its definition (fingerprint hash), so only the re-run of the same trial of the same
study can resume a file (see :func:`hpsearch.run.identity.checkpoint_key`), and N is the number
of the *original* trial of a retry chain (Optuna's ``RetryHeartbeatStaleTrialCallback`` re-queues a stale trial under a new
number; every retry shares the original's file). ``DIR`` should be shared storage when workers
run on several nodes. A file is written atomically (temp file + rename) after every training
epoch and removed when the trial finishes. Off by default: a trial then does no extra work.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from hpsearch.models.base import EPOCHS_VALIDATED_KEY
from hpsearch.store.queries import trial_system_attrs


def root_trial_number(trial: Any) -> int:
    """The number of the first trial of ``trial``'s retry chain (its own number if it is not
    a retry of a stale trial)."""
    original = trial_system_attrs(trial).get("failed_trial")  # set by RetryHeartbeatStaleTrialCallback
    return trial.number if original is None else int(original)


@dataclass(frozen=True)
class CheckpointDir:
    """Where the checkpoints of one study (as created, with one definition: ``key``) live."""

    root: Path
    study: str
    key: str = "default"

    def path_for(self, trial_number: int) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", self.study) or "study"
        return self.root / safe / self.key / f"trial-{trial_number}.ckpt"


class EpochCheckpoint(pl.Callback):
    """Lightning callback: save the full training state to ``path`` after every training epoch
    and remember the epoch a run resumed from (``resumed_from_epoch``, ``None`` if fresh).
    The module's own state (validated epochs, last validation metrics) is saved by
    :class:`~hpsearch.models.base.RegularizedModule` itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.resumed_from_epoch: int | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)
        os.replace(tmp, self.path)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.resumed_from_epoch = int(checkpoint.get(EPOCHS_VALIDATED_KEY, checkpoint.get("epoch", 0) + 1))

    def remove(self) -> None:
        """Delete the checkpoint (the trial finished)."""
        self.path.unlink(missing_ok=True)
