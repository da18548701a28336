"""Multi-seed verification: retrain the top-K configurations of a study with fresh seeds and
score them on the held-out test split, which the search never sees.

Results live in the same database as a linked study ``NAME:verify``: one trial per
(configuration, seed), carrying the configuration as its params and the seed, source trial and
rank as user attrs, its value the test metric. Re-running skips pairs already complete there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.analysis.compare import PairedTest, compare_with_best, paired_test
from hpsearch.analysis.retrain import covers_text
from hpsearch.analysis.stats import CONFIDENCE, seeds_to_reach, summarize
from hpsearch.errors import ConfigError, StudyNotFoundError
from hpsearch.store.heartbeat import Heartbeat
from hpsearch.study.meta import METRIC_ATTR, StudyMeta, pareto_front, primary_value

log = logging.getLogger(__name__)

VERIFY_SUFFIX = ":verify"
# Verification seeds start far above the search's per-trial seeds (study seed + trial number).
SEED_OFFSET = 1_000_000

__all__ = ["ConfigStats", "PairedTest", "VerifyResult", "VerifyProgress", "run_verify", "load_verification",
           "paired_test", "summarize", "verify_study_name", "default_seeds"]


def default_seeds(top: int, confidence: float = CONFIDENCE) -> int:
    """Seeds per configuration with which even the exact tests (the fallback where the
    difference is the same on every seed) can reach α over the ``top − 1`` comparisons."""
    return max(5, seeds_to_reach(1 - confidence, max(top - 1, 1)))


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


@dataclass
class VerifyResult:
    """What ``hpsearch verify`` reports (``--json`` prints :meth:`as_dict`)."""

    study: str
    verify_study: str
    metric: str
    direction: str
    confidence: float
    configs: list[ConfigStats] = field(default_factory=list)
    paired: PairedTest | None = None  # best vs runner-up (= comparisons[0])
    comparisons: list[PairedTest] = field(default_factory=list)  # best vs rank 2, 3, ... (Holm-adjusted)
    ran: int = 0
    skipped: int = 0
    split_seed: int = 0
    covers: str = ""  # what the intervals cover, in words

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _value(trial: FrozenTrial) -> float:
    """The (first) objective value of a complete trial."""
    value = primary_value(trial)
    assert value is not None, f"trial {trial.number} has no value"
    return value


def top_configs(study: optuna.Study, k: int, acting: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> list[FrozenTrial]:
    """The best ``k`` feasible complete trials that train distinct models, best first (by the
    first objective; with several objectives, the Pareto front comes first). Configurations
    that differ only in settings without effect (``l2_scope``/``l2_mode`` at ``weight_decay``
    0, ``momentum`` without sgd: ``acting``, the study's
    :meth:`~hpsearch.study.definition.StudyDefinition.acting`; by default
    :func:`hpsearch.params.same_model_key`) count as one, represented by the best of them."""
    from hpsearch.params import same_model_key

    key_of = acting or same_model_key
    from hpsearch.store.queries import is_feasible

    meta = StudyMeta.of(study)
    front = {t.number for t in pareto_front(study)} if len(study.directions) > 1 else set()
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)]
    trials = sorted(trials, key=lambda t: (t.number not in front, meta.sort_key(_value(t)), t.number))
    picked: list[FrozenTrial] = []
    seen: set[str] = set()
    for t in trials:
        key = config_key(key_of(dict(t.params)))
        if key not in seen:
            seen.add(key)
            picked.append(t)
        if len(picked) == k:
            break
    return picked


#: ``fail_reason`` of a run a verify process queued and was killed before it took it up.
ORPHAN_REASON = "queued by a verify process that stopped before it started the run"


def _open_verify_study(url: str, source: optuna.Study, heartbeat: Heartbeat) -> optuna.Study:
    """The linked study, with heartbeats (no re-queueing: verify enqueues its own runs). A run
    of a verify process that died is failed once stale, before anything else runs; so is a run
    it queued and had not taken up yet (:func:`_ask` queues a run and takes it up at once, so a
    queued run at the start is one a killed process left)."""
    from hpsearch.run.settle import settle
    from hpsearch.store.connect import connect
    from hpsearch.store.queries import fail_waiting

    name = verify_study_name(source.study_name)
    storage = connect(url, heartbeat=heartbeat, requeue=False)
    study = optuna.create_study(storage=storage, study_name=name, direction=source.directions[0], load_if_exists=True)
    settle(study, heartbeat, run_queued=lambda n: fail_waiting(study, ORPHAN_REASON))
    wanted = {"source_study": source.study_name, METRIC_ATTR: StudyMeta.of(source).test_metric, "split": "test"}
    for key, value in wanted.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def _complete_runs(vstudy: optuna.Study) -> dict[tuple[str, int], float]:
    """Test values of the complete runs by (configuration key, seed)."""
    return {
        (str(t.user_attrs.get("config")), int(t.user_attrs["seed"])): float(t.value)
        for t in vstudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "seed" in t.user_attrs and t.value is not None
    }


def _stats(vstudy: optuna.Study, configs: list[FrozenTrial], seeds: list[int]) -> list[ConfigStats]:
    by_pair = _complete_runs(vstudy)
    out = []
    for rank, trial in enumerate(configs, start=1):
        key = config_key(trial.params)
        got = [(s, by_pair[(key, s)]) for s in seeds if (key, s) in by_pair]
        values = [v for _, v in got]
        seeds_done = [s for s, _ in got]
        out.append(ConfigStats(rank, trial.number, _value(trial), dict(trial.params), seeds_done, values, len(values), *summarize(values)))
    return out


@dataclass(frozen=True)
class _Verification:
    """The source study's definition and the linked study the runs go into."""

    definition: Any  # hpsearch.study.definition.StudyDefinition
    vstudy: optuna.Study


def run_verify(
    study_name: str,
    storage_url: str,
    top: int,
    seeds: int,
    on_progress: Callable[[VerifyProgress], None] | None = None,
    heartbeat: Heartbeat | None = None,
    population: int | None = None,
) -> VerifyResult:
    """Retrain the top-``top`` configurations of ``study_name`` with ``seeds`` fresh seeds each,
    for the study's full ``max_epochs`` without pruning, and score each on the test split.

    Up to ``population`` runs (default: the study file's ``population`` or ``seeds``, whichever
    is larger) train at once as one stacked model where the task stacks
    (:func:`hpsearch.population.retrain.retrain_all`): a configuration's seeds are members of
    one population, each with its own seed.

    (configuration, seed) pairs already complete in ``NAME:verify`` are not run again. Each run
    records heartbeats (``heartbeat``, default settings when ``None``): a run left RUNNING by
    a verify process that was killed is failed, once stale, by the next ``verify``.
    """
    from hpsearch.store.queries import load_study

    if top < 1 or seeds < 1:
        raise ConfigError(f"--top and --seeds must be >= 1, got --top {top} --seeds {seeds}")
    if study_name.endswith(VERIFY_SUFFIX):
        raise ConfigError(f"{study_name!r} is a verification study; verify its source study instead")
    source = load_study(study_name, storage_url)
    from hpsearch.study.stored import searched_definition

    definition = searched_definition(source)
    configs = top_configs(source, top, definition.acting)
    if not configs:
        raise StudyNotFoundError(f"study {study_name!r} has no completed trial to verify")
    seed_list = verify_seeds(definition.config.seed, seeds)
    vstudy = _open_verify_study(storage_url, source, heartbeat or Heartbeat())
    done = set(_complete_runs(vstudy))
    todo = [(rank, t, s) for rank, t in enumerate(configs, 1) for s in seed_list if (config_key(t.params), s) not in done]
    meta = definition.meta
    result = VerifyResult(study_name, vstudy.study_name, meta.test_metric, meta.direction, CONFIDENCE)
    result.skipped = len(configs) * len(seed_list) - len(todo)
    result.split_seed = definition.config.seed
    result.covers = covers_text(False, definition.task.name, definition.config.seed)
    run = _Verification(definition, vstudy)
    size = max(definition.config.population, seeds) if population is None else max(population, 1)
    done_count = 0
    for start in range(0, len(todo), size):
        for progress in _run_chunk(run, todo[start:start + size], size):
            done_count += 1
            result.ran += 1
            if on_progress is not None:
                on_progress(VerifyProgress(done_count, len(todo), *progress))
    result.configs = _stats(vstudy, configs, seed_list)
    if len(result.configs) >= 2:
        result.comparisons = compare_with_best(result.configs, meta.maximize)
        result.paired = result.comparisons[0]
    return result


def _ask(vstudy: optuna.Study, rank: int, trial: FrozenTrial, seed: int) -> optuna.Trial:
    """A trial of the linked study for (configuration, seed): the enqueued trial fixes the
    params to the configuration; ask() pops it."""
    attrs = {"config": config_key(trial.params), "seed": seed, "rank": rank, "source_trial": trial.number, "split": "test"}
    vstudy.enqueue_trial(dict(trial.params), user_attrs=attrs, skip_if_exists=False)
    vtrial = vstudy.ask(fixed_distributions=dict(trial.distributions))
    if vtrial.params != trial.params:  # another process popped our enqueued trial first
        for key, attr in attrs.items():
            vtrial.set_user_attr(key, attr)
        vstudy.tell(vtrial, state=TrialState.FAIL)
        raise RuntimeError(f"{vstudy.study_name}: another process is adding trials; run verify from one process at a time")
    return vtrial


def _run_chunk(run: _Verification, chunk: list[tuple[int, FrozenTrial, int]],
               population: int) -> list[tuple[int, int, float | None, str | None, float]]:
    """Retrain (configuration, seed) pairs, stacked where the task allows, and store each as a
    trial of the linked study; returns ``(rank, seed, value, error, seconds)`` per pair."""
    from contextlib import ExitStack

    from hpsearch.analysis.retrain import fail_interrupted, record
    from hpsearch.population.retrain import RetrainJob, retrain_all
    from hpsearch.store.queries import beating

    definition, vstudy = run.definition, run.vstudy
    asked: list[optuna.Trial] = []
    with ExitStack() as beats:
        try:
            for rank, trial, seed in chunk:
                asked.append(_ask(vstudy, rank, trial, seed))
                beats.enter_context(beating(asked[-1]))
            jobs = [RetrainJob(definition, trial.params, seed, definition.config.seed) for _, trial, seed in chunk]
            outcomes = retrain_all(jobs, population)
        except BaseException as exc:  # Ctrl-C: leave no RUNNING trial behind; a re-run redoes these pairs
            for vtrial in asked:
                fail_interrupted(vstudy, vtrial, exc)
            raise
    out = []
    for (rank, _, seed), vtrial, outcome in zip(chunk, asked, outcomes):
        record(vstudy, vtrial, outcome)
        out.append((rank, seed, outcome.value, outcome.error, outcome.seconds))
    return out


def load_verification(study_name: str, url: str) -> list[dict[str, Any]] | None:
    """Stored verification results of ``study_name`` grouped by configuration (for the report),
    or ``None`` when ``verify`` has not been run."""
    from hpsearch.store.queries import load_study

    try:
        vstudy = load_study(verify_study_name(study_name), url)
    except StudyNotFoundError:
        return None
    groups: dict[str, dict[str, Any]] = {}
    for t in vstudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = str(t.user_attrs.get("config"))
        attrs = t.user_attrs
        g = groups.setdefault(key, {"rank": attrs.get("rank"), "source_trial": attrs.get("source_trial"), "params": dict(t.params),
                                    "seeds": [], "values": []})
        g["seeds"].append(t.user_attrs.get("seed"))
        g["values"].append(_value(t))
    rows = []
    for g in sorted(groups.values(), key=lambda g: (g["rank"] is None, g["rank"])):
        s = summarize(g["values"])
        rows.append({**g, "n": len(g["values"]), "mean": s.mean, "std": s.std, "ci_low": s.ci_low, "ci_high": s.ci_high})
    return rows
