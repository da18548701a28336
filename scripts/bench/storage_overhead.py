"""Sampler + storage overhead per trial at 1,000 and 10,000 finished trials.

A no-op objective over the real regularization space (the quickstart search: 6 parameters,
3 intermediate reports per trial) runs through hpsearch's path: the study opened by
``hpsearch.store.connect.connect``, the default TPE sampler, ``space.suggest`` and the runner's
stop-at-target callback. The study is first filled to N finished trials (bulk insert through
Optuna's ORM models, see fake_trials.py); one untimed trial loads the study into Optuna's
per-process trial cache (its time is printed), then ``--measure`` more trials are timed.
Plain Optuna (default RDBStorage, TPESampler, same objective, no hpsearch) is timed side by
side for reference.

Storages: a SQLite file always; PostgreSQL when ``--postgres URL`` (or $HPSEARCH_BENCH_PG) is
given. Ends with ``RESULT storage_overhead_10k_ms <worst ms/trial at 10k> goal <= 50`` and
``RESULT storage_overhead_growth <worst 10k/1k ratio> goal <= 2``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
from common import QUICKSTART_SEARCH, result, study_file
from fake_trials import bulk_fill

from hpsearch.run.stopper import StopAtTarget
from hpsearch.store.connect import connect
from hpsearch.study.space import suggest
from hpsearch.tasks import resolve_task

WARMUP = 1  # untimed trials first: they load the study into Optuna's per-process trial cache

TEXT = """
study: {name}
task: digits-mlp
trials: {trials}
max_epochs: 3
seed: 0
{search}"""


def noop_objective(config, task):  # noqa: ANN001, ANN201
    """Suggest the real space, report 3 intermediate values, return a value."""

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, config, task)
        value = 0.9 - abs(params["keep_prob"] - 0.8) / 10
        for epoch in range(3):
            trial.report(value - 0.1 / (epoch + 1), epoch)
        return value

    return objective


def time_hpsearch(url: str, name: str, n: int, measure: int) -> tuple[float, float]:
    """ms per trial through hpsearch's storage, sampler, suggest and stop callback."""
    sf = study_file(TEXT.format(name=name, trials=n + measure, search=QUICKSTART_SEARCH))
    task = resolve_task("digits-mlp")
    from hpsearch.study.algorithms import build_sampler

    study = optuna.create_study(storage=connect(url), study_name=name, direction="maximize",
                                sampler=build_sampler(sf.config.sampler, 0), load_if_exists=True)
    bulk_fill(study, n)
    stopper = StopAtTarget(n + WARMUP + measure, "val_acc", None)
    return timed(study, noop_objective(sf.config, task), measure, [stopper])


def timed(study: optuna.Study, objective, measure: int, callbacks: list) -> tuple[float, float]:  # noqa: ANN001
    """(ms of the first WARMUP trials, ms per trial of the next ``measure``). The first trial of
    a process loads the whole study into Optuna's trial cache once; the goal is about the
    steady state after that."""
    started = time.perf_counter()
    study.optimize(objective, n_trials=WARMUP, callbacks=callbacks)
    warm = time.perf_counter()
    study.optimize(objective, n_trials=measure, callbacks=callbacks)
    return 1000 * (warm - started), 1000 * (time.perf_counter() - warm) / measure


def time_plain_optuna(url: str, name: str, n: int, measure: int) -> tuple[float, float]:
    """ms per trial with plain Optuna defaults (RDBStorage, TPESampler) on the same work."""
    sf = study_file(TEXT.format(name=name, trials=n + measure, search=QUICKSTART_SEARCH))
    task = resolve_task("digits-mlp")
    study = optuna.create_study(storage=url, study_name=name, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0), load_if_exists=True)
    bulk_fill(study, n)
    return timed(study, noop_objective(sf.config, task), measure, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--measure", type=int, default=50, help="trials timed at each size")
    parser.add_argument("--postgres", default=os.environ.get("HPSEARCH_BENCH_PG"), help="PostgreSQL URL (an empty database)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        storages = {"sqlite": (f"sqlite:///{Path(tmp) / 'ours.db'}", f"sqlite:///{Path(tmp) / 'plain.db'}")}
        if args.postgres:
            storages["postgresql"] = (args.postgres, args.postgres)
        worst, growth = 0.0, 0.0
        for kind, (ours_url, plain_url) in storages.items():
            per_size = {}
            for n in sorted(args.sizes):
                (ours_warm, ours), (plain_warm, plain) = (
                    time_hpsearch(ours_url, f"bench-ours-{n}", n, args.measure),
                    time_plain_optuna(plain_url, f"bench-plain-{n}", n, args.measure),
                )
                per_size[n] = ours
                print(f"{kind:<10} {n:>6} finished trials: hpsearch {ours:7.1f} ms/trial, plain Optuna {plain:7.1f} ms/trial "
                      f"(first trial of the process, cache load included: {ours_warm:.0f} / {plain_warm:.0f} ms)", flush=True)
            largest, smallest = max(per_size), min(per_size)
            worst = max(worst, per_size[largest])
            growth = max(growth, per_size[largest] / per_size[smallest])
    result(f"storage_overhead_ms_at_{max(args.sizes)}", worst, "<=", 50, ".1f")
    result("storage_overhead_growth", growth, "<=", 2)


if __name__ == "__main__":
    main()
