"""Conditional parameters: a parameter is only sampled where it has an effect."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from hpsearch.api import load_study_file
from hpsearch.errors import ConfigError
from hpsearch.params import Condition, ParamSpec, active_params
from hpsearch.study.algorithms import build_sampler
from hpsearch.study.config import SamplerConfig
from hpsearch.study.definition import define
from hpsearch.study.space import suggest


def test_tpe_never_samples_momentum_for_adamw_nor_l2_settings_without_decay(write_study, sqlite_url: str) -> None:
    path = write_study(
        search={
            "optimizer": ["adamw", "sgd"],
            "momentum": {"low": 0.5, "high": 0.99},
            "weight_decay": [0.0, 1.0e-3],
            "l2_mode": ["decoupled", "loss"],
            "l2_scope": ["all", "fc"],
        },
        fixed={"batch_size": 128},
    )
    definition = load_study_file(path)
    study = optuna.create_study(
        storage=sqlite_url, sampler=build_sampler(SamplerConfig(type="tpe", n_startup_trials=5), 0), direction="maximize"
    )
    study.optimize(lambda t: float(len(suggest(t, definition.config, definition.task))), n_trials=30)
    trials = optuna.load_study(study_name=study.study_name, storage=sqlite_url).trials
    seen = {(t.params["optimizer"], t.params["weight_decay"]) for t in trials}
    assert len(seen) == 4, seen  # every branch was visited
    for t in trials:
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd"), t.params
        assert ("l2_mode" in t.params) == (t.params["weight_decay"] > 0), t.params
        assert ("l2_scope" in t.params) == (t.params["weight_decay"] > 0), t.params


def test_a_searched_parameter_that_can_never_act_is_refused(write_study) -> None:
    path = write_study(search={"momentum": {"low": 0.5, "high": 0.99}}, fixed={"optimizer": "adamw"})
    with pytest.raises(ConfigError, match=r"search\.momentum: has no effect here: only when optimizer is sgd"):
        load_study_file(path)


def test_task_parameters_declare_active_if(write_study) -> None:
    definition = load_study_file(
        write_study(search={"hidden_layers": [1, 2], "hidden_units": [8, 16]}, fixed={"batch_size": 128})
    )
    params = dict(definition.task.params)
    params["hidden_units"] = dataclasses.replace(params["hidden_units"], active_if=Condition("hidden_layers", ">", 1))
    task = dataclasses.replace(definition.task, params=params)
    definition = define(definition.file)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: float(len(suggest(t, definition.config, task))), n_trials=12)
    assert {("hidden_units" in t.params) == (t.params["hidden_layers"] > 1) for t in study.trials} == {True}


def test_active_params_resolves_chains() -> None:
    specs = {
        "a": ParamSpec("choice", "", choices=("x", "y")),
        "b": ParamSpec("float", "", active_if=Condition("a", "in", ("y",))),
        "c": ParamSpec("float", "", active_if=Condition("b", ">=", 1.0)),
    }
    assert active_params({"a": "x", "b": 2.0, "c": 1.0}, specs) == {"a": "x"}
    assert active_params({"a": "y", "b": 2.0, "c": 1.0}, specs) == {"a": "y", "b": 2.0, "c": 1.0}
