"""Sampler and pruner construction from the study file's ``sampler``/``pruner`` sections."""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from typing import Any

import optuna

from hpsearch.errors import ConfigError
from hpsearch.study.config import PrunerConfig, SamplerConfig
from hpsearch.study.history import BoundedHistorySampler
from hpsearch.study.option_types import option_type_error

log = logging.getLogger(__name__)


def _construct(section: str, kind: str, cls: type, options: dict[str, Any], preset: dict[str, Any], path: str) -> Any:
    """``cls(**preset, **options)`` after checking every option is a constructor argument
    that hpsearch does not set itself."""
    accepted = [k for k in inspect.signature(cls).parameters if k not in preset]
    for key, value in options.items():
        if key not in accepted:
            raise ConfigError(
                f"{path}: {section}.{key}: not an option of the {kind} {section}; valid: {', '.join(accepted)}"
            )
        problem = option_type_error(cls, key, value)
        if problem:
            raise ConfigError(f"{path}: {section}.{key}: {problem}")
    try:
        with warnings.catch_warnings():  # gp/qmc/cmaes options print experimental warnings
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**preset, **options)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ConfigError(f"{path}: {section}: invalid options for {kind}: {exc}") from None


_SAMPLERS: dict[str, type] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "gp": optuna.samplers.GPSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
}

_PRUNERS: dict[str, type] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive-halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}


# Samplers that cannot optimize several objectives.
_SINGLE_OBJECTIVE = ("cmaes",)

# Samplers that re-model the whole history for every trial; they get a bounded view of it.
_HISTORY_BOUNDED = ("tpe", "gp")
KEEP_BEST = 250


def build_sampler(
    cfg: SamplerConfig, seed: int, path: str = "<config>", n_objectives: int = 1, population: int = 1
) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with the study seed. TPE and GP look at no more than
    ``cfg.max_history`` finished trials (see :mod:`hpsearch.study.history`; 0 = all).
    Constraints reach the samplers that use them (tpe, gp, cmaes) through each trial's
    ``Trial.set_constraint`` values (Optuna 5; ``constraints_func`` is deprecated there). With a
    ``population`` > 1, TPE gets ``constant_liar=True`` unless the file sets it, so the K trials
    asked at once differ."""
    if "max_history" in cfg.model_fields_set and cfg.type not in _HISTORY_BOUNDED:
        raise ConfigError(f"{path}: sampler.max_history: only the {' and '.join(_HISTORY_BOUNDED)} samplers take it")
    if n_objectives > 1 and cfg.type in _SINGLE_OBJECTIVE:
        raise ConfigError(f"{path}: sampler.type: {cfg.type} handles one objective only; use tpe, gp, random or qmc")
    options = dict(cfg.options)
    if population > 1 and cfg.type == "tpe":
        options.setdefault("constant_liar", True)
    sampler = _construct("sampler", cfg.type, _SAMPLERS[cfg.type], options, {"seed": seed}, path)
    if cfg.type in _HISTORY_BOUNDED and cfg.max_history:
        sampler = BoundedHistorySampler(sampler, max_trials=cfg.max_history, keep_best=min(KEEP_BEST, cfg.max_history))
    log.info("%s sampler built with seed %d (process %d)", cfg.type, seed, os.getpid())
    return sampler


def build_pruner(cfg: PrunerConfig, max_epochs: int, path: str = "<config>") -> optuna.pruners.BasePruner:
    """The configured pruner. The resource is the epoch: hyperband gets
    ``min_resource=1, max_resource=max_epochs``."""
    preset: dict[str, Any] = {}
    if cfg.type == "hyperband":
        preset = {"min_resource": 1, "max_resource": max_epochs}
    if cfg.type == "percentile" and "percentile" not in cfg.options:
        raise ConfigError(f"{path}: pruner.percentile: required by the percentile pruner (e.g. 25.0)")
    pruner = _construct("pruner", cfg.type, _PRUNERS[cfg.type], cfg.options, preset, path)
    log.info("%s pruner built (process %d)", cfg.type, os.getpid())
    return pruner
