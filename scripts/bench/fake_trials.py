"""Fill an Optuna RDB study with many finished trials fast (benchmark/test fixture only).

``study.add_trials`` costs several queries and a commit per trial; this writes the same rows
through Optuna's own ORM models in one transaction, so a 10,000-trial study takes seconds.
The result is an ordinary Optuna study: ``optuna.load_study`` reads it back unchanged.
"""

from __future__ import annotations

import datetime
import random

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, distribution_to_json
from optuna.storages._rdb import models
from optuna.trial import TrialState

DISTRIBUTIONS = {
    "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
    "weight_decay": FloatDistribution(1e-6, 1e-1, log=True),
    "l2_mode": CategoricalDistribution(["decoupled", "loss"]),
    "l2_scope": CategoricalDistribution(["all", "weights", "fc"]),
    "keep_prob": FloatDistribution(0.5, 1.0),
    "batchnorm": CategoricalDistribution(["none", "before_activation", "after_activation"]),
}


def bulk_fill(study: optuna.Study, n: int, seed: int = 0, reports: int = 3) -> None:
    """Add finished trials with random regularization settings until the study holds ``n``
    trials; ~1/4 are PRUNED after fewer reports, the rest COMPLETE."""
    storage = study._storage
    storage = getattr(storage, "_backend", storage)
    assert isinstance(storage, optuna.storages.RDBStorage), "bulk_fill needs an RDB storage"
    existing = len(study.get_trials(deepcopy=False))
    rng = random.Random(seed)
    json_of = {name: distribution_to_json(d) for name, d in DISTRIBUTIONS.items()}
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    session = storage.scoped_session()
    try:
        for number in range(existing, n):
            pruned = rng.random() < 0.25
            value = rng.uniform(0.5, 0.99)
            trial = models.TrialModel(number=number, study_id=study._study_id,
                                      state=TrialState.PRUNED if pruned else TrialState.COMPLETE)
            trial._datetime_start_utc = now
            trial._datetime_complete_utc = now + datetime.timedelta(seconds=rng.uniform(1, 30))
            for name, dist in DISTRIBUTIONS.items():
                if isinstance(dist, CategoricalDistribution):
                    raw = rng.choice(dist.choices)
                elif dist.log:
                    raw = dist.low * (dist.high / dist.low) ** rng.random()
                else:
                    raw = rng.uniform(dist.low, dist.high)
                trial.params.append(models.TrialParamModel(param_name=name, param_value=dist.to_internal_repr(raw),
                                                           distribution_json=json_of[name]))
            steps = rng.randint(1, reports - 1) if pruned else reports
            for step in range(steps):
                trial.intermediate_values.append(models.TrialIntermediateValueModel(
                    step=step, intermediate_value=value - 0.05 * (reports - step),
                    intermediate_value_type=models.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE))
            if not pruned:
                trial.values.append(models.TrialValueModel(objective=0, value=value,
                                                           value_type=models.TrialValueModel.TrialValueType.FINITE))
            session.add(trial)
        session.commit()
    finally:
        session.close()
