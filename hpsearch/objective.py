"""One trial: sample settings, fit with pruning, record user attrs, map failures to states.

This is the only module that knows both the Optuna trial and the Lightning Trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna_integration import PyTorchLightningPruningCallback

from hpsearch.config import StudyConfig
from hpsearch.errors import NonFiniteLossError
from hpsearch.space import settings_for, suggest
from hpsearch.tasks.base import DataSplits, Task
from hpsearch.training import describe_exception, evaluate, fit, generalization_gap


@dataclass(frozen=True)
class Objective:
    """Callable Optuna objective for a validated study config.

    The trial's seed is ``config.seed + trial.number``: it seeds model initialization and
    batch order, so one worker reproduces its results for a given study seed.
    """

    config: StudyConfig
    task: Task
    data: DataSplits
    metric: str
    direction: str

    def __call__(self, trial: optuna.Trial) -> float:
        seed = self.config.seed + trial.number
        settings = settings_for(suggest(trial, self.config, self.task), self.config, self.task)
        trial.set_user_attr("seed", seed)
        data = self.task.data_for(self.data, settings.options)
        result = fit(
            self.task,
            settings,
            data,
            max_epochs=self.config.max_epochs,
            seed=seed,
            callbacks=[PyTorchLightningPruningCallback(trial, monitor=self.metric)],
        )
        value = result.metrics.get(self.metric)
        attrs: dict[str, object] = {
            "epochs": result.epochs,
            "wall_seconds": round(result.seconds, 3),
            "device": result.device,
            "final_train_loss": result.train_loss,
            self.metric: value,
        }
        stopped_early = isinstance(result.error, (optuna.TrialPruned, NonFiniteLossError))
        if value is not None and (result.error is None or stopped_early):
            train_value = evaluate(result.model, data.train).get(self.metric.removeprefix("val_"))
            if train_value is not None:
                attrs["train_" + self.metric.removeprefix("val_")] = train_value
                attrs["train_val_gap"] = generalization_gap(self.metric, self.direction, train_value, value)
        for key, item in attrs.items():
            trial.set_user_attr(key, item)

        error = result.error
        if isinstance(error, optuna.TrialPruned):
            trial.set_user_attr("pruned_reason", f"pruner stopped it after epoch {result.epochs - 1}")
            raise error
        if isinstance(error, NonFiniteLossError):
            trial.set_user_attr("pruned_reason", str(error))
            raise optuna.TrialPruned(str(error))
        if error is not None:
            trial.set_user_attr("fail_reason", describe_exception(error))
            raise error
        if value is None:
            reason = f"the model logged no {self.metric!r}; it logged {sorted(result.metrics)}"
            trial.set_user_attr("fail_reason", reason)
            raise RuntimeError(reason)
        return value
