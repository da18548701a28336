"""The retrainings of an answer: one trial of the linked study ``NAME:answer`` per (cell,
configuration, definition, seed, split seed), shared by every ``hpsearch answer`` process.

A process takes a pair by creating its trial (RUNNING, heartbeat started at once, the pair in
its user attrs), then looks again: when an earlier trial of the same pair is running or
finished, its own copy is dropped (FAIL, ``duplicate``), so two processes never both train a
pair for long. A finished pair is never run again. A pair whose process died is failed once
its heartbeat is stale (or, with no heartbeat at all, once it is older than the grace period)
and taken again, so a SIGKILL loses only the seeds that were running; Ctrl-C fails the running
pairs, which a rerun takes again. A pair whose training itself failed :data:`GIVE_UP` times
(``final``: a model that cannot be built, a non-finite loss; not a killed or interrupted run) is
given up, with its reason.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import optuna
from optuna.trial import FrozenTrial, TrialState

ANSWER_SUFFIX = ":answer"
#: A pair whose training failed this many times (not counting killed or interrupted runs) is given up.
GIVE_UP = 2
Key = tuple[str, str, str, int, int]


@dataclass(frozen=True)
class Pair:
    """One retraining: the cell, its chosen configuration, the cell study's definition hash,
    the seed and the split seed."""

    cell: str
    params: Mapping[str, Any]
    source_trial: int
    definition: str
    seed: int
    data_seed: int

    @property
    def config(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True, default=str)

    @property
    def key(self) -> Key:
        return (self.cell, self.config, self.definition, self.seed, self.data_seed)

    def attrs(self) -> dict[str, Any]:
        return {"cell": self.cell, "config": self.config, "definition": self.definition, "seed": self.seed,
                "data_seed": self.data_seed, "source_trial": self.source_trial, "split": "test"}


@dataclass(frozen=True)
class PairResult:
    """A finished pair: its test value (or the reason it failed) and the trial's numbers."""

    value: float | None
    error: str | None
    attrs: Mapping[str, Any]


def _key_of(t: FrozenTrial) -> Key | None:
    a = t.user_attrs
    if not {"cell", "config", "definition", "seed", "data_seed"} <= set(a) or a.get("duplicate"):
        return None
    return (str(a["cell"]), str(a["config"]), str(a["definition"]), int(a["seed"]), int(a["data_seed"]))


def open_answer_study(hub: optuna.Study, url: str, heartbeat: Any) -> optuna.Study:
    """The linked study of the retrainings (created if missing), with heartbeats and no
    automatic re-queueing (a dead process's pairs are taken again here)."""
    from hpsearch.store.connect import connect

    storage = connect(url, heartbeat=heartbeat, requeue=False)
    study = optuna.create_study(storage=storage, study_name=hub.study_name + ANSWER_SUFFIX,
                                direction=hub.directions[0], load_if_exists=True)
    if study.user_attrs.get("source_study") != hub.study_name:
        study.set_user_attr("source_study", hub.study_name)
    return study


def _by_key(study: optuna.Study) -> dict[Key, list[FrozenTrial]]:
    out: dict[Key, list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False):
        key = _key_of(t)
        if key is not None:
            out.setdefault(key, []).append(t)
    return out


def collect(study: optuna.Study, pairs: list[Pair]) -> dict[Key, PairResult]:
    """The outcome of every wanted pair that has one: COMPLETE, or failed for real (``final``)."""
    by_key = _by_key(study)
    done: dict[Key, PairResult] = {}
    for pair in pairs:
        trials = sorted(by_key.get(pair.key, []), key=lambda t: t.number)
        complete = next((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None), None)
        failed = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("final")]
        if complete is not None:
            done[pair.key] = PairResult(float(complete.value or 0.0), None, dict(complete.user_attrs))
        elif len(failed) >= GIVE_UP:
            done[pair.key] = PairResult(None, str(failed[-1].user_attrs.get("fail_reason", "failed")), {})
    return done


def _open_pairs(study: optuna.Study, pairs: list[Pair]) -> tuple[list[Pair], bool]:
    """The wanted pairs nobody has finished or is running, and whether anyone runs one."""
    by_key = _by_key(study)
    todo, running = [], False
    for pair in pairs:
        states = [t.state for t in by_key.get(pair.key, [])]
        finished = TrialState.COMPLETE in states or sum(
            t.state == TrialState.FAIL and bool(t.user_attrs.get("final")) for t in by_key.get(pair.key, [])) >= GIVE_UP
        if finished:
            continue
        if TrialState.RUNNING in states:
            running = True
        else:
            todo.append(pair)
    return todo, running


def _take(study: optuna.Study, pairs: list[Pair], stack: ExitStack) -> list[tuple[optuna.Trial, Pair]]:
    """Create a trial per pair (heartbeat first), then drop those another process holds."""
    from hpsearch.store.queries import beating, set_trial_user_attrs

    taken = []
    for pair in pairs:
        trial = study.ask()
        set_trial_user_attrs(trial, pair.attrs())  # first, so other processes see the pair at once
        stack.enter_context(beating(trial))
        taken.append((trial, pair))
    by_key = _by_key(study)
    mine = []
    for trial, pair in taken:
        earlier = [t for t in by_key.get(pair.key, []) if t.number < trial.number
                   and t.state in (TrialState.RUNNING, TrialState.COMPLETE)]
        if earlier:
            trial.set_user_attr("duplicate", True)
            trial.set_user_attr("fail_reason", f"duplicate: trial {earlier[0].number} has this pair")
            study.tell(trial, state=TrialState.FAIL)
        else:
            mine.append((trial, pair))
    return mine


def run_pairs(study: optuna.Study, pairs: list[Pair], definitions: Mapping[str, Any], population: int,
              heartbeat: Any, on_done: Callable[[Pair, PairResult, int, int], None] | None = None) -> None:
    """Run the wanted pairs (up to ``population`` at once, stacked where the task allows)
    until every one is finished; waits while other processes run the rest."""
    from hpsearch.analysis.retrain import fail_interrupted, record
    from hpsearch.population.retrain import RetrainJob, retrain_all
    from hpsearch.store.queries import fail_stale_trials, fail_unbeaten

    finished = len(collect(study, pairs))
    # Pairs of one cell stay together (they stack into one population); each process starts
    # at a random place, so processes started together work on different pairs.
    ordered = sorted(pairs, key=lambda p: (p.cell, p.seed))
    start = random.Random().randrange(len(ordered)) if ordered else 0
    shuffled = ordered[start:] + ordered[:start]
    while True:
        fail_stale_trials(study)
        fail_unbeaten(study, heartbeat.grace)
        todo, running = _open_pairs(study, shuffled)
        if not todo:
            if not running:
                return
            time.sleep(heartbeat.interval)  # others are running the rest
            continue
        with ExitStack() as stack:
            mine: list[tuple[optuna.Trial, Pair]] = []
            try:
                mine = _take(study, todo[:max(population, 1)], stack)
                if not mine:
                    continue
                jobs = [RetrainJob(definitions[p.cell], p.params, p.seed, p.data_seed) for _, p in mine]
                outcomes = retrain_all(jobs, population)
                for (trial, pair), outcome in zip(mine, outcomes):
                    if outcome.error is not None:
                        trial.set_user_attr("final", True)  # a failure of the training itself (see GIVE_UP)
                    record(study, trial, outcome)
                    finished += 1
                    if on_done is not None:
                        on_done(pair, PairResult(outcome.value, outcome.error, outcome.attrs()), finished, len(pairs))
            except BaseException as exc:  # Ctrl-C: no RUNNING trial left behind; a rerun redoes these seeds
                for trial, _ in mine:
                    fail_interrupted(study, trial, exc)
                raise
