"""Helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

from pathlib import Path

import yaml

from hpsearch.study.config import StudyFile, parse_study

REPO = Path(__file__).resolve().parents[2]

#: The ``search:`` section of studies/quickstart.yaml (block-style YAML, safe in str.format).
QUICKSTART_SEARCH = yaml.safe_dump(
    {"search": yaml.safe_load((REPO / "studies" / "quickstart.yaml").read_text())["search"]},
    default_flow_style=False,
    sort_keys=False,
)


def study_file(text: str, path: str = "<bench>") -> StudyFile:
    """A validated StudyFile from YAML text."""
    return StudyFile(path=path, text=text, config=parse_study(text, path))


def result(name: str, value: float, op: str, target: float, fmt: str = ".3f") -> None:
    """Print the closing ``RESULT <name> <value> goal <op> <target>`` line."""
    print(f"RESULT {name} {value:{fmt}} goal {op} {target:g}", flush=True)

#: A study of the quickstart space (``search``) with random proposals and no pruner: the
#: population benchmarks run it whole with population 1 and K.
RANDOM_STUDY = """
study: {name}
task: {task}
trials: {trials}
max_epochs: {epochs}
seed: {seed}
sampler: {{type: random}}
pruner: {{type: none}}
{search}fixed:
  optimizer: adamw
  batch_size: 64
"""
