"""Wall time of ``hpsearch answer`` for one toy question (3 levels × 5 seeds = 15 retrains)
with ``--population 1`` and ``--population 15``, side by side.

The question (toy2d-mlp on circles, width 10, 200 epochs): weight decay none / 1e-4 / 1e-2,
learning rate tuned per level with a budget of 4 trials. It is tuned once; then each round
copies the database and runs ``hpsearch answer`` on the copy with each population size (a new
process each: start-up, data, 15 retrains, statistics), alternating so both sides see the same
machine load. Reported: each side's wall time per round, the ratio of the summed times and
whether both sides reached the same verdicts.

Ends with ``RESULT answer_population_speedup <t(1)/t(15)> goal >= 1`` and
``RESULT answer_same_verdicts <0/1> goal >= 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import result

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")

QUESTION = """
study: toy-wd
task: toy2d-mlp
trials: 4
max_epochs: {epochs}
seed: 0
sampler: {{type: random}}
pruner: {{type: none}}
search:
  learning_rate: {{low: 0.003, high: 0.1, log: true}}
fixed: {{dataset: circles, width: 10, optimizer: adamw, batch_size: 64}}
question:
  asks: Does weight decay help a 10-unit MLP on circles?
  compare: weight_decay
  levels:
    none: {{weight_decay: 0.0}}
    small: {{weight_decay: 0.0001}}
    large: {{weight_decay: 0.01}}
  reference: none
  budget: 4
  seeds: 5
  min_effect: 0.02
"""


def answer(url: str, population: int) -> tuple[float, dict]:
    """Wall seconds and JSON output of one ``hpsearch answer`` command."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    started = time.perf_counter()
    proc = subprocess.run([HPSEARCH, "answer", "toy-wd", "--json", "--population", str(population), "--storage", url],
                          env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "q.yaml"
        study.write_text(QUESTION.format(epochs=args.epochs))
        tuned = Path(tmp) / "tuned.db"
        subprocess.run([HPSEARCH, "optimize", str(study), "--quiet", "--storage", f"sqlite:///{tuned}"], check=True,
                       capture_output=True)
        print(f"load average before: {os.getloadavg()}")
        times: dict[int, list[float]] = {1: [], 15: []}
        verdicts: dict[int, list[list[str]]] = {1: [], 15: []}
        for r in range(args.rounds):
            for size in ((1, 15) if r % 2 == 0 else (15, 1)):
                copy = Path(tmp) / f"r{r}-p{size}.db"
                shutil.copy(tuned, copy)
                seconds, out = answer(f"sqlite:///{copy}", size)
                times[size].append(seconds)
                verdicts[size].append([c["verdict"] for c in out["comparisons"]])
                print(f"round {r}: --population {size:>2}: {seconds:6.1f} s, verdicts {verdicts[size][-1]}, "
                      f"means {[round(lv['mean'], 4) for lv in out['levels']]}")
        print(f"load average after: {os.getloadavg()}")
        ratio = sum(times[1]) / sum(times[15])
        print(f"summed wall time: population 1 {sum(times[1]):.1f} s, population 15 {sum(times[15]):.1f} s")
        result("answer_population_speedup", ratio, ">=", 1)
        result("answer_same_verdicts", float(verdicts[1] == verdicts[15]), ">=", 1)


if __name__ == "__main__":
    main()
