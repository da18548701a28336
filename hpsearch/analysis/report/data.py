"""Data extraction for the report: one pass over the study's trials into plain records."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hpsearch.store.queries import is_feasible
from hpsearch.study.meta import CURVE_ATTR, StudyMeta, best_or_none, objective_names, pareto_front, primary_value, stored_study_file


@dataclass(frozen=True)
class ParamInfo:
    """A searched parameter: its name, whether it is categorical, log-scaled, and its choices."""

    name: str
    categorical: bool
    log: bool = False
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class TrialRecord:
    """What the report needs of one finished trial."""

    number: int
    state: str  # "complete" or "pruned"
    value: float | None  # the objective value (complete) or the last reported metric (pruned)
    params: dict[str, Any]
    gap: float | None  # user attr ``train_val_gap``
    steps: tuple[int, ...]
    intermediate: tuple[float, ...]
    shrinkage: float | None = None  # user attr ``decay_shrinkage``: lr·λ·steps of decoupled decay
    baseline: str | None = None  # user attr ``baseline``: the name of the baseline it ran
    values: tuple[float, ...] = ()  # every objective's value (complete trials)
    feasible: bool = True  # its stored constraint values are all satisfied


@dataclass
class StudyData:
    """A study reduced to what the report shows."""

    name: str
    metric: str
    direction: str
    task: str | None
    study_file: str | None
    counts: Counter
    params: list[ParamInfo]
    trials: list[TrialRecord]  # complete and pruned, in trial-number order
    best: FrozenTrial | None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    objectives: list[tuple[str, str]] = field(default_factory=list)  # (name, direction) of each objective
    front: list[int] = field(default_factory=list)  # trial numbers of the Pareto front (several objectives)

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def baselines(self) -> list[TrialRecord]:
        """The complete trials that ran a baseline."""
        return [t for t in self.complete if t.baseline and t.value is not None]

    @property
    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "complete"]

    def scored(self) -> tuple[list[int], list[float]]:
        """Numbers and values of the complete trials that have a value."""
        pairs = [(t.number, t.value) for t in self.complete if t.value is not None]
        return [n for n, _ in pairs], [v for _, v in pairs]

    @property
    def meta(self) -> StudyMeta:
        return StudyMeta(self.name, self.metric, self.direction)



def _param_info(name: str, dist: optuna.distributions.BaseDistribution) -> ParamInfo:
    if isinstance(dist, CategoricalDistribution):
        return ParamInfo(name, True, choices=tuple(dist.choices))
    log = isinstance(dist, (FloatDistribution, IntDistribution)) and bool(dist.log)
    return ParamInfo(name, False, log=log)


def _record(t: FrozenTrial, metric: str) -> TrialRecord:
    steps = tuple(sorted(t.intermediate_values))
    values = tuple(float(t.intermediate_values[s]) for s in steps)
    curve = t.user_attrs.get(CURVE_ATTR)
    if not steps and isinstance(curve, list):  # several objectives: no reports, the kept curve
        steps, values = tuple(range(len(curve))), tuple(float(v) for v in curve)
    if t.state == TrialState.COMPLETE:
        value: float | None = primary_value(t)
    else:
        last = t.user_attrs.get(metric)
        value = float(last) if isinstance(last, (int, float)) else (values[-1] if values else None)
    gap = t.user_attrs.get("train_val_gap")
    shrinkage = t.user_attrs.get("decay_shrinkage")
    return TrialRecord(
        number=t.number,
        state=t.state.name.lower(),
        value=value,
        params=dict(t.params),
        gap=float(gap) if isinstance(gap, (int, float)) else None,
        steps=steps,
        intermediate=values,
        shrinkage=float(shrinkage) if isinstance(shrinkage, (int, float)) else None,
        baseline=t.user_attrs.get("baseline"),
        values=tuple(t.values or ()) if t.state == TrialState.COMPLETE else (),
        feasible=is_feasible(t),
    )


def extract(study: optuna.Study) -> StudyData:
    """Read every trial of ``study`` once and keep what the report needs."""
    all_trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    meta = StudyMeta.of(study)
    metric = meta.metric
    counts = Counter(t.state.name.lower() for t in all_trials)
    dists: dict[str, optuna.distributions.BaseDistribution] = {}
    records = []
    for t in all_trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        for name, dist in t.distributions.items():
            dists.setdefault(name, dist)
        records.append(_record(t, metric))
    complete = [t for t in all_trials if t.state == TrialState.COMPLETE and t.values is not None]
    best = best_or_none(study) if len(study.directions) > 1 else (meta.best(complete, key=primary_value) if complete else None)
    return StudyData(
        name=study.study_name,
        metric=metric,
        direction=meta.direction,
        task=attrs.get("task"),
        study_file=stored_study_file(study),
        counts=counts,
        params=[_param_info(n, d) for n, d in sorted(dists.items())],
        trials=records,
        best=best,
        user_attrs=dict(attrs),
        objectives=list(zip(objective_names(study), (d.name.lower() for d in study.directions))),
        front=[t.number for t in pareto_front(study)] if len(study.directions) > 1 else [],
    )


def best_so_far(values: list[float], meta: StudyMeta) -> list[float]:
    """Running best of ``values`` in order."""
    out: list[float] = []
    for v in values:
        out.append(v if not out else meta.best((out[-1], v)))
    return out
