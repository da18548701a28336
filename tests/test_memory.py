"""keep_freed_memory: freed tensor blocks are reused instead of page-faulted in again (real processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

LOOP = """
import resource, sys, torch
from hpsearch.run.memory import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
def step():  # 4 MiB tensors made and freed, as a training step does with its activations
    return (torch.ones(1024 * 1024) * 2).sum()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", LOOP, mode], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1])


def test_freed_blocks_are_reused_instead_of_faulted_in_every_step() -> None:
    off, on = _faults("off"), _faults("on")
    assert off > 50 * 500  # glibc's default: every 4 MiB block is mapped and faulted in afresh (1,024 pages)
    assert on < off / 20
