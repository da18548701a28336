"""Fit one model with a lean Lightning Trainer and collect its results.

Used by the search objective (with a pruning callback) and usable on its own to retrain a
configuration. No logger, progress bar or model summary inside a trial, and no checkpointing
unless the caller adds :class:`hpsearch.run.checkpoints.EpochCheckpoint` (``--checkpoint-dir``).
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import lightning.pytorch as pl
import torch

from hpsearch.data import EpochFeed, TensorBatches, to_device
from hpsearch.errors import NonFiniteLossError
from hpsearch.models.base import RegularizedModule
from hpsearch.run import signals
from hpsearch.study.space import TrialSettings
from hpsearch.tasks.base import DataSplits, Task

log = logging.getLogger(__name__)


class FiniteLossGuard(pl.Callback):
    """Stops training with :class:`NonFiniteLossError` when an epoch's training loss (or its
    L2 penalty) is NaN/inf. Checked once per epoch, so no device sync per step."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert isinstance(pl_module, RegularizedModule)
        loss = pl_module.epoch_train_loss()
        if loss is not None and not torch.isfinite(torch.tensor(loss)):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss}) in epoch {trainer.current_epoch}"
            )


@dataclass(frozen=True)
class FitResult:
    """What one training run produced, also when it stopped early.

    ``error`` is the exception that ended training (pruning, non-finite loss, a bug in a
    custom model), or ``None`` when all epochs ran. ``epochs`` counts completed epochs.
    """

    model: RegularizedModule
    metrics: dict[str, float]
    train_loss: float | None
    epochs: int
    seconds: float
    device: str
    error: Exception | None = None
    steps: int = 0  # optimizer steps taken (resumed ones included)

    @classmethod
    def after_fit(cls, model: Any, started: float, device: str, error: Exception | None, steps: int) -> "FitResult":
        """The result of a fit that began at ``perf_counter()`` ``started``, read off its model."""
        return cls(model=model, metrics=dict(model.val_metrics), train_loss=model.epoch_train_loss(),
                   epochs=model.epochs_validated, seconds=time.perf_counter() - started, device=device, error=error,
                   steps=steps)


@functools.lru_cache(maxsize=1)
def quiet_lightning() -> None:
    """Silence Lightning's per-fit banners and tips (still visible with ``-v`` logging).
    Runs once per process (warning filters would otherwise pile up with every trial)."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")


def fit(
    task: Task,
    settings: TrialSettings,
    data: DataSplits,
    max_epochs: int,
    seed: int,
    callbacks: Sequence[pl.Callback] = (),
    accelerator: str = "auto",
    ckpt_path: str | None = None,
) -> FitResult:
    """Build the task's model for ``settings`` (init seeded by ``seed``) and train it for up to
    ``max_epochs`` on ``data.train``, validating on the whole ``data.val`` each epoch.

    ``ckpt_path``: resume from this Lightning checkpoint (see :mod:`hpsearch.run.checkpoints`).
    A task of the user's Lightning classes trains through its DataModule instead
    (:func:`hpsearch.lightning_task.fit.fit_module`)."""
    if task.lightning is not None:
        return task.lightning.fit(settings, data, max_epochs, seed, callbacks, accelerator, ckpt_path)
    quiet_lightning()
    torch.manual_seed(seed)
    model = task.build_model(settings.reg, settings.options, data)
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[FiniteLossGuard(), *callbacks],
    )
    train = TensorBatches(*data.train, batch_size=int(settings.options.get("batch_size", 64)), seed=seed)
    started = time.perf_counter()
    error = fit_catching(trainer, model, EpochFeed(train, data.val), ckpt_path=ckpt_path)  # pruning, NaN loss...
    return FitResult.after_fit(model, started, str(model.device), error, int(getattr(model, "optimizer_steps", trainer.global_step)))


def evaluate(model: RegularizedModule, split: tuple[Any, torch.Tensor]) -> dict[str, float]:
    """The model's metrics on a whole split (moved to the model's device), see
    :meth:`RegularizedModule.score`; for a Lightning task's loader split, its own evaluation
    (:func:`hpsearch.lightning_task.fit.evaluate_split`: a split with its own ``evaluate``)."""
    own = getattr(split, "evaluate", None)  # a LoaderSplit (hpsearch.lightning_task sits above this module)
    if own is not None:
        return dict(own(model))
    return model.score(to_device(split[0], model.device), split[1].to(model.device))


def fit_catching(
    trainer: pl.Trainer, module: pl.LightningModule, feed: Any, ckpt_path: str | None = None,
    reraise: tuple[type[Exception], ...] = (),
) -> Exception | None:
    """``trainer.fit(module, feed)``; returns the exception the fit ended with (pruning, a
    non-finite loss, a failing custom model), None when it finished, and raises those in
    ``reraise``. Lightning turns Ctrl-C (or our SIGTERM handler's Interrupted) inside fit into
    ``sys.exit(1)`` after ignoring SIGINT; the caller gets the interrupt instead, so the trial is
    failed and the process can exit 130 / 143."""
    try:
        trainer.fit(module, train_dataloaders=feed, ckpt_path=ckpt_path)
    except reraise:
        raise
    except Exception as exc:
        return exc
    except SystemExit:
        if trainer.interrupted:
            signals.reinstall_sigint()
            raise signals.interruption() from None
        raise
    return None
