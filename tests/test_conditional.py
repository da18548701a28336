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


def test_a_setting_that_does_not_act_is_ignored_alike_by_verify_answer_and_the_identity_checks(write_study, sqlite_url: str) -> None:
    """One rule (hpsearch.params.acting): l2_scope at weight_decay 0, and momentum with adamw,
    do not act; verify merges trials that differ only there, answer retrains without them, and
    a file that changes only them is the same study (also for the stored-definition check)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    from hpsearch.analysis.verify import top_configs
    from hpsearch.question.answer import tuned_params
    from hpsearch.run.runner import create_or_load, record_definition
    from hpsearch.study.stored import searched_definition

    search = {"weight_decay": [0.0, 1e-3], "l2_scope": ["all", "fc"], "learning_rate": {"low": 1e-3, "high": 1e-2}}
    fixed = {"optimizer": "adamw", "momentum": 0.5, "batch_size": 64, "hidden_units": 8, "hidden_layers": 1}
    definition = load_study_file(write_study(search=search, fixed=fixed))
    assert definition.acting({"weight_decay": 0.0, "l2_scope": "fc", "learning_rate": 0.01}) == {"weight_decay": 0.0, "learning_rate": 0.01}
    assert definition.acting({"weight_decay": 1e-3, "l2_scope": "fc"}) == {"weight_decay": 1e-3, "l2_scope": "fc"}

    study = create_or_load(definition, sqlite_url)
    record_definition(study, definition)
    dists = {"weight_decay": CategoricalDistribution([0.0, 1e-3]), "l2_scope": CategoricalDistribution(["all", "fc"]),
             "learning_rate": FloatDistribution(1e-3, 1e-2)}
    for value, wd, scope in [(0.90, 0.0, "fc"), (0.89, 0.0, "all"), (0.88, 1e-3, "fc"), (0.87, 1e-3, "all")]:
        study.add_trial(create_trial(params={"weight_decay": wd, "l2_scope": scope, "learning_rate": 0.01}, distributions=dists,
                                     value=value))
    # verify: trials 0 and 1 differ only in l2_scope at weight_decay 0: one configuration
    assert [t.number for t in top_configs(study, 3, definition.acting)] == [0, 2, 3]
    # answer: the chosen trial is retrained with the settings that act
    trials = study.get_trials(deepcopy=False)
    assert tuned_params(definition, trials[0]) == tuned_params(definition, trials[1]) == {"weight_decay": 0.0, "learning_rate": 0.01}
    assert tuned_params(definition, trials[2]) == {"weight_decay": 1e-3, "l2_scope": "fc", "learning_rate": 0.01}

    # identity: momentum does not act with adamw, so changing it is no change (nor for verify's
    # rebuild of the stored file); changing the optimizer makes it act and is a change
    quiet = load_study_file(write_study(search=search, fixed={**fixed, "momentum": 0.9}))
    record_definition(create_or_load(quiet, sqlite_url), quiet)
    assert searched_definition(study).config.fixed["momentum"] == 0.9
    with pytest.raises(ConfigError) as info:
        create_or_load(load_study_file(write_study(search=search, fixed={**fixed, "optimizer": "sgd"})), sqlite_url)
    assert "fixed.optimizer: adamw -> sgd" in str(info.value) and "momentum" not in str(info.value)
