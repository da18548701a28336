"""The table of tunable parameters: name, type, valid values, meaning.

One place defines what each parameter accepts; the study-file validator, the search space and
the :class:`~hpsearch.regularization.Regularization` value object all check against it.
Importing this module is cheap (no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Collection, Literal, Mapping

Kind = Literal["float", "int", "choice"]
Op = Literal["in", ">", ">=", "<", "<="]


@dataclass(frozen=True)
class Condition:
    """When a parameter has an effect: ``Condition("optimizer", "in", ("sgd",))`` or
    ``Condition("weight_decay", ">", 0.0)``. A parameter whose condition is false is not
    sampled, is absent from the trial's params, and is ignored by the model."""

    param: str
    op: Op
    value: Any

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition is true for the settings ``values`` (a missing or inactive
        ``param`` makes it false)."""
        if self.param not in values:
            return False
        v = values[self.param]
        if self.op == "in":
            return any(v == c and type(v) is type(c) for c in self.value)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        return {">": v > self.value, ">=": v >= self.value, "<": v < self.value, "<=": v <= self.value}[self.op]

    def describe(self) -> str:
        if self.op == "in":
            return f"{self.param} is " + " or ".join(str(c) for c in self.value)
        return f"{self.param} {self.op} {self.value:g}"


def _brief(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ParamSpec:
    """What one parameter accepts.

    ``low``/``high`` bound numeric values; ``low_open``/``high_open`` make a bound exclusive.
    ``choices`` lists the valid values of a categorical parameter. ``active_if`` (optional)
    says when the parameter has an effect (see :class:`Condition`); a task's own parameters
    can declare it too.
    """

    kind: Kind
    help: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    active_if: Condition | None = None

    def describe(self) -> str:
        """Human-readable description of the valid values, for error messages."""
        if self.kind == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        kind = "an integer" if self.kind == "int" else "a number"
        return f"{kind} in {left}{low}, {high}{right}"

    def check(self, value: Any) -> Any:
        """Return ``value`` (ints widened to float for float params) or raise ``ValueError``."""
        if self.kind == "choice":
            if not any(value == c and type(value) is type(c) for c in self.choices):
                raise ValueError(f"got {_brief(value)}; valid: {self.describe()}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"got {_brief(value)}; valid: {self.describe()}")
        if self.kind == "int" and not isinstance(value, int):
            raise ValueError(f"got {_brief(value)}; valid: {self.describe()}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"got {_brief(value)}; valid: {self.describe()}")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise ValueError(f"got {_brief(value)}; valid: {self.describe()}")
        if self.high is not None and (
            value > self.high or (self.high_open and value == self.high)
        ):
            raise ValueError(f"got {_brief(value)}; valid: {self.describe()}")
        return float(value) if self.kind == "float" else value

    def narrowed(self, choices: tuple[Any, ...]) -> "ParamSpec":
        """The same categorical parameter restricted to a subset of its choices."""
        unknown = [c for c in choices if c not in self.choices]
        if unknown:
            raise ValueError(f"{unknown} are not valid choices")
        return replace(self, choices=tuple(choices))


L2_MODES = ("decoupled", "loss")
L2_SCOPES = ("all", "weights", "fc")
BATCHNORM_PLACEMENTS = (
    "none",
    "before_activation",
    "after_activation",
    "fc_before_concat",
    "after_concat",
)
SINGLE_INPUT_BATCHNORM = ("none", "before_activation", "after_activation")
TWO_INPUT_BATCHNORM = ("none", "fc_before_concat", "after_concat")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")
OPTIMIZERS = ("adamw", "adam", "sgd")
INPUT_NORMS = ("none", "standardize")

#: The regularization parameters and their exact meaning.
REGULARIZATION_PARAMS: dict[str, ParamSpec] = {
    "learning_rate": ParamSpec("float", "the optimizer's base learning rate", low=0.0, low_open=True),
    "weight_decay": ParamSpec("float", "strength λ of the L2 penalty / decay", low=0.0),
    "l2_mode": ParamSpec(
        "choice",
        "decoupled: the optimizer shrinks weights by lr·λ·p apart from the gradient (AdamW, Adam, SGDW); "
        "loss: λ·Σw²/2 is added to the loss (coupled L2)",
        choices=L2_MODES,
        active_if=Condition("weight_decay", ">", 0.0),
    ),
    "l2_scope": ParamSpec(
        "choice",
        "which parameters the L2 penalty/decay touches: all, weights (no biases/norms), fc (Linear layers)",
        choices=L2_SCOPES,
        active_if=Condition("weight_decay", ">", 0.0),
    ),
    "keep_prob": ParamSpec(
        "float",
        "TensorFlow-style dropout keep probability; 1.0 builds no dropout module",
        low=0.0,
        high=1.0,
        low_open=True,
    ),
    "batchnorm": ParamSpec(
        "choice", "where BatchNorm goes relative to the activation", choices=BATCHNORM_PLACEMENTS
    ),
    "activation": ParamSpec("choice", "hidden-layer nonlinearity", choices=ACTIVATIONS),
    "optimizer": ParamSpec("choice", "optimizer", choices=OPTIMIZERS),
    "momentum": ParamSpec(
        "float", "SGD momentum (only with optimizer sgd)", low=0.0, high=1.0, high_open=True,
        active_if=Condition("optimizer", "in", ("sgd",)),
    ),
    "input_norm": ParamSpec(
        "choice",
        "standardize: scale features with mean/std of the training split only",
        choices=INPUT_NORMS,
    ),
}

#: Values of the regularization parameters when a study neither searches nor fixes them.
REGULARIZATION_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "l2_mode": "decoupled",
    "l2_scope": "all",
    "keep_prob": 1.0,
    "batchnorm": "none",
    "activation": "relu",
    "optimizer": "adamw",
    "momentum": 0.9,
    "input_norm": "none",
}

#: Training settings every built-in task understands.
TRAINING_PARAMS: dict[str, ParamSpec] = {
    "batch_size": ParamSpec("int", "mini-batch size", low=1),
}


#: Study-file settings that are not trial parameters: the Optuna sampler and pruner to use.
STUDY_SETTINGS: dict[str, ParamSpec] = {
    "sampler.type": ParamSpec("choice", "the Optuna sampler", choices=("tpe", "random", "gp", "cmaes", "qmc")),
    "pruner.type": ParamSpec(
        "choice",
        "the Optuna pruner (its resource is the epoch)",
        choices=("none", "median", "percentile", "successive-halving", "hyperband"),
    ),
}


def positive_int(help_text: str) -> ParamSpec:
    """Spec of an architecture size such as a layer width (integer >= 1)."""
    return ParamSpec("int", help_text, low=1)


def acting(params: Mapping[str, Any], settled: Mapping[str, Any], specs: Mapping[str, ParamSpec],
           searched: Collection[str] = ()) -> dict[str, Any]:
    """The entries of ``params`` that act, given the other settings in force (``settled``:
    defaults, then ``fixed``; ``params`` win): those whose ``active_if`` holds, chains resolved
    (:func:`active_params`). A condition that reads a parameter in ``searched`` holds in some
    trials, so it counts as holding (for a study's settings, before any trial).

    The one rule for which parameters act: a trial's settings (``settings_for``), the distinct
    configurations ``verify`` retrains, the configurations ``answer`` retrains, and the study
    identity checks all go through it."""
    if searched:
        specs = {n: replace(s, active_if=None) if s.active_if is not None and s.active_if.param in searched else s
                 for n, s in specs.items()}
    live = active_params({**settled, **params}, specs)
    return {k: v for k, v in params.items() if k in live}


def same_model_key(params: dict[str, Any], fixed: dict[str, Any] | None = None,
                   specs: Mapping[str, ParamSpec] = REGULARIZATION_PARAMS) -> dict[str, Any]:
    """``params`` without the settings that do not change what is trained (see :func:`acting`),
    given the other settings in force (``params``, then ``fixed``, then
    :data:`REGULARIZATION_DEFAULTS`): e.g. ``l2_mode`` and ``l2_scope`` when ``weight_decay``
    is 0, ``momentum`` unless the optimizer is sgd. Two configurations with the same key train
    the same model."""
    return acting(params, {**REGULARIZATION_DEFAULTS, **(fixed or {})}, specs)


def active_params(values: Mapping[str, Any], specs: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """``values`` without the parameters whose ``active_if`` is false (conditions are checked
    on the remaining values, so a chain of conditions resolves)."""
    out = dict(values)
    changed = True
    while changed:
        changed = False
        for name in list(out):
            spec = specs.get(name)
            if spec is not None and spec.active_if is not None and not spec.active_if.holds(out):
                del out[name]
                changed = True
    return out
