"""Every Python and shell block of README.md runs as written (tiny budgets through
$HPSEARCH_CAP_TRIALS / $HPSEARCH_CAP_EPOCHS). A block preceded by
``<!-- readme-test: skip (reason) -->`` is skipped, visibly, with its reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import HPSEARCH, REPO, cli_env

pytestmark = pytest.mark.slow

FENCE = re.compile(r"^```([a-z]*)[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!-- readme-test: skip \((.+?)\) -->\s*$")
RUNNABLE = {"python", "bash", "sh", "console", ""}


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    code: str
    skip: str | None


def readme_blocks() -> list[Block]:
    """The fenced blocks of README.md in order, with their skip reason (if any)."""
    text = (REPO / "README.md").read_text()
    blocks = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        blocks.append(Block(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2), skip.group(1) if skip else None))
    return blocks


def shell_script(block: Block) -> str:
    """A console block's ``$ `` lines (its output lines are not commands); other blocks as they are."""
    if block.lang == "console":
        return "\n".join(line[2:] for line in block.code.splitlines() if line.startswith("$ "))
    return block.code


def test_readme_marks_few_skips_and_every_block_is_known() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 10
    skipped = [b for b in blocks if b.skip]
    assert len(skipped) == 4, [(b.line, b.skip) for b in skipped]
    assert all(b.lang in RUNNABLE | {"yaml", "text"} for b in blocks), [(b.line, b.lang) for b in blocks]


def test_every_readme_block_runs(tmp_path: Path) -> None:
    (tmp_path / "studies").symlink_to(REPO / "studies")
    (tmp_path / "examples").symlink_to(REPO / "examples")  # the "Your own Lightning project" block copies one
    env = cli_env(HPSEARCH_CAP_TRIALS="2", HPSEARCH_CAP_EPOCHS="2")
    env["PATH"] = os.pathsep.join([str(HPSEARCH.parent), env.get("PATH", "")])
    ran = 0
    for block in readme_blocks():
        if block.skip or block.lang not in RUNNABLE:
            continue
        if block.lang == "python":
            argv = [sys.executable, "-c", block.code]
        else:
            argv = ["bash", "-e", "-c", shell_script(block)]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"README.md line {block.line} ({block.lang or 'plain'}):\n{proc.stdout}\n{proc.stderr}"
        ran += 1
    assert ran >= 7
