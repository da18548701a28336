"""A new user's path: the built wheel in a fresh virtualenv outside the repository (torch
installed first, the CPU build 2.13.0), then a built-in study run from an empty directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

TORCH = "torch==2.13.0"  # the Makefile's default: the CPU build on the reference machine


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_in_a_fresh_venv_runs_a_builtin_study_from_an_empty_directory(tmp_path: Path) -> None:
    # nothing of the repository or the test environment leaks in
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("HPSEARCH_", "VIRTUAL_ENV"))}
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)], tmp_path, env)
    (wheel,) = dist.glob("hpsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hpsearch/studies/quickstart.yaml" in names and "hpsearch/__main__.py" in names
    assert len([n for n in names if n.startswith("hpsearch/studies/") and n.endswith(".yaml")]) == len(list((REPO / "studies").glob("*.yaml")))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    py, hpsearch = venv / "bin" / "python", venv / "bin" / "hpsearch"
    started = time.perf_counter()
    # --no-compile: pip would byte-compile every module of torch, plotly, scipy... (most of the
    # install time on 2 cores); Python compiles what it imports when it imports it.
    _run([str(py), "-m", "pip", "install", "-q", "--no-compile", TORCH], tmp_path, env)
    _run([str(py), "-m", "pip", "install", "-q", "--no-compile", str(wheel)], tmp_path, env)
    installed = time.perf_counter() - started
    versions = _run([str(py), "-c", "import torch, hpsearch; print(torch.__version__, hpsearch.__file__)"], tmp_path, env).stdout
    assert versions.startswith("2.13.0") and str(venv) in versions and "nvidia" not in _run([str(py), "-m", "pip", "freeze"], tmp_path, env).stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _run([str(hpsearch), "optimize", "quickstart", "--trials", "4", "--max-epochs", "2"], empty, env, timeout=300)
    assert "[4/4] trial" in proc.stdout and (empty / "hpsearch.db").exists()
    assert "best trial #" in proc.stdout
    examples = _run([str(py), "-m", "hpsearch", "examples"], empty, env).stdout
    assert "quickstart" in examples and "Which activation function when?" in examples
    print(f"install (torch first, then the wheel): {installed:.0f} s; run: {time.perf_counter() - started - installed:.0f} s")
