"""A study file is parsed and checked against its task once per process, and the study's
sampler and pruner are built once: the definition is handed down (CLI -> pool -> runner), never
the path. (A resumed study builds a second sampler, seeded past the trials already there.)
``define`` and the sampler/pruner builders log one INFO line each (with the process
id), which these tests count in a real ``hpsearch optimize`` run."""

from __future__ import annotations

import collections
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_cli

from hpsearch.cli import main

CHECKED = re.compile(r"study file .* checked against task \S+ \(process (\d+)\)")
SAMPLER = re.compile(r"sampler built with seed \d+ \(process (\d+)\)")
PRUNER = re.compile(r"pruner built \(process (\d+)\)")
FAST = {"max_epochs": 1, "fixed": {"optimizer": "adamw", "batch_size": 256, "hidden_units": 8, "hidden_layers": 1}}


def _per_process(lines: list[str], pattern: re.Pattern[str]) -> collections.Counter[str]:
    return collections.Counter(m.group(1) for line in lines if (m := pattern.search(line)))


def test_one_process_parses_and_builds_once(write_study, sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    path = write_study(trials=2, **FAST)
    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(main, ["optimize", str(path), "--storage", sqlite_url, "--quiet"])
    assert result.exit_code == 0, result.output
    lines = [r.getMessage() for r in caplog.records]
    for pattern in (CHECKED, SAMPLER, PRUNER):
        counts = _per_process(lines, pattern)
        assert list(counts.values()) == [1], (pattern.pattern, lines)


@pytest.mark.slow  # a pool of two worker processes
def test_a_pool_parses_once_in_each_process(write_study, sqlite_url: str, tmp_path: Path) -> None:
    path = write_study(trials=2, **FAST)
    log_file = tmp_path / "run.log"
    proc = run_cli("--log-file", str(log_file), "optimize", str(path), "--storage", sqlite_url, "--workers", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = log_file.read_text().splitlines()
    checked = _per_process(lines, CHECKED)
    assert len(checked) == 3 and set(checked.values()) == {1}, checked  # the pool and its two workers
    sampled = _per_process(lines, SAMPLER)
    # The pool builds its sampler once; a worker that finds the other's trial already in the
    # study builds a second one with the seed offset by those trials (as a resumed study does).
    assert set(sampled) == set(checked) and min(sampled.values()) == 1 and max(sampled.values()) <= 2, sampled
