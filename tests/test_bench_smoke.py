"""Every benchmark runs at a tiny size and ends with its RESULT line (speed is not checked here)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench"
RESULT = re.compile(r"^RESULT (\S+) (\S+) goal (<=|>=) (\S+)$", re.M)

SMOKE = [
    ("trial_overhead.py", ["--pairs", "1", "--epochs", "2"], ["trial_overhead"]),
    ("own_module.py", ["--pairs", "1", "--epochs", "1", "--workers", "0"], ["own_module_overhead"]),
    ("search_efficiency.py", ["--seeds", "1", "--trials", "2", "--max-epochs", "1"], ["search_efficiency"]),
    ("storage_overhead.py", ["--sizes", "20", "40", "--measure", "3"], ["storage_overhead_ms_at_40", "storage_overhead_growth"]),
    ("cli_latency.py", ["--trials", "200", "--repeat", "1"], ["cli_help_s", "cli_studies_s"]),
    ("workers.py", ["throughput", "--trials", "4", "--max-epochs", "1"], ["scaling_2_workers"]),
    ("scaling.py", ["--workers", "2", "--trials", "4", "--single-trials", "2", "--sleep", "0.1"],
     ["scaling_2_workers_sleep", "scaling_2_workers_bad_trials"]),
    ("history_quality.py", ["--trials", "40", "--bound", "15", "--seeds", "1"], ["history_quality_best_gap"]),
    ("population.py", ["--seeds", "1", "--trials", "3", "--max-epochs", "1", "--population", "2", "--hyperband-trials", "3",
                       "--toy2d-trials", "4", "--toy2d-epochs", "2", "--toy2d-population", "4", "--step-epochs", "1",
                       "--step-repeats", "1"],
     ["population_step_ratio", "population_speedup", "population_best_acc_gap", "population_hyperband_speedup",
      "population_hyperband_acc_gap", "population_toy2d_speedup", "population_toy2d_acc_gap"]),
    ("population_cnn.py", ["--trials", "2", "--max-epochs", "1", "--population", "2"],
     ["population_cnn_speedup", "population_cnn_best_acc_gap"]),
    ("answer_time.py", ["--rounds", "1", "--epochs", "2"], ["answer_population_speedup", "answer_same_verdicts"]),
    ("calibration.py", ["--reps", "20"], ["aa_rate_gap_120_5", "question_aa_rate_gap", "question_power_gap",
                                         "question_equivalent_rate"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "args", "names"), SMOKE, ids=[s[0] for s in SMOKE])
def test_benchmark_smoke(script: str, args: list[str], names: list[str], request: pytest.FixtureRequest) -> None:
    if script == "scaling.py":
        request.getfixturevalue("pg_server")  # skips (or fails in CI) without PostgreSQL binaries
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = {m.group(1): float(m.group(2)) for m in RESULT.finditer(proc.stdout)}
    assert set(names) <= set(found), proc.stdout
    assert all(math.isfinite(value) for value in found.values())
    assert all(value >= 0 for name, value in found.items() if not name.endswith("_gap"))  # gaps are signed
