"""examples/image-folder: its documented commands run from a fresh copy (make_images.py, then
``hpsearch optimize`` and ``hpsearch answer`` on the study file), ``verify`` and
``export-model`` work on its studies, and its images are read from disk by DataLoader workers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli_env, run_cli
from test_readme import link_repo_dirs, page_blocks, run_block

EXAMPLE = REPO / "examples" / "image-folder"
CAPS = {"HPSEARCH_CAP_TRIALS": "2", "HPSEARCH_CAP_EPOCHS": "2"}


def fresh_copy(tmp_path: Path) -> Path:
    """The example as a fresh clone has it, with its images written by make_images.py."""
    project = tmp_path / "my-images"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data", "*.db", "*-models", "__pycache__"))
    out = subprocess.run([sys.executable, "make_images.py"], cwd=project, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(list((project / "data" / "images").glob("*/*/*.png"))) == 540
    return project


def test_images_are_read_from_disk_by_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = fresh_copy(tmp_path)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    from imgfolder.data import ImageFolderData

    data = ImageFolderData(root="data/images", batch_size=16, num_workers=2)
    data.setup("fit")
    loader = data.train_dataloader()
    assert loader.num_workers == 2
    assert all(isinstance(path, Path) and path.suffix == ".png" for path, _ in loader.dataset.samples)  # paths, not pixels
    x, y = next(iter(loader))
    assert x.shape == (16, 3, 16, 16) and y.shape == (16,)


@pytest.mark.slow
def test_documented_commands_run(tmp_path: Path) -> None:
    # the README block itself (cp -r, make_images.py, optimize, answer), as test_readme.py runs blocks
    (block,) = [b for b in page_blocks("README.md") if "cp -r examples/image-folder" in b.code]
    link_repo_dirs(tmp_path)
    out = run_block("README.md", block, tmp_path)
    assert "next: hpsearch answer image-folder-l2" in out.stdout
    project = tmp_path / "my-images"
    assert len(list((project / "data" / "images").glob("*/*/*.png"))) == 540
    db = f"sqlite:///{project / 'images.db'}"
    out = run_cli("answer", "image-folder-l2", "--storage", db, "--json", cwd=project, **CAPS)  # the block's retrains, reused
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert {row["level"] for row in answer["levels"]} == {"fc", "weights"}
    assert all(row["mean"] is not None and row["n"] == 3 for row in answer["levels"])  # the study's seeds: 3
    out = run_cli("report", "image-folder-l2", "--storage", db, "--out", "report", cwd=project)
    assert out.returncode == 0, out.stderr
    out = run_cli("verify", "image-folder-l2:fc", "--storage", db, "--top", "1", "--seeds", "2", cwd=project, **CAPS)
    assert out.returncode == 0, out.stderr
    out = run_cli("export-model", "image-folder-l2:fc", "--storage", db, "--out", "fc.pt", cwd=project)
    assert out.returncode == 0, out.stderr
    load = "from hpsearch.models.load import load_model; m, info = load_model('fc.pt'); print(type(m).__name__, info['task'])"
    out = subprocess.run([sys.executable, "-c", load], cwd=project, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["SmallCNN", "lightning:imgfolder.models.SmallCNN+imgfolder.data.ImageFolderData"]
    # the same stored study, rebuilt from another directory, imports nothing
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run_cli("verify", "image-folder-l2:fc", "--storage", db, "--top", "1", "--seeds", "2", cwd=elsewhere, **CAPS)
    assert out.returncode == 2 and "only from the project's Python files under the current directory" in out.stderr
