"""Every Python and shell block of README.md and of the reference pages in docs/ runs as
written (tiny budgets through $HPSEARCH_CAP_TRIALS / $HPSEARCH_CAP_EPOCHS), each page in its own
empty directory with its blocks in order. A block preceded by
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

FENCE = re.compile(r"^```([a-z]*)[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!-- readme-test: skip \((.+?)\) -->\s*$")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")
RUNNABLE = {"python", "bash", "sh", "console", ""}
#: docs pages whose blocks are not run, with the reason; every other docs/*.md page is run.
NOT_RUN = {
    "studies.md": "full-budget reproductions of the answered questions (hours); "
    "tests/test_studies.py runs every built-in study at a tiny budget",
}
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md") if p.name not in NOT_RUN)]


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def runs(self) -> bool:
        return self.skip is None and self.lang in RUNNABLE


def page_blocks(page: str) -> list[Block]:
    """The fenced blocks of ``page`` (relative to the repository) in order, with their skip reason (if any)."""
    text = (REPO / page).read_text()
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


def test_pages_mark_few_skips_and_every_block_is_known() -> None:
    blocks = {page: page_blocks(page) for page in PAGES}
    assert len(blocks["README.md"]) >= 6 and sum(b.runs for b in blocks["README.md"]) >= 3
    skipped = [(page, b.line, b.skip) for page, bs in blocks.items() for b in bs if b.skip]
    assert len(skipped) == 5, skipped
    # a block skipped here because another test runs it names that test, which must exist and find it
    elsewhere = [(page, b) for page, bs in blocks.items() for b in bs if b.skip and b.skip.startswith("tests/")]
    assert len(elsewhere) == 1
    for page, block in elsewhere:
        other = (REPO / block.skip.split()[0]).read_text()
        assert "run_block(" in other and page in other, block.skip
    unknown = [(page, b.line, b.lang) for page, bs in blocks.items() for b in bs if b.lang not in RUNNABLE | {"yaml", "text"}]
    assert not unknown
    assert sum(b.runs for bs in blocks.values() for b in bs) >= 10


def test_readme_links_every_docs_page_and_every_relative_link_resolves() -> None:
    readme = (REPO / "README.md").read_text()
    for page in (REPO / "docs").glob("*.md"):
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
    for page in [*PAGES, *(f"docs/{name}" for name in NOT_RUN)]:
        text = (REPO / page).read_text()
        for target, _ in LINK.findall(text):
            if "://" in target:
                continue
            assert ((REPO / page).parent / target).exists(), f"{page}: broken link {target}"


def block_env() -> dict[str, str]:
    """The environment blocks run in: the test's ``hpsearch`` first on PATH, tiny budgets."""
    env = cli_env(HPSEARCH_CAP_TRIALS="2", HPSEARCH_CAP_EPOCHS="2")
    env["PATH"] = os.pathsep.join([str(HPSEARCH.parent), env.get("PATH", "")])
    return env


def run_block(page: str, block: Block, cwd: Path) -> subprocess.CompletedProcess:
    """Run one block in ``cwd`` (python with this interpreter, the others with ``bash -e``); it must exit 0."""
    if block.lang == "python":
        argv = [sys.executable, "-c", block.code]
    else:
        argv = ["bash", "-e", "-c", shell_script(block)]
    proc = subprocess.run(argv, cwd=cwd, env=block_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{page} line {block.line} ({block.lang or 'plain'}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def link_repo_dirs(cwd: Path) -> None:
    """``studies/`` and ``examples/`` as a clone has them (the "Your own Lightning project" block copies one)."""
    (cwd / "studies").symlink_to(REPO / "studies")
    (cwd / "examples").symlink_to(REPO / "examples")


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.runs for b in page_blocks(p))])
def test_every_block_of_a_page_runs(page: str, tmp_path: Path) -> None:
    link_repo_dirs(tmp_path)
    ran = 0
    for block in page_blocks(page):
        if block.runs:
            run_block(page, block, tmp_path)
            ran += 1
    assert ran >= 1
