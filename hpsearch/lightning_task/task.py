"""A :class:`~hpsearch.tasks.Task` made of a user's LightningModule and LightningDataModule.

:func:`lightning_task` imports the two classes (see :mod:`hpsearch.lightning_task.imports`),
checks them and their init arguments, and says where each study setting goes:

- by role, applied by hpsearch to any module (:mod:`hpsearch.lightning_task.module`):
  ``learning_rate``, ``optimizer``, ``momentum``, ``weight_decay``, ``l2_mode``, ``l2_scope``,
  ``keep_prob``;
- every other searched, fixed, baseline or question setting (``batchnorm``, ``activation``,
  ``input_norm``, ``hidden``, ``batch_size``...) is passed as an init argument of each class
  whose ``__init__`` names it (both, when both do). A name neither takes is an error.

A role or routed setting acts only in the trials whose merged settings (search, fixed, question
level) name it: another trial keeps the module's own dropout and the classes' ``init_args``.

:func:`check_can_act` then builds the model and the DataModule once and refuses a setting that cannot act on it
(``l2_scope: fc`` without an ``nn.Linear``, ``keep_prob`` without a dropout layer). Every error
is one :class:`ConfigError` line, raised before any study is created.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from hpsearch.errors import ConfigError, describe_exception
from hpsearch.lightning_task.config import LightningTaskConfig
from hpsearch.params import REGULARIZATION_PARAMS, ParamSpec
from hpsearch.tasks.base import DataSplits, Task

if TYPE_CHECKING:
    from hpsearch.regularization import Regularization
    from hpsearch.study.config import StudyConfig

#: Settings hpsearch applies to the module itself, by parameter role (never init arguments).
ROLE_PARAMS = ("learning_rate", "optimizer", "momentum", "weight_decay", "l2_mode", "l2_scope", "keep_prob")


@dataclass(frozen=True)
class LoaderSplit:
    """One split of a Lightning task: read through the DataModule's own DataLoader
    (``train``, ``val`` or ``test``) built with a trial's ``options``."""

    stage: str
    setup: "LightningSetup"
    options: Mapping[str, Any] = field(default_factory=dict)

    def evaluate(self, model: Any) -> dict[str, float]:
        """The model's metrics on this split by short name (see :meth:`LightningSetup.evaluate`)."""
        return self.setup.evaluate(model, self)

    def examples(self) -> int | None:
        """How many examples the split's loader reads (``None`` if its dataset has no length)."""
        return self.setup.examples(self)


def _init_params(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """The named init arguments of ``cls`` and whether it takes ``**kwargs``."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return {}, True
    named = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _set_values(config: "StudyConfig") -> dict[str, list[Any]]:
    """Every setting the study names (search, fixed, baselines, question levels) with the
    values it gives it (a range: its bounds)."""
    from hpsearch.study.config import Range

    values: dict[str, list[Any]] = {}
    for name, space in config.search.items():
        values.setdefault(name, []).extend([space.low, space.high] if isinstance(space, Range) else list(space))
    for settings in [config.fixed, *config.baselines.values()]:
        for name, value in settings.items():
            values.setdefault(name, []).append(value)
    if config.question is not None:
        for name in config.question.factors:
            values.setdefault(name, [])
        for levels in config.question.explicit_levels().values():
            for settings in (levels or {}).values():
                for name, value in settings.items():
                    values.setdefault(name, []).append(value)
    return values


def _user_spec(name: str, values: list[Any], ranged: bool) -> ParamSpec:
    """The table entry of a user's own init argument, from the values the study gives it:
    numbers (int if all are ints), or categorical choices."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if values and len(numbers) == len(values):
        kind = "int" if all(isinstance(v, int) for v in numbers) else "float"
        return ParamSpec(kind, f"init argument {name}")  # type: ignore[arg-type]
    if ranged:
        return ParamSpec("float", f"init argument {name}")
    unique: list[Any] = []
    for v in values:
        if not any(v == u and type(v) is type(u) for u in unique):
            unique.append(v)
    return ParamSpec("choice", f"init argument {name}", choices=tuple(unique))


@dataclass(frozen=True)
class LightningSetup:
    """The imported classes of a Lightning task and where each setting goes."""

    block: LightningTaskConfig
    path: str
    model_cls: type
    data_cls: type
    routes: Mapping[str, tuple[str, ...]]  # setting -> ("model",) / ("data",) / both
    keep_prob_set: bool
    seed: int = 0  # the study seed: the DataModule's prepare_data/setup run under it (see fit.py)

    # -- building -------------------------------------------------------------------------
    def init_kwargs(self, which: str, reg: "Regularization | None", options: Mapping[str, Any],
                    named: "frozenset[str] | None" = None) -> dict[str, Any]:
        """``init_args`` of the ``which`` ("model"/"data") block plus the trial's routed settings.

        A routed regularization setting (``batchnorm``, ``activation``, ``input_norm``...) comes
        from ``reg`` only when this trial sets it (``named``, the trial's merged setting names;
        ``None``: every routed name, for settings whose names were not kept): a trial that
        does not set it keeps the class's ``init_args`` or its own default."""
        ref = self.block.model if which == "model" else self.block.data
        kwargs = dict(ref.init_args)
        for name, targets in self.routes.items():
            if which not in targets:
                continue
            if name in options:
                kwargs[name] = options[name]
            elif reg is not None and name in REGULARIZATION_PARAMS and (named is None or name in named):
                kwargs[name] = getattr(reg, name)
        return kwargs

    def sets_keep_prob(self, named: "frozenset[str] | None") -> bool:
        """Whether a trial whose merged settings name ``named`` sets ``keep_prob`` (``None``:
        whether the study sets it anywhere)."""
        return self.keep_prob_set if named is None else "keep_prob" in named

    def build_model(self, reg: "Regularization", options: Mapping[str, Any], data: Any = None,
                    named: "frozenset[str] | None" = None) -> Any:
        """The user's module (hpsearch's subclass of it) for one trial's settings; ``keep_prob``
        and routed regularization settings act only when the trial sets them (``named``)."""
        from hpsearch.lightning_task.module import set_keep_prob, tuned_class

        kwargs = self.init_kwargs("model", reg, options, named)
        model = tuned_class(self.model_cls)(**kwargs)
        model.hpsearch_setup(reg, named)
        if self.sets_keep_prob(named):
            set_keep_prob(model, reg.keep_prob)
        return model

    def datamodule(self, options: Mapping[str, Any], reg: "Regularization | None" = None,
                   named: "frozenset[str] | None" = None) -> Any:
        """The user's DataModule for one trial's settings (routed regularization settings such
        as ``input_norm`` included when the trial sets them)."""
        return self.data_cls(**self.init_kwargs("data", reg, options, named))

    def load_data(self, seed: int) -> DataSplits:
        """The three splits as :class:`LoaderSplit` handles (nothing is read here; the
        DataModule splits its data itself, seeded with the study seed, whatever ``seed``)."""
        return self.pick_data(DataSplits((), (), ()), {})  # type: ignore[arg-type]

    def pick_data(self, data: DataSplits, options: Mapping[str, Any]) -> DataSplits:
        """The splits a trial with ``options`` reads (its DataModule init arguments)."""
        opts = dict(options)
        splits: Any = {s: LoaderSplit(s, self, opts) for s in ("train", "val", "test")}
        return DataSplits(**splits, info={"lightning": True})

    def model_file_info(self) -> dict[str, Any]:
        """What a model file keeps to rebuild the module (see :func:`setup_from_model_file`)."""
        return {"task_block": self.block.plain(), "task_routes": {k: list(v) for k, v in self.routes.items()},
                "keep_prob_set": self.keep_prob_set}

    # -- training (see hpsearch.lightning_task.fit) ---------------------------------------
    def fit(self, *args: Any, **kwargs: Any) -> Any:
        from hpsearch.lightning_task.fit import fit_module

        return fit_module(self, *args, **kwargs)

    def evaluate(self, model: Any, split: LoaderSplit) -> dict[str, float]:
        from hpsearch.lightning_task.fit import evaluate_split

        return evaluate_split(self, model, split)

    def examples(self, split: LoaderSplit) -> int | None:
        from hpsearch.lightning_task.fit import split_examples

        return split_examples(self, split)


def _check_init(where: str, cls: type, kwargs: Mapping[str, Any], routed: set[str]) -> None:
    """``cls(**init_args, **routed)`` binds: no unknown argument, no missing required one."""
    named, var_kw = _init_params(cls)
    label = f"{cls.__module__}.{cls.__qualname__}"
    for name in kwargs:
        if name not in named and not var_kw:
            raise ConfigError(f"{where}.init_args: {label} takes no init argument {name!r}; it takes: {', '.join(named) or 'none'}")
    for name, p in named.items():
        if p.default is inspect.Parameter.empty and name not in kwargs and name not in routed:
            raise ConfigError(f"{where}: {label} needs init argument {name!r}: give it in init_args, search or fixed")


def _where(config: "StudyConfig", name: str) -> str:
    if name in config.search:
        return f"search.{name}"
    if name in config.fixed:
        return f"fixed.{name}"
    if any(name in b for b in config.baselines.values()):
        return f"baselines ({name})"
    return f"question ({name})"


def lightning_task(config: "StudyConfig", path: str, stored: bool = False) -> Task:
    """The :class:`Task` of ``config.task`` (a :class:`LightningTaskConfig`), checked; every
    problem is one :class:`ConfigError` line starting with ``path``. ``stored``: the study
    comes from a database or model file (imports are restricted, see
    :mod:`hpsearch.lightning_task.imports`)."""
    import lightning.pytorch as pl

    from hpsearch.lightning_task.imports import import_class

    block = config.task
    assert isinstance(block, LightningTaskConfig)
    model_cls = import_class(block.model, pl.LightningModule, f"{path}: task.model", stored)
    data_cls = import_class(block.data, pl.LightningDataModule, f"{path}: task.data", stored)
    values = _set_values(config)
    model_named, model_kw = _init_params(model_cls)
    data_named, _ = _init_params(data_cls)
    routes: dict[str, tuple[str, ...]] = {}
    for name in values:
        if name in ROLE_PARAMS:
            continue
        targets = tuple(t for t, named in (("model", model_named), ("data", data_named)) if name in named)
        if not targets:
            raise ConfigError(
                f"{path}: {_where(config, name)}: no init argument of {block.model.class_path} or {block.data.class_path} "
                f"takes {name!r} (hpsearch applies only {', '.join(ROLE_PARAMS)} itself)")
        routes[name] = targets
    _check_init(f"{path}: task.model", model_cls, block.model.init_args, {n for n, t in routes.items() if "model" in t})
    _check_init(f"{path}: task.data", data_cls, block.data.init_args, {n for n, t in routes.items() if "data" in t})
    del model_kw
    from hpsearch.study.config import Range

    params: dict[str, ParamSpec] = dict(REGULARIZATION_PARAMS)
    for name in routes:
        if name not in REGULARIZATION_PARAMS:
            params[name] = _user_spec(name, values[name], isinstance(config.search.get(name), Range))
    setup = LightningSetup(block, path, model_cls, data_cls, routes, keep_prob_set="keep_prob" in values,
                           seed=config.seed)
    return Task(
        name=block.name,
        description=f"your LightningModule {block.model.class_path} on {block.data.class_path}",
        metric=block.metric,
        direction=block.direction,
        metrics=(block.metric,),
        params=params,
        defaults={},
        load_data=setup.load_data,
        build_model=setup.build_model,
        pick_data=setup.pick_data,
        lightning=setup,
    )


def _first(space: Any) -> Any:
    from hpsearch.study.config import Range

    return space.low if isinstance(space, Range) else space[0]


def check_can_act(config: "StudyConfig", task: Task, path: str) -> None:
    """Build the model and the DataModule once (first searched values; a failing ``__init__``
    is one line) and refuse a setting that cannot act on the model: an ``l2_scope`` that covers
    no parameter, ``keep_prob`` without a dropout layer."""
    from hpsearch.lightning_task.module import dropout_layers
    from hpsearch.regularization import scoped_parameters
    from hpsearch.study.space import settings_for

    setup: LightningSetup = task.lightning
    label = block_label = setup.block.model.class_path
    params = {n: _first(s) for n, s in config.search.items()}
    try:
        settings = settings_for(params, config, task)
        model = setup.model_cls(**setup.init_kwargs("model", settings.reg, settings.options, settings.named))
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{path}: task.model: building {block_label} failed: {describe_exception(exc)}") from None
    try:
        setup.datamodule(settings.options, settings.reg, settings.named)
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{path}: task.data: building {setup.block.data.class_path} failed: "
                          f"{describe_exception(exc)}") from None
    values = _set_values(config)
    decays = any(isinstance(v, (int, float)) and v > 0 for v in values.get("weight_decay", []))
    if decays:
        scopes = values.get("l2_scope") or ["all"]
        for scope in dict.fromkeys(scopes):
            if isinstance(scope, str) and scope in ("all", "weights", "fc") and not scoped_parameters(model, scope):
                what = {"fc": "no nn.Linear layer", "weights": "no weight matrix or kernel outside normalization layers",
                        "all": "no trainable parameter"}[scope]
                raise ConfigError(f"{path}: {_where(config, 'l2_scope') if 'l2_scope' in values else 'l2_scope'}: "
                                  f"l2_scope {scope!r} cannot act on {label}: it has {what}")
    if "keep_prob" in values and not dropout_layers(model):
        raise ConfigError(f"{path}: {_where(config, 'keep_prob')}: keep_prob cannot act on {label}: it has no dropout "
                          "layer (nn.Dropout, Dropout1d/2d/3d, AlphaDropout)")


def setup_from_model_file(info: Mapping[str, Any], where: str) -> LightningSetup:
    """The :class:`LightningSetup` a model file describes (``task_block``, ``task_routes``,
    ``keep_prob_set``); its classes import only from source under the current directory."""
    import lightning.pytorch as pl
    from pydantic import ValidationError

    from hpsearch.lightning_task.imports import import_class

    try:
        block = LightningTaskConfig.model_validate(info["task_block"])
        routes = {str(k): tuple(str(t) for t in v) for k, v in dict(info.get("task_routes", {})).items()}
    except (ValidationError, TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{where}: not a model file of a Lightning task: {describe_exception(exc)}") from None
    model_cls = import_class(block.model, pl.LightningModule, f"{where}: task.model", stored=True)
    data_cls = import_class(block.data, pl.LightningDataModule, f"{where}: task.data", stored=True)
    return LightningSetup(block, where, model_cls, data_cls, routes, bool(info.get("keep_prob_set")),
                          seed=int(info.get("data_seed", 0)))
