#!/usr/bin/env python
"""Benchmark: `hpsearch report` on a large study (default 10,000 trials).

Makes the study quickly (real storage, quickstart search space, no-op objective: see
hpsearch/testing/synthetic.py) unless the database already holds it, then times, side by side in this
one process: Optuna's own load of all trials (fresh storage) and the whole report (load,
importances, figures, HTML). Prints both and their ratio.

    .venv/bin/python scripts/bench_report.py [--trials 10000] [--db /tmp/hpsearch-bench.db]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "hpsearch-bench-report.db"))
    parser.add_argument("--out", default=None, help="report directory [default: a temp dir]")
    parser.add_argument("--name", default=None, help="study name [default: bench-TRIALS]")
    args = parser.parse_args()

    import optuna

    from hpsearch.analysis.report import build_report
    from hpsearch.store.connect import connect
    from hpsearch.testing.synthetic import make_synthetic_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{args.db}"
    name = args.name or f"bench-{args.trials}"
    storage = connect(url)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in names:
        t0 = time.perf_counter()
        make_synthetic_study(url, name, args.trials)
        print(f"made study {name} with {args.trials} trials in {time.perf_counter() - t0:.1f} s ({url})")

    t0 = time.perf_counter()
    n = len(optuna.load_study(study_name=name, storage=connect(url)).get_trials(deepcopy=False))
    load_s = time.perf_counter() - t0
    out = args.out or tempfile.mkdtemp(prefix="hpsearch-bench-report-")
    result = build_report(name, url, out)
    print(f"optuna get_trials ({n} trials): {load_s:.1f} s")
    print(f"hpsearch report: {result.seconds:.1f} s  (steps: {result.timings})")
    print(f"ratio report / optuna load: {result.seconds / load_s:.2f}")
    print(f"report: {result.html} ({result.html.stat().st_size / 1e6:.1f} MB), {len(result.pngs)} PNGs")
    print("under 60 s" if result.seconds < 60 else "OVER 60 s")


if __name__ == "__main__":
    main()
