"""Training and scoring a user's module through its DataModule's own DataLoaders.

A trial is ``Trainer.fit(module, datamodule)`` with the study's ``accelerator``, ``devices``
and ``precision``, after ``seed_everything(seed, workers=True)`` (model init, batch order,
augmentation and dataloader workers all follow the trial's seed). The DataModule's
``prepare_data`` and ``setup`` run seeded with the *study* seed instead (Python, NumPy and torch
generators, restored to the trial's stream afterwards), in training and when ``verify`` /
``answer`` score a split, so a DataModule that splits with the global generator
(``random_split``, ``torch.randperm``) gives every trial and every evaluation the same split.
No logger, progress bar, model summary, sanity validation or Lightning checkpointing; the
module's own ``training_step`` / ``validation_step`` and ``self.log`` run unchanged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import lightning.pytorch as pl

from hpsearch.lightning_task.config import LightningTaskConfig
from hpsearch.lightning_task.module import LoggedMetrics

if TYPE_CHECKING:
    from hpsearch.regularization import Regularization
    from hpsearch.run.training import FitResult
    from hpsearch.study.space import TrialSettings
    from hpsearch.tasks.base import DataSplits


class LightningSetup(Protocol):
    """What training needs of a Lightning task's setup
    (:class:`hpsearch.lightning_task.task.LightningSetup`, which calls into this module)."""

    @property
    def block(self) -> LightningTaskConfig: ...
    @property
    def path(self) -> str: ...
    @property
    def seed(self) -> int: ...

    def build_model(self, reg: "Regularization", options: Mapping[str, Any], data: Any = None,
                    named: "frozenset[str] | None" = None) -> Any: ...

    def datamodule(self, options: Mapping[str, Any], reg: "Regularization | None" = None,
                   named: "frozenset[str] | None" = None) -> Any: ...


class LoaderSplit(Protocol):
    """What scoring needs of one split (:class:`hpsearch.lightning_task.task.LoaderSplit`)."""

    @property
    def stage(self) -> str: ...
    @property
    def options(self) -> Mapping[str, Any]: ...


def trainer_for(setup: "LightningSetup", accelerator: str, callbacks: Sequence[pl.Callback] = (), max_epochs: int = 1) -> pl.Trainer:
    """A lean Trainer on the study's accelerator (``accelerator`` other than ``auto`` overrides it)."""
    block = setup.block
    return pl.Trainer(
        accelerator=block.accelerator if accelerator == "auto" else accelerator,
        devices=block.devices,
        precision=block.precision,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
    )


def _seed_all(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seeded_data_hooks(datamodule: Any, seed: int) -> Any:
    """``datamodule`` with its ``prepare_data`` and ``setup`` run under ``seed`` (the study
    seed), the random state before each call restored after it; returned for chaining."""
    from lightning.pytorch.utilities.seed import isolate_rng

    for hook in ("prepare_data", "setup"):
        original = getattr(datamodule, hook)

        def seeded(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with isolate_rng():
                _seed_all(seed)
                return _original(*args, **kwargs)

        setattr(datamodule, hook, seeded)
    return datamodule


def fit_module(
    setup: "LightningSetup",
    settings: "TrialSettings",
    data: "DataSplits",
    max_epochs: int,
    seed: int,
    callbacks: Sequence[pl.Callback] = (),
    accelerator: str = "auto",
    ckpt_path: str | None = None,
) -> "FitResult":
    """Build the module and DataModule for ``settings`` and fit for up to ``max_epochs``
    (see :func:`hpsearch.run.training.fit`, whose result this is)."""
    from hpsearch.run.training import FitResult, fit_catching, quiet_lightning

    quiet_lightning()
    pl.seed_everything(seed, workers=True, verbose=False)
    model = setup.build_model(settings.reg, settings.options, named=settings.named)
    datamodule = seeded_data_hooks(setup.datamodule(settings.options, settings.reg, settings.named), setup.seed)
    capture = LoggedMetrics(setup.block.metric, f"{setup.path}: task.metric")
    trainer = trainer_for(setup, accelerator, [capture, *callbacks], max_epochs)
    started = time.perf_counter()
    error = fit_catching(trainer, model, datamodule, ckpt_path=ckpt_path)
    return FitResult.after_fit(model, started, model.hpsearch_device, error, int(trainer.global_step))


def _loader(setup: "LightningSetup", split: "LoaderSplit", model: Any = None) -> Any:
    """The split's DataLoader from a DataModule built with the trial's settings (those of
    ``model``, when given: its regularization settings may be DataModule init arguments)."""
    datamodule = seeded_data_hooks(
        setup.datamodule(split.options, getattr(model, "hpsearch_reg", None), getattr(model, "hpsearch_named", None)), setup.seed)
    datamodule.prepare_data()
    if split.stage == "test":
        datamodule.setup("test")
        return datamodule.test_dataloader()
    datamodule.setup("validate" if split.stage == "val" else "fit")
    return datamodule.val_dataloader() if split.stage == "val" else datamodule.train_dataloader()


def evaluate_split(setup: "LightningSetup", model: Any, split: "LoaderSplit") -> dict[str, float]:
    """The model's metrics on ``split`` by short name (``val_acc`` -> ``acc``).

    ``val`` / ``test``: the module's ``validation_step`` over the DataModule's val / test
    loader (``trainer.validate``), so a test score is the validation metric computed on the
    test split. ``train``: what the module logged for its last training epoch under a
    ``train_`` name (``train_acc``), if anything: the training loader augments, so hpsearch does
    not rescore it."""
    if split.stage == "train":
        return {k.removeprefix("train_"): v for k, v in getattr(model, "val_metrics", {}).items() if k.startswith("train_")}
    from hpsearch.run.training import quiet_lightning

    quiet_lightning()
    trainer = trainer_for(setup, "auto")
    results = trainer.validate(model, dataloaders=_loader(setup, split, model), verbose=False)
    return {k.removeprefix("val_"): float(v) for k, v in (results[0] if results else {}).items()}


def split_examples(setup: "LightningSetup", split: "LoaderSplit") -> int | None:
    """How many examples the split's loader reads, if its dataset has a length."""
    try:
        return len(_loader(setup, split).dataset)
    except Exception:  # an iterable dataset, a loader without .dataset
        return None
