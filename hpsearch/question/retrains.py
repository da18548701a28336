"""The retrainings of an answer: one trial of the linked study ``NAME:answer`` per (cell,
configuration, seed), shared by every ``hpsearch answer`` process on the database.

Each missing pair is enqueued once (an atomic claim per pair and attempt) and popped by exactly
one process; a finished pair is never run again, a pair left RUNNING by a killed process is
failed once its heartbeat is stale and enqueued again (so a SIGKILL loses only the seeds that
were running), and a pair that failed :data:`MAX_ATTEMPTS` times is given up with its reason.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import optuna
from optuna.trial import TrialState

ANSWER_SUFFIX = ":answer"
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Pair:
    """One retraining: the cell, its chosen configuration, the seed and the split seed."""

    cell: str
    params: Mapping[str, Any]
    source_trial: int
    seed: int
    data_seed: int

    @property
    def config(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True, default=str)

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.cell, self.config, self.seed, self.data_seed)

    def attrs(self) -> dict[str, Any]:
        return {"cell": self.cell, "config": self.config, "seed": self.seed, "data_seed": self.data_seed,
                "source_trial": self.source_trial, "split": "test"}


@dataclass(frozen=True)
class PairResult:
    """A finished pair: its test value (or the reason it failed) and the trial's numbers."""

    value: float | None
    error: str | None
    attrs: Mapping[str, Any]


def _key_of(t: optuna.trial.FrozenTrial) -> tuple[str, str, int, int] | None:
    a = t.user_attrs
    if not {"cell", "config", "seed", "data_seed"} <= set(a):
        return None
    return (str(a["cell"]), str(a["config"]), int(a["seed"]), int(a["data_seed"]))


def open_answer_study(hub: optuna.Study, url: str, heartbeat: Any) -> optuna.Study:
    """The linked study of the retrainings (created if missing), with heartbeats and no
    automatic re-queueing (stale pairs are enqueued again here)."""
    from hpsearch.store.connect import connect

    storage = connect(url, heartbeat=heartbeat, requeue=False)
    study = optuna.create_study(storage=storage, study_name=hub.study_name + ANSWER_SUFFIX,
                                direction=hub.directions[0], load_if_exists=True)
    if study.user_attrs.get("source_study") != hub.study_name:
        study.set_user_attr("source_study", hub.study_name)
    return study


def collect(study: optuna.Study, pairs: list[Pair]) -> dict[tuple[str, str, int, int], PairResult]:
    """The outcome of every wanted pair that has one: COMPLETE, or given up after
    :data:`MAX_ATTEMPTS` failures (the last reason)."""
    wanted = {p.key for p in pairs}
    done: dict[tuple[str, str, int, int], PairResult] = {}
    fails: dict[tuple[str, str, int, int], list[str]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        key = _key_of(t)
        if key not in wanted or key is None:
            continue
        if t.state == TrialState.COMPLETE and key not in done and t.value is not None:
            done[key] = PairResult(float(t.value), None, dict(t.user_attrs))
        elif t.state == TrialState.FAIL:
            reason = str(t.user_attrs.get("fail_reason", "the process running it died"))
            fails.setdefault(key, []).extend([reason] * (MAX_ATTEMPTS if t.user_attrs.get("final") else 1))
    for key, reasons in fails.items():
        if key not in done and len(reasons) >= MAX_ATTEMPTS:
            done[key] = PairResult(None, reasons[-1], {})
    return done


def _queue_missing(study: optuna.Study, pairs: list[Pair]) -> int:
    """Enqueue every wanted pair that is not finished, running or queued; returns how many
    pairs are still open (queued or running, by anyone)."""
    from hpsearch.store.queries import claim_once

    by_key: dict[Any, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False):
        by_key.setdefault(_key_of(t), []).append(t)
    open_pairs = 0
    for pair in pairs:
        trials = by_key.get(pair.key, [])
        states = [t.state for t in trials]
        if TrialState.COMPLETE in states:
            continue
        if TrialState.RUNNING in states or TrialState.WAITING in states:
            open_pairs += 1
            continue
        attempts = states.count(TrialState.FAIL)
        if attempts >= MAX_ATTEMPTS or any(t.user_attrs.get("final") for t in trials):
            continue
        if claim_once(study, f"hpsearch:queue:{json.dumps(list(pair.key))}:{attempts}"):
            study.enqueue_trial({}, user_attrs=pair.attrs(), skip_if_exists=False)
        open_pairs += 1
    return open_pairs


def run_pairs(study: optuna.Study, pairs: list[Pair], definitions: Mapping[str, Any], population: int,
              heartbeat: Any, on_done: Callable[[Pair, PairResult, int, int], None] | None = None) -> None:
    """Run the wanted pairs this process can take (up to ``population`` at once, stacked where
    the task allows) until none is open; waits for pairs other processes are running."""
    from hpsearch.analysis.retrain import fail_interrupted, record
    from hpsearch.population.retrain import RetrainJob, retrain_all
    from hpsearch.store.queries import beating, fail_stale_trials, pop_waiting

    by_key = {p.key: p for p in pairs}
    finished = len(collect(study, pairs))
    while True:
        fail_stale_trials(study)
        if _queue_missing(study, pairs) == 0:
            return
        popped: list[tuple[optuna.Trial, Pair]] = []
        while len(popped) < max(population, 1) and (trial := pop_waiting(study)) is not None:
            key = (str(trial.user_attrs.get("cell")), str(trial.user_attrs.get("config")),
                   int(trial.user_attrs.get("seed", -1)), int(trial.user_attrs.get("data_seed", -1)))
            if key in by_key:
                popped.append((trial, by_key[key]))
            else:  # a pair of an older design or seed count: not wanted now
                trial.set_user_attr("fail_reason", "no longer wanted by the question (design or seeds changed)")
                study.tell(trial, state=TrialState.FAIL)
        if not popped:
            time.sleep(heartbeat.interval if heartbeat is not None else 1)  # others are running the rest
            continue
        jobs = [RetrainJob(definitions[p.cell], p.params, p.seed, p.data_seed) for _, p in popped]
        try:
            with ExitStack() as stack:
                for trial, _ in popped:
                    stack.enter_context(beating(trial))
                outcomes = retrain_all(jobs, population)
        except BaseException as exc:  # Ctrl-C: no RUNNING trial left behind; a rerun redoes these seeds
            for trial, _ in popped:
                fail_interrupted(study, trial, exc)
            raise
        for (trial, pair), outcome in zip(popped, outcomes):
            if outcome.error is not None:
                trial.set_user_attr("final", True)  # a real failure: retrying gives the same
            record(study, trial, outcome)
            finished += 1
            if on_done is not None:
                on_done(pair, PairResult(outcome.value, outcome.error, outcome.attrs()), finished, len(pairs))
