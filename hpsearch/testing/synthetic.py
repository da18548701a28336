"""A large study made fast: the real search space of a study file, a no-op objective, and
``create_trial`` + ``add_trials`` through the real storage (no training)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpsearch.store.connect import connect
from hpsearch.study.builtin import BUILTIN_DIR
from hpsearch.study.config import load_study_file
from hpsearch.study.definition import define
from hpsearch.study.meta import record_study_file
from hpsearch.study.space import suggest

QUICKSTART = BUILTIN_DIR / "quickstart.yaml"


def make_synthetic_study(url: str, name: str, n_trials: int, study_file: Path = QUICKSTART, seed: int = 0, epochs: int = 5) -> optuna.Study:
    """Create study ``name`` with ``n_trials`` finished trials (about 1/3 pruned) whose params
    come from the study file's search space; values are a smooth function of the params plus
    noise, with ``epochs`` intermediate values and a ``train_val_gap`` attr."""
    definition = define(load_study_file(study_file))
    config, task = definition.config, definition.task
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = random.Random(seed)
    trials = []
    for _ in range(n_trials):
        t = sampler_study.ask()
        params = suggest(t, config, task)
        lr = math.log10(params.get("learning_rate", 1e-2))
        wd = math.log10(params.get("weight_decay", 1e-4))
        keep = params.get("keep_prob", 1.0)
        bn_bonus = 0.02 if params.get("batchnorm", "none") != "none" else 0.0
        final = 0.95 - 0.04 * (lr + 2.5) ** 2 - 0.005 * (wd + 3) ** 2 + bn_bonus + rng.gauss(0, 0.01)
        gap = max(0.0, 0.08 * keep - 0.01 * (wd + 6) + rng.gauss(0, 0.01))
        pruned = rng.random() < 0.33
        steps = rng.randint(1, epochs - 1) if pruned else epochs
        curve = {e: final - 0.3 * math.exp(-e) for e in range(steps)}
        attrs = {"train_val_gap": gap, definition.metric: curve[steps - 1], "epochs": steps, "seed": config.seed + len(trials)}
        trials.append(
            optuna.trial.create_trial(
                state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
                value=None if pruned else final,
                params=params,
                distributions=dict(t.distributions),
                intermediate_values=curve,
                user_attrs=attrs,
            )
        )
    study = optuna.create_study(storage=connect(url), study_name=name, direction=definition.direction)
    record_study_file(study, definition.text, definition.path)
    study.set_user_attr("metric", definition.metric)
    study.set_user_attr("task", config.task_ref)
    study.add_trials(trials)
    return study
