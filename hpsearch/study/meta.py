"""What hpsearch reads off a study: its metric, its direction, and the names derived from them.

A search metric is a validation metric ``val_<name>``: the same quantity on the training split
is ``train_<name>`` (stored with every trial, for the train–validation gap), on the held-out
test split ``test_<name>`` (what ``hpsearch verify`` scores).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpsearch.study.config import StudyConfig

#: The study user attr holding the metric a study optimizes.
METRIC_ATTR = "metric"
#: Study system attrs holding the study file's text and the path it was read from (system attrs,
#: so that ``optuna studies`` and the dashboard's user-attr tables stay narrow).
STUDY_FILE_ATTR = "hpsearch:study_file"
STUDY_FILE_PATH_ATTR = "hpsearch:study_file_path"
#: Study system attr: the effective ``seed`` and ``max_epochs`` the search ran with (after CLI
#: overrides such as ``--seed 7 --max-epochs 2``), which the stored file text does not show.
EFFECTIVE_ATTR = "hpsearch:effective"
#: Where hpsearch 0.1 kept the study file: a study user attr (still read).
LEGACY_STUDY_FILE_ATTR = "study_file"
#: The validation metric after every epoch (a list): kept by retrains, and by the trials of a
#: study with several objectives, which Optuna lets report nothing.
CURVE_ATTR = "val_curve"
#: Study user attr: the fingerprint of the definition the study was created (or last allowed)
#: with (see :mod:`hpsearch.study.identity`).
FINGERPRINT_ATTR = "hpsearch_fingerprint"
#: Study user attr of a question's own study: the design and the cell -> study map (see :mod:`hpsearch.question`).
QUESTION_ATTR = "hpsearch_question"
#: Study user attr of a question's own study: its answer (``hpsearch answer --json``).
ANSWER_ATTR = "hpsearch_answer"


def metric_key(metric: str) -> str:
    """The short name a model's ``evaluate`` reports: ``val_acc`` -> ``acc``."""
    return metric.removeprefix("val_")


def train_metric(metric: str) -> str:
    """``val_acc`` -> ``train_acc``."""
    return "train_" + metric_key(metric)


def test_metric(metric: str) -> str:
    """``val_acc`` -> ``test_acc``."""
    return "test_" + metric_key(metric)


@dataclass(frozen=True)
class StudyMeta:
    """A study's name, metric and direction (``maximize`` or ``minimize``)."""

    name: str
    metric: str
    direction: str

    @classmethod
    def of(cls, study: "optuna.Study", default_metric: str = "value") -> "StudyMeta":
        """Read off an Optuna study (the metric is the study user attr ``metric``)."""
        metric = str(study.user_attrs.get(METRIC_ATTR, default_metric))
        return cls(study.study_name, metric, study.directions[0].name.lower())

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def train_metric(self) -> str:
        return train_metric(self.metric)

    @property
    def test_metric(self) -> str:
        return test_metric(self.metric)

    def gap(self, train_value: float, val_value: float) -> float:
        """Train–validation gap, signed so that positive means overfitting: train − val when
        maximizing, val − train when minimizing."""
        return train_value - val_value if self.maximize else val_value - train_value

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b``."""
        return a > b if self.maximize else a < b

    def best(self, values: Iterable[Any], key: Any = None) -> Any:
        """The best of ``values`` (``max`` when maximizing, else ``min``), by ``key``."""
        pick = max if self.maximize else min
        return pick(values, key=key) if key is not None else pick(values)

    def sort_key(self, value: float) -> float:
        """A key that sorts values best first."""
        return -value if self.maximize else value


def finished_trials(study: "optuna.Study") -> int:
    """Complete plus pruned trials of ``study``, counted by the database."""
    from hpsearch.store.queries import finished_trials as count

    return count(study)


def primary_value(trial: "FrozenTrial") -> float | None:
    """A trial's value, or its first objective's value in a multi-objective study."""
    return None if trial.values is None else trial.values[0]


def dominates(a: list[float], b: list[float], signs: list[float]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one."""
    return all(s * x >= s * y for x, y, s in zip(a, b, signs)) and any(s * x > s * y for x, y, s in zip(a, b, signs))


def pareto_front(study: "optuna.Study") -> "list[FrozenTrial]":
    """The Pareto front: the feasible COMPLETE trials that no other feasible complete trial
    dominates (trials whose stored constraints are violated are left out before comparing),
    best first by the first objective."""
    from optuna.trial import TrialState

    from hpsearch.store.queries import is_feasible

    signs = [1.0 if d.name == "MAXIMIZE" else -1.0 for d in study.directions]
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values and is_feasible(t)]
    front = [t for t in trials if not any(dominates(o.values, t.values, signs) for o in trials if o is not t)]
    return sorted(front, key=lambda t: (-signs[0] * t.values[0], t.number))


class RunningBest:
    """:func:`best_or_none` for a progress line that updates after every trial, without loading
    every complete trial each time: with several objectives (where the best is a Pareto front's
    trial and needs every trial) the front is read in full at most once per ``refresh_seconds``
    (other workers' trials show up then) and, in between, the trial this process just finished
    replaces the best when it is better in the first objective (ties: when it dominates the
    best), which is the front's first trial by :func:`pareto_front`'s order. One objective: one
    query, Optuna's best, every time."""

    def __init__(self, refresh_seconds: float = 30.0) -> None:
        self.refresh_seconds = refresh_seconds
        self.best: "FrozenTrial | None" = None
        self._read_at: float | None = None

    def update(self, study: "optuna.Study", trial: "FrozenTrial") -> "FrozenTrial | None":
        """The best after ``trial`` finished."""
        import time

        if len(study.directions) == 1:
            return best_or_none(study)
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self.refresh_seconds:
            self.best, self._read_at = best_or_none(study), now
        elif self._better(study, trial):
            self.best = trial
        return self.best

    def _better(self, study: "optuna.Study", trial: "FrozenTrial") -> bool:
        from optuna.trial import TrialState

        from hpsearch.store.queries import is_feasible

        if trial.state != TrialState.COMPLETE or not trial.values or not is_feasible(trial):
            return False
        if self.best is None:
            return True
        signs = [1.0 if d.name == "MAXIMIZE" else -1.0 for d in study.directions]
        new, old = signs[0] * trial.values[0], signs[0] * self.best.values[0]
        return new > old or (new == old and dominates(trial.values, self.best.values, signs))


def best_or_none(study: "optuna.Study") -> "FrozenTrial | None":
    """The study's best feasible trial, or ``None`` before the first one; with several
    objectives, the trial of the Pareto front best in the first objective."""
    if len(study.directions) > 1:
        front = pareto_front(study)
        return front[0] if front else None
    from hpsearch.store.queries import is_feasible

    try:
        best = study.best_trial
    except ValueError:
        return None
    if is_feasible(best):
        return best
    front = pareto_front(study)  # one objective: the best feasible trial (ties: the first)
    return front[0] if front else None


def stored_study_file(study: "optuna.Study") -> str | None:
    """The text of the study file a study was run from (``None`` if not made by hpsearch):
    the system attr, or the ``study_file`` user attr of databases written by hpsearch 0.1."""
    from hpsearch.store.queries import study_system_attrs

    text = study_system_attrs(study).get(STUDY_FILE_ATTR) or study.user_attrs.get(LEGACY_STUDY_FILE_ATTR)
    return str(text) if text else None


def stored_effective(study: "optuna.Study") -> dict[str, Any]:
    """The effective ``seed``/``max_epochs`` the study was searched with: the system attr, else
    (studies made before it was stored) the same keys of the stored fingerprint, else ``{}``."""
    from hpsearch.store.queries import study_system_attrs
    from hpsearch.study.config import EFFECTIVE_KEYS

    stored = study_system_attrs(study).get(EFFECTIVE_ATTR)
    if not isinstance(stored, dict):
        stored = study.user_attrs.get(FINGERPRINT_ATTR) or {}
    return {k: stored[k] for k in EFFECTIVE_KEYS if k in stored}


def stored_config(study: "optuna.Study", where: str) -> "StudyConfig | None":
    """The study file stored with ``study``, parsed with the effective settings it was searched
    with (``None`` when the study has no stored file)."""
    from hpsearch.study.config import parse_study

    text = stored_study_file(study)
    return parse_study(text, where, stored_effective(study)) if text else None


def record_study_file(study: "optuna.Study", text: str, path: str, effective: dict[str, Any] | None = None) -> None:
    """Store the study file's text and path, and the ``effective`` settings it runs with
    (:func:`hpsearch.study.config.effective_settings`), with the study (only what changed)."""
    from hpsearch.store.queries import set_study_system_attr, study_system_attrs

    attrs = study_system_attrs(study)
    items: list[tuple[str, Any]] = [(STUDY_FILE_ATTR, text), (STUDY_FILE_PATH_ATTR, path)]
    if effective is not None:
        items.append((EFFECTIVE_ATTR, dict(effective)))
    for key, value in items:
        if attrs.get(key) != value:
            set_study_system_attr(study, key, value)


def record_metric_names(study: "optuna.Study", metrics: str | list[str]) -> None:
    """Name the study's objectives (``val_acc``...) so optuna-dashboard and ``optuna`` show
    them instead of "Objective 0"."""
    import warnings

    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if study.metric_names != names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is experimental in Optuna
            study.set_metric_names(names)


def study_rows(storage: "optuna.storages.BaseStorage") -> list[dict[str, Any]]:
    """One dict per study (``hpsearch studies``): name, direction, metric, counts per state,
    best feasible value, question state."""
    from hpsearch.store.queries import state_counts

    studies = storage.get_all_studies()
    counts = state_counts(storage, [s._study_id for s in studies])
    rows = []
    for s in studies:
        c = counts[s._study_id]
        single = len(s.directions) == 1
        best = _best_feasible_value(storage, s) if c["complete"] and single else None
        rows.append(
            {
                "study": s.study_name,
                "direction": s.direction.name.lower() if single else "multi",
                "metric": s.user_attrs.get("metric"),
                "complete": c["complete"],
                "pruned": c["pruned"],
                "fail": c["fail"],
                "running": c["running"],
                "waiting": c["waiting"],
                "best": best,
                "question": _question_state(s.user_attrs),
            }
        )
    return rows


def _best_feasible_value(storage: "optuna.storages.BaseStorage", summary: Any) -> float | None:
    """The best value among the study's feasible complete trials (Optuna's own best ignores
    constraints); ``None`` when no complete trial is feasible."""
    import optuna

    from hpsearch.store.queries import is_feasible

    best = storage.get_best_trial(summary._study_id)
    if is_feasible(best):
        return best.value
    feasible = best_or_none(optuna.Study(summary.study_name, storage))
    return None if feasible is None else feasible.value


def _question_state(user_attrs: dict[str, Any]) -> str | None:
    """``answered`` / ``question`` for a question's study (see :mod:`hpsearch.question`),
    ``None`` for any other."""
    if ANSWER_ATTR in user_attrs:
        return "answered"
    return "question" if QUESTION_ATTR in user_attrs else None


def objective_names(study: "optuna.Study") -> list[str]:
    """The names of the study's objectives (``metric_names``, else ``value``/``value_i``)."""
    names = study.metric_names
    if names and len(names) == len(study.directions):
        return list(names)
    return ["value"] if len(study.directions) == 1 else [f"value_{i}" for i in range(len(study.directions))]


@dataclass(frozen=True)
class BestResult:
    """The best trial of a study, as ``hpsearch best --format json`` prints it."""

    study: str
    metric: str
    direction: str
    value: float
    params: dict[str, Any]
    trial: int
    # Every objective's value by name (a multi-objective study), the baseline a trial ran,
    # and whether it is feasible and on the Pareto front; empty/None for plain studies.
    values: dict[str, float] | None = None
    baseline: str | None = None
    feasible: bool = True
    on_front: bool = True

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("values", "baseline"):  # absent for a plain study, as in hpsearch 0.1
            if out[key] is None:
                del out[key]
        if self.feasible:
            del out["feasible"]
        if self.values is None:
            del out["on_front"]
        return out
