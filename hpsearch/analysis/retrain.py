"""Retrain one configuration with one seed and score it on the held-out test split: the
shared step of ``verify`` and ``answer``.

The data comes from :meth:`hpsearch.tasks.base.Task.splits` with the configuration's own
options, the same path the search takes, so a study with ``fixed: {dataset: xor}`` is
retrained and scored on xor. A retrain that fails (a model that cannot be built, a
non-finite loss or test score) is reported with its real reason; only Ctrl-C / SIGTERM
propagate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import optuna
from optuna.trial import TrialState

from hpsearch.errors import describe_exception
from hpsearch.study.meta import CURVE_ATTR, metric_key


@dataclass(frozen=True)
class Retrained:
    """One retrain's outcome: the test metric, or ``error``; the training- and validation-split
    values of the same metric where they were measured."""

    value: float | None
    error: str | None
    epochs: int
    seconds: float
    train_value: float | None = None
    val_value: float | None = None
    curve: tuple[float, ...] = ()  # the validation metric after every epoch
    norms: Mapping[str, float] | None = None  # weight norms of the layers that feed a BatchNorm

    def attrs(self) -> dict[str, Any]:
        """User attrs to store with the retrain's trial."""
        out: dict[str, Any] = {"epochs": self.epochs, "wall_seconds": round(self.seconds, 3)}
        if self.train_value is not None:
            out["train_value"] = self.train_value
        if self.val_value is not None:
            out["val_value"] = self.val_value
        if self.curve:
            out[CURVE_ATTR] = [round(v, 6) for v in self.curve]
        if self.norms:
            out["bn_weight_norms"] = dict(self.norms)
        return out


def covers_text(vary_split: bool, task_name: str, split_seed: int) -> str:
    """What intervals over retrain seeds cover, in words (for ``verify`` and ``answer``)."""
    if vary_split:
        return ("seed noise (initialization, batch order, dropout) and the data: each seed s trains and scores on "
                f"the task's data drawn with seed s ({task_name}: load_data(s)) instead of one fixed split")
    return (f"seed noise (initialization, batch order, dropout) on one fixed train/validation/test split "
            f"(drawn with the study seed {split_seed}); not the variation between splits")


def retrain(definition: Any, params: Mapping[str, Any], seed: int, data_seed: int, max_epochs: int | None = None) -> Retrained:
    """Train ``params`` (searched values; the study's ``fixed`` and the task's defaults fill
    the rest) with init/batch-order ``seed`` on the split drawn with ``data_seed``, for the
    study's ``max_epochs`` without pruning, and score the test split with the study's metric."""
    from hpsearch.models.norms import weight_norms_before_batchnorm
    from hpsearch.run.curves import ValidationCurve
    from hpsearch.run.training import evaluate, fit
    from hpsearch.study.space import settings_for

    task, config = definition.task, definition.config
    key = metric_key(definition.metric)
    started = time.perf_counter()
    curve = ValidationCurve(definition.metric)
    try:
        settings = settings_for(params, config, task)
        data = task.splits(data_seed, settings.options)
        fitted = fit(task, settings, data, max_epochs=max_epochs or config.max_epochs, seed=seed, callbacks=[curve])
    except Exception as exc:  # a model or data builder that fails: the run fails with that reason
        return Retrained(None, describe_exception(exc), 0, time.perf_counter() - started)
    if fitted.error is not None:
        return Retrained(None, describe_exception(fitted.error), fitted.epochs, fitted.seconds)
    value = evaluate(fitted.model, data.test).get(key)
    if value is None or not math.isfinite(value):
        return Retrained(None, f"the model reported no finite {key!r} on the test split (got {value!r})",
                         fitted.epochs, fitted.seconds)
    train_value = evaluate(fitted.model, data.train).get(key)
    norms = weight_norms_before_batchnorm(fitted.model)
    return Retrained(float(value), None, fitted.epochs, fitted.seconds, train_value, fitted.metrics.get(definition.metric),
                     tuple(float(v) for v in curve.values), norms or None)


def _still_running(study: optuna.Study, trial: optuna.Trial) -> bool:
    """False when another process already failed the trial (its heartbeat went stale)."""
    from hpsearch.store.queries import trial_id

    return study._storage.get_trial(trial_id(trial)).state == TrialState.RUNNING


def record(study: optuna.Study, trial: optuna.Trial, outcome: Retrained) -> None:
    """Store ``outcome`` on ``trial`` of ``study``: COMPLETE with the test value, or FAIL with
    ``fail_reason``; nothing when another process has failed the trial meanwhile (a rerun or
    that process redoes it)."""
    if not _still_running(study, trial):
        return
    for key, value in outcome.attrs().items():
        trial.set_user_attr(key, value)
    if outcome.error is None:
        study.tell(trial, outcome.value)
    else:
        trial.set_user_attr("fail_reason", outcome.error)
        study.tell(trial, state=TrialState.FAIL)


def fail_interrupted(study: optuna.Study, trial: optuna.Trial, exc: BaseException) -> None:
    """Ctrl-C / SIGTERM during a retrain: fail the trial with that reason (a rerun redoes it)."""
    if not _still_running(study, trial):
        return
    trial.set_user_attr("fail_reason", f"interrupted ({type(exc).__name__}); a rerun redoes this seed")
    study.tell(trial, state=TrialState.FAIL)
