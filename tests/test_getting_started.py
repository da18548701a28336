"""What a new user meets first: built-in studies by name, `hpsearch examples`, `python -m
hpsearch`, the live display on a real terminal (a pty), --quiet, and `hpsearch delete`."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import HPSEARCH, OPTUNA, TINY_STUDY, cli_env, run_cli

from hpsearch.study.builtin import BUILTIN_DIR, builtin_studies
from hpsearch.testing.synthetic import make_synthetic_study

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(args: list[str], cwd: Path, answer: str | None = None, timeout: float = 300) -> tuple[int, str]:
    """Run ``hpsearch ARGS`` with stdin and stdout on a pseudo-terminal (as in an interactive
    shell); type ``answer`` when asked. Returns the exit code and the output without escapes."""
    master, slave = os.openpty()
    env = cli_env(COLUMNS="120", LINES="30", TERM="xterm-256color")
    proc = subprocess.Popen([str(HPSEARCH), *args], cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if answer is not None and b"[y/N]" in b"".join(chunks):
                    os.write(master, answer.encode() + b"\r")
                    answer = None
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "")


@pytest.mark.slow
def test_builtin_study_by_name_from_an_empty_directory_and_a_path_wins(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("optimize", "quickstart", "--trials", "2", "--max-epochs", "1", cwd=empty)
    assert proc.returncode == 0, proc.stderr
    assert "[2/2] trial" in proc.stdout and (empty / "hpsearch.db").exists()
    assert optuna.get_all_study_names(f"sqlite:///{empty / 'hpsearch.db'}") == ["quickstart"]
    # a file of that name in the working directory wins over the built-in study
    (empty / "quickstart").write_text(yaml.safe_dump({**TINY_STUDY, "study": "mine", "trials": 1, "max_epochs": 1}))
    proc = run_cli("optimize", "quickstart", cwd=empty)
    assert proc.returncode == 0, proc.stderr
    assert sorted(optuna.get_all_study_names(f"sqlite:///{empty / 'hpsearch.db'}")) == ["mine", "quickstart"]
    missing = run_cli("optimize", "no-such-study", cwd=empty)
    assert missing.returncode == 2 and "built-in studies: accuracy-vs-overfitting, activations," in missing.stderr


def test_examples_lists_every_builtin_study_with_its_question(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hpsearch", "examples"], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    studies = builtin_studies()
    assert {s.name for s in studies} == {p.stem for p in BUILTIN_DIR.glob("*.yaml")} and len(studies) >= 7
    for s in studies:
        assert s.question, s.name
        assert re.search(rf"^{re.escape(s.name)}\s+{re.escape(s.question)}$", proc.stdout, re.M), s.name
    assert "Which activation function when?" in proc.stdout
    assert (Path(__file__).parents[1] / "studies" / "quickstart.yaml").read_text() == (BUILTIN_DIR / "quickstart.yaml").read_text()


@pytest.mark.slow
def test_live_display_on_a_terminal_and_quiet_for_scripts(write_study, tmp_path: Path) -> None:
    path = write_study(trials=3, max_epochs=3)
    code, out = run_in_pty(["optimize", str(path), "--storage", f"sqlite:///{tmp_path / 'live.db'}"], tmp_path)
    assert code == 0, out
    assert re.search(r"trials .*3/3", out) and "ETA" in out and "median trial" in out, out
    assert re.search(r"epochs .*[0-3]/3", out) and "trial 2 · val_acc" in out, out
    assert "[3/3] trial" in out and "best trial #" in out  # the trial lines stay in the scrollback
    quiet = run_cli("optimize", str(write_study(study="q", trials=2, max_epochs=1)), "--quiet",
                    "--storage", f"sqlite:///{tmp_path / 'q.db'}", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "[1/2]" not in quiet.stdout and "on sqlite" not in quiet.stdout
    assert quiet.stdout.startswith("study q: 2/2 finished") and "best trial #" in quiet.stdout


def _names(url: str) -> list[str]:
    proc = subprocess.run([str(OPTUNA), "studies", "--storage", url, "-f", "json"], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return sorted(row["name"] for row in json.loads(proc.stdout or "[]"))


@pytest.fixture
def three_studies(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'del.db'}"
    for name in ("exp", "exp:verify", "exp2", "exp:lr-sweep-keep-me"):
        make_synthetic_study(url, name, 3)
    optuna.load_study(study_name="exp:verify", storage=url).set_user_attr("source_study", "exp")  # as hpsearch verify links it
    return url


@pytest.mark.slow
def test_delete_removes_the_study_and_its_linked_studies(three_studies: str, tmp_path: Path) -> None:
    url = three_studies
    refused = run_cli("delete", "exp", "--storage", url, cwd=tmp_path)  # stdin is not a terminal
    assert refused.returncode == 2 and refused.stderr.splitlines() == [
        "error: refusing to delete exp, exp:verify without --yes (stdin is not a terminal)"
    ]
    assert _names(url) == ["exp", "exp2", "exp:lr-sweep-keep-me", "exp:verify"]
    code, out = run_in_pty(["delete", "exp", "--storage", url], tmp_path, answer="n")
    assert code == 1 and "Delete exp, exp:verify from sqlite:///" in out and "Aborted" in out
    assert _names(url) == ["exp", "exp2", "exp:lr-sweep-keep-me", "exp:verify"]
    code, out = run_in_pty(["delete", "exp", "--storage", url], tmp_path, answer="y")
    assert code == 0 and "deleted exp, exp:verify" in out, out
    assert _names(url) == ["exp2", "exp:lr-sweep-keep-me"]  # a name prefix is no link
    proc = run_cli("delete", "exp2", "--yes", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "deleted exp2"
    assert optuna.get_all_study_names(url) == ["exp:lr-sweep-keep-me"]
    missing = run_cli("delete", "exp2", "--yes", "--storage", url, cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: study 'exp2' not found")


def test_study_file_is_a_system_attr_and_0_1_databases_still_read(tmp_path: Path) -> None:
    import hpsearch
    from hpsearch.study.meta import STUDY_FILE_ATTR, stored_study_file

    url = f"sqlite:///{tmp_path / 'attrs.db'}"
    new = make_synthetic_study(url, "new", 3)
    (frozen,) = optuna.storages.RDBStorage(url).get_all_studies()
    assert "study_file" not in new.user_attrs and "study: quickstart" in frozen.system_attrs[STUDY_FILE_ATTR]
    # `optuna studies` stays narrow: no study file in its table (0.1: ~800 characters)
    proc = subprocess.run([str(OPTUNA), "studies", "--storage", url], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and max(len(line) for line in proc.stdout.splitlines() if " new " in line) < 200
    # a study as hpsearch 0.1 wrote it: the whole study file as the user attr `study_file`
    text = (BUILTIN_DIR / "quickstart.yaml").read_text()
    old = optuna.create_study(storage=url, study_name="old", direction="maximize")
    for key, value in {"study_file": text, "metric": "val_acc", "task": "digits-mlp"}.items():
        old.set_user_attr(key, value)
    old.add_trial(optuna.trial.create_trial(value=0.9, params={"keep_prob": 0.8},
                                            distributions={"keep_prob": optuna.distributions.FloatDistribution(0.5, 1.0)}))
    assert stored_study_file(old) == text
    best = hpsearch.best_trial("old", storage=url)
    assert best.params["optimizer"] == "adamw" and best.params["keep_prob"] == 0.8  # fixed settings from the old attr
