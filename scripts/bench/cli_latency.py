"""CLI latency: whole-process wall time of `hpsearch --help` and of `hpsearch studies` on a
database holding a study with ``--trials`` (10,000) finished trials. Median of ``--repeat`` (5).

Ends with ``RESULT cli_help_s <median> goal <= 0.5`` and ``RESULT cli_studies_s <median> goal <= 2``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from common import result
from fake_trials import bulk_fill

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")


def wall(args: list[str], repeat: int) -> float:
    """Median wall seconds of running ``hpsearch ARGS`` as a new process."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([HPSEARCH, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'big.db'}"
        from hpsearch.store.connect import connect

        study = optuna.create_study(storage=connect(url), study_name="big", direction="maximize")
        started = time.perf_counter()
        bulk_fill(study, args.trials)
        print(f"made a {args.trials}-trial study in {time.perf_counter() - started:.1f} s")
        help_s = wall(["--help"], args.repeat)
        studies_s = wall(["studies", "--storage", url], args.repeat)
    print(f"hpsearch --help: {help_s:.3f} s; hpsearch studies ({args.trials} trials): {studies_s:.3f} s (median of {args.repeat})")
    result("cli_help_s", help_s, "<=", 0.5)
    result("cli_studies_s", studies_s, "<=", 2)


if __name__ == "__main__":
    main()
