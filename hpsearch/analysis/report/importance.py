"""Parameter importances with Optuna's fANOVA and PED-ANOVA evaluators."""

from __future__ import annotations

import logging
import random
import warnings
from dataclasses import dataclass, field

import optuna
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState

from hpsearch.errors import first_line

log = logging.getLogger(__name__)

EVALUATORS = ("fANOVA", "PED-ANOVA")
# fANOVA's cost grows with the trees' size: it runs on a seeded random sample of at most this
# many complete trials, with trees of bounded depth (PED-ANOVA always uses every trial).
FANOVA_MAX_TRIALS = 1000
FANOVA_TREES = 32
FANOVA_MAX_DEPTH = 8
# Below this many complete trials the importances are flagged as unreliable (a 40-trial study
# with 32 pruned left fANOVA and PED-ANOVA two orders of magnitude apart on one parameter).
MIN_TRIALS_FOR_IMPORTANCE = 20


@dataclass
class Importances:
    """Importance per evaluator and parameter (each evaluator's values sum to 1), and why an
    evaluator gave nothing when it could not run."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    trials: int = 0
    warning: str | None = None

    @property
    def params(self) -> list[str]:
        """Parameters, most important first (by the mean over evaluators)."""
        names = {p for v in self.values.values() for p in v}
        score = {p: sum(v.get(p, 0.0) for v in self.values.values()) for p in names}
        return sorted(names, key=lambda p: (-score[p], p))


def _evaluator(name: str):  # noqa: ANN202
    if name == "fANOVA":
        return FanovaImportanceEvaluator(n_trees=FANOVA_TREES, max_depth=FANOVA_MAX_DEPTH, seed=0)
    return PedAnovaImportanceEvaluator()


def _memory_study(direction: optuna.study.StudyDirection, trials: list) -> optuna.Study:
    memory = optuna.create_study(direction=direction)
    memory.add_trials(trials)
    return memory


def compute_importances(study: optuna.Study) -> Importances:
    """fANOVA and PED-ANOVA importances over the study's complete trials.

    The complete trials are copied into in-memory studies, so the evaluators never reload
    them from the database; fANOVA sees at most ``FANOVA_MAX_TRIALS`` of them (seeded sample).
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    result = Importances(trials=len(trials), warning=reliability_warning(len(trials)))
    if len(trials) < 2:
        for name in EVALUATORS:
            result.errors[name] = f"needs at least 2 complete trials, the study has {len(trials)}"
        return result
    if len(study.directions) > 1:  # importances for the first objective
        trials = [optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=t.values[0]) for t in trials]
    direction = study.directions[0]
    full = _memory_study(direction, trials)
    sample = full
    if len(trials) > FANOVA_MAX_TRIALS:
        sample = _memory_study(direction, random.Random(0).sample(trials, FANOVA_MAX_TRIALS))
        result.notes.append(f"fANOVA on a random sample of {FANOVA_MAX_TRIALS} of {len(trials)} complete trials")
    for name in EVALUATORS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                target = sample if name == "fANOVA" else full
                values = get_param_importances(target, evaluator=_evaluator(name))
                result.values[name] = {k: float(v) for k, v in values.items()}
        except Exception as exc:  # an evaluator that cannot run on this study: say why, go on
            log.info("importance %s failed: %s", name, exc)
            result.errors[name] = first_line(exc)
    return result


def reliability_warning(complete: int) -> str | None:
    """The warning shown with importances resting on fewer than
    ``MIN_TRIALS_FOR_IMPORTANCE`` complete trials (``None`` from that many on)."""
    if complete >= MIN_TRIALS_FOR_IMPORTANCE:
        return None
    return (
        f"warning: importances are unreliable: they rest on {complete} complete trial(s), fewer than "
        f"{MIN_TRIALS_FOR_IMPORTANCE} (pruned trials do not count); fANOVA and PED-ANOVA can disagree widely"
    )
