"""Multi-seed verification: retrain the top-K configurations of a study with fresh seeds and
score them on the held-out test split, which the search never sees.

Results live in the same database as a linked study ``NAME:verify``: one trial per
(configuration, seed), carrying the configuration as its params and the seed, source trial and
rank as user attrs, its value the test metric. Re-running skips pairs already complete there.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import ConfigError, StudyNotFoundError

log = logging.getLogger(__name__)

VERIFY_SUFFIX = ":verify"
# Verification seeds start far above the search's per-trial seeds (study seed + trial number).
SEED_OFFSET = 1_000_000
CONFIDENCE = 0.95


def verify_study_name(study_name: str) -> str:
    """The name of the linked study that holds the verification runs of ``study_name``."""
    return study_name + VERIFY_SUFFIX


def config_key(params: dict[str, Any]) -> str:
    """A stable text key of a configuration (its searched params)."""
    return json.dumps(params, sort_keys=True, default=str)


def verify_seeds(study_seed: int, n: int) -> list[int]:
    """The ``n`` fresh seeds used for every configuration (the same seeds for each, so runs
    pair up by seed)."""
    return [study_seed + SEED_OFFSET + i for i in range(n)]


@dataclass(frozen=True)
class ConfigStats:
    """Test-split results of one configuration over its seeds."""

    rank: int
    source_trial: int
    search_value: float
    params: dict[str, Any]
    seeds: list[int]
    values: list[float]
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class PairedTest:
    """Best (rank 1) vs runner-up (rank 2) over the seeds both have: paired t-test."""

    seeds: int
    mean_difference: float | None  # best − runner-up, in the metric's units
    t_statistic: float | None
    p_value: float | None
    best_beats_runner_up: bool
    verdict: str


@dataclass
class VerifyResult:
    """What ``hpsearch verify`` reports (``--json`` prints :meth:`as_dict`)."""

    study: str
    verify_study: str
    metric: str
    direction: str
    confidence: float
    configs: list[ConfigStats] = field(default_factory=list)
    paired: PairedTest | None = None
    ran: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: list[float], confidence: float = CONFIDENCE) -> tuple[float | None, float | None, float | None, float | None]:
    """Mean, sample std (ddof=1), and the two-sided t-distribution confidence interval."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return None, None, None, None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None, None, None
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def paired_test(best: ConfigStats, runner_up: ConfigStats, maximize: bool, alpha: float = 1 - CONFIDENCE) -> PairedTest:
    """Paired t-test (``scipy.stats.ttest_rel``) of best vs runner-up over their common seeds."""
    from scipy import stats

    a = dict(zip(best.seeds, best.values))
    b = dict(zip(runner_up.seeds, runner_up.values))
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return PairedTest(len(common), None, None, None, False, "too few common seeds for a paired test")
    xa = [a[s] for s in common]
    xb = [b[s] for s in common]
    diff = math.fsum(x - y for x, y in zip(xa, xb)) / len(common)
    if all(x == y for x, y in zip(xa, xb)):
        return PairedTest(len(common), 0.0, None, None, False, "identical results on every seed")
    res = stats.ttest_rel(xa, xb)
    t, p = float(res.statistic), float(res.pvalue)
    better = diff > 0 if maximize else diff < 0
    beats = better and p < alpha
    if beats:
        verdict = f"the best beats the runner-up (paired t-test p = {p:.3g} < {alpha:g})"
    elif better:
        verdict = f"the best is ahead but not significantly (p = {p:.3g})"
    else:
        verdict = f"the runner-up does as well or better on the test split (p = {p:.3g})"
    return PairedTest(len(common), diff, t, p, beats, verdict)


def top_configs(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The best ``k`` complete trials with distinct configurations, best first."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = sorted(trials, key=lambda t: (-t.value if maximize else t.value, t.number))
    picked: list[FrozenTrial] = []
    seen: set[str] = set()
    for t in trials:
        key = config_key(t.params)
        if key not in seen:
            seen.add(key)
            picked.append(t)
        if len(picked) == k:
            break
    return picked


def verify_metric_name(search_metric: str) -> str:
    """``val_acc`` -> ``test_acc``."""
    return "test_" + search_metric.removeprefix("val_")


def _open_verify_study(storage: Any, source: optuna.Study) -> optuna.Study:
    name = verify_study_name(source.study_name)
    study = optuna.create_study(storage=storage, study_name=name, direction=source.direction, load_if_exists=True)
    metric = verify_metric_name(str(source.user_attrs.get("metric", "value")))
    for key, value in {"source_study": source.study_name, "metric": metric, "split": "test"}.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def _done_pairs(vstudy: optuna.Study) -> set[tuple[str, int]]:
    return {
        (str(t.user_attrs.get("config")), int(t.user_attrs["seed"]))
        for t in vstudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "seed" in t.user_attrs
    }


def _stats(vstudy: optuna.Study, configs: list[FrozenTrial], seeds: list[int]) -> list[ConfigStats]:
    by_pair: dict[tuple[str, int], float] = {}
    for t in vstudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "seed" in t.user_attrs and t.value is not None:
            by_pair[(str(t.user_attrs.get("config")), int(t.user_attrs["seed"]))] = float(t.value)
    out = []
    for rank, trial in enumerate(configs, start=1):
        key = config_key(trial.params)
        got = [(s, by_pair[(key, s)]) for s in seeds if (key, s) in by_pair]
        values = [v for _, v in got]
        mean, std, lo, hi = summarize(values)
        out.append(ConfigStats(rank, trial.number, float(trial.value), dict(trial.params), [s for s, _ in got], values, len(values), mean, std, lo, hi))
    return out


@dataclass(frozen=True)
class VerifyProgress:
    """One finished verification run, for progress display."""

    done: int
    total: int
    rank: int
    seed: int
    value: float | None
    error: str | None
    seconds: float


def run_verify(
    study_name: str,
    storage_url: str,
    top: int,
    seeds: int,
    on_progress: Callable[[VerifyProgress], None] | None = None,
) -> VerifyResult:
    """Retrain the top-``top`` configurations of ``study_name`` with ``seeds`` fresh seeds each,
    for the study's full ``max_epochs`` without pruning, and score each on the test split.

    (configuration, seed) pairs already complete in ``NAME:verify`` are not run again.
    """
    from hpsearch.api import load_study
    from hpsearch.config import parse_study
    from hpsearch.runner import prepare
    from hpsearch.config import StudyFile
    from hpsearch.space import settings_for
    from hpsearch.storage import open_storage
    from hpsearch.training import describe_exception, evaluate, fit

    if top < 1 or seeds < 1:
        raise ConfigError(f"--top and --seeds must be >= 1, got --top {top} --seeds {seeds}")
    if study_name.endswith(VERIFY_SUFFIX):
        raise ConfigError(f"{study_name!r} is a verification study; verify its source study instead")
    source = load_study(study_name, storage_url)
    text = source.user_attrs.get("study_file")
    if not text:
        raise StudyNotFoundError(f"study {study_name!r} has no stored study file (user attr 'study_file'); was it made by hpsearch optimize?")
    config = parse_study(text, f"{study_name} (stored study file)")
    task, metric, direction = prepare(StudyFile(path=f"{study_name} (stored study file)", text=text, config=config))
    configs = top_configs(source, top)
    if not configs:
        raise StudyNotFoundError(f"study {study_name!r} has no completed trial to verify")
    seed_list = verify_seeds(config.seed, seeds)
    vstudy = _open_verify_study(open_storage(storage_url), source)
    vmetric = verify_metric_name(metric)
    test_key = metric.removeprefix("val_")
    done = _done_pairs(vstudy)
    todo = [(rank, t, s) for rank, t in enumerate(configs, 1) for s in seed_list if (config_key(t.params), s) not in done]
    result = VerifyResult(study_name, vstudy.study_name, vmetric, direction, CONFIDENCE)
    result.skipped = len(configs) * len(seed_list) - len(todo)
    data = task.load_data(config.seed) if todo else None
    for i, (rank, trial, seed) in enumerate(todo, start=1):
        # The enqueued trial fixes the params to the configuration; ask() pops it.
        attrs = {"config": config_key(trial.params), "seed": seed, "rank": rank, "source_trial": trial.number, "split": "test"}
        vstudy.enqueue_trial(dict(trial.params), user_attrs=attrs, skip_if_exists=False)
        vtrial = vstudy.ask(fixed_distributions=dict(trial.distributions))
        if vtrial.params != trial.params:  # another process popped our enqueued trial first
            for key, value in attrs.items():
                vtrial.set_user_attr(key, value)
            vstudy.tell(vtrial, state=TrialState.FAIL)
            raise RuntimeError(f"{vstudy.study_name}: another process is adding trials; run verify from one process at a time")
        try:
            fitted = fit(task, settings_for(trial.params, config, task), data, max_epochs=config.max_epochs, seed=seed)
        except BaseException:  # Ctrl-C: leave no RUNNING trial behind; a re-run redoes this pair
            vtrial.set_user_attr("fail_reason", "interrupted")
            vstudy.tell(vtrial, state=TrialState.FAIL)
            raise
        value: float | None = None
        error = None
        if fitted.error is not None:
            error = describe_exception(fitted.error)
        else:
            value = evaluate(fitted.model, data.test).get(test_key)
            if value is None or not math.isfinite(value):
                error = f"the model reported no finite {test_key!r} on the test split"
        if error is None:
            vtrial.set_user_attr("epochs", fitted.epochs)
            vtrial.set_user_attr("wall_seconds", round(fitted.seconds, 3))
            vstudy.tell(vtrial, value)
        else:
            vtrial.set_user_attr("fail_reason", error)
            vstudy.tell(vtrial, state=TrialState.FAIL)
        result.ran += 1
        if on_progress is not None:
            on_progress(VerifyProgress(i, len(todo), rank, seed, value, error, fitted.seconds))
    result.configs = _stats(vstudy, configs, seed_list)
    if len(result.configs) >= 2:
        result.paired = paired_test(result.configs[0], result.configs[1], direction == "maximize")
    return result


def load_verification(study_name: str, storage: Any) -> list[dict[str, Any]] | None:
    """Stored verification results of ``study_name`` grouped by configuration (for the report),
    or ``None`` when ``verify`` has not been run."""
    vname = verify_study_name(study_name)
    if vname not in optuna.get_all_study_names(storage):
        return None
    vstudy = optuna.load_study(study_name=vname, storage=storage)
    groups: dict[str, dict[str, Any]] = {}
    for t in vstudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = str(t.user_attrs.get("config"))
        g = groups.setdefault(key, {"rank": t.user_attrs.get("rank"), "source_trial": t.user_attrs.get("source_trial"), "params": dict(t.params), "seeds": [], "values": []})
        g["seeds"].append(t.user_attrs.get("seed"))
        g["values"].append(float(t.value))
    rows = []
    for g in sorted(groups.values(), key=lambda g: (g["rank"] is None, g["rank"])):
        mean, std, lo, hi = summarize(g["values"])
        rows.append({**g, "n": len(g["values"]), "mean": mean, "std": std, "ci_low": lo, "ci_high": hi})
    return rows
