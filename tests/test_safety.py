"""Safe by default (issue 23): no code from a model file, a study name or a study file, no
silent overwrite or deletion. Every refusal is one line, exit 2, and writes or runs nothing."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_STUDY, cli_env, run_cli

from hpsearch.cli import main
from hpsearch.errors import ConfigError
from hpsearch.models.checkpoint import FORMAT, read_checkpoint
from hpsearch.models.load import load_model

# A study name that closes the docstring of a naively generated loader and runs code.
EVIL_NAME = 'evil"""; open("PWNED", "w").write("pwned"); """'


class _Payload:
    """Unpickled, it would write a file: what a malicious ``best.pt`` does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _malicious(path: Path, marker: Path, kind: str) -> Path:
    if kind == "torch-save":  # a real model file with one extra object in it
        torch.save({"format": FORMAT, "state_dict": {"w": torch.zeros(2)}, "extra": _Payload(marker)}, path)
    else:  # a bare pickle named .pt
        path.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    return path


def _one_line_exit_2(result) -> str:
    err = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("kind", ["torch-save", "bare-pickle"])
def test_the_loader_refuses_a_malicious_pickle_without_running_it(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "marker"
    path = _malicious(tmp_path / "best.pt", marker, kind)
    with pytest.raises(ConfigError) as info:
        load_model(path)
    assert "refused" in str(info.value) and len(str(info.value).splitlines()) == 1
    assert not marker.exists()


def test_a_file_that_is_not_a_model_is_one_line(tmp_path: Path) -> None:
    torch.save({"format": FORMAT, "state_dict": {"w": "not a tensor"}}, tmp_path / "odd.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00junk")
    for name in ("odd.pt", "junk.pt", "missing.pt"):
        with pytest.raises(ConfigError) as info:
            read_checkpoint(tmp_path / name)
        assert len(str(info.value).splitlines()) == 1 and name in str(info.value)


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A study named ``EVIL_NAME`` with one trial and its kept model: (storage URL, folder)."""
    import yaml

    from hpsearch.api import load_study_file
    from hpsearch.run.runner import run_study

    folder = tmp_path_factory.mktemp("kept")
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump({**TINY_STUDY, "study": EVIL_NAME, "trials": 1, "max_epochs": 1}, sort_keys=False))
    url = f"sqlite:///{folder / 'studies.db'}"
    run_study(load_study_file(path), url)
    return url, folder


def _export(url: str, *args: str):
    return CliRunner().invoke(main, ["export-model", EVIL_NAME, "--storage", url, *args])


@pytest.mark.slow
def test_the_loader_snippet_quotes_the_study_name(kept: tuple[str, Path], tmp_path: Path) -> None:
    """A name holding ``\"\"\"`` stays a string in the snippet: running it loads the model and
    runs nothing else."""
    url, _ = kept
    out = tmp_path / "best.pt"
    result = _export(url, "--out", str(out))
    assert result.exit_code == 0, result.output
    code = out.with_suffix(".py").read_text()
    strings = [n.value for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert EVIL_NAME in strings
    calls = {ast.unparse(n.func) for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)}
    assert calls == {"load_model", "print"}
    ran = subprocess.run([sys.executable, str(out.with_suffix(".py"))], cwd=tmp_path, env=cli_env(),
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert not (tmp_path / "PWNED").exists()
    assert repr(EVIL_NAME) in ran.stdout


@pytest.mark.slow
def test_export_never_overwrites_or_creates_directories_without_force(kept: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = kept
    (tmp_path / "train.py").write_text("print('my training script')\n")
    err = _one_line_exit_2(_export(url, "--out", str(tmp_path / "train.pt")))
    assert "train.py exists; pass --force" in err
    assert (tmp_path / "train.py").read_text() == "print('my training script')\n"
    assert not (tmp_path / "train.pt").exists()

    (tmp_path / "best.pt").write_bytes(b"an older export")
    err = _one_line_exit_2(_export(url, "--out", str(tmp_path / "best.pt")))
    assert "best.pt exists; pass --force" in err and (tmp_path / "best.pt").read_bytes() == b"an older export"

    deep = tmp_path / "new" / "dir" / "m.pt"
    err = _one_line_exit_2(_export(url, "--out", str(deep)))
    assert "does not exist; pass --force to create it" in err and not (tmp_path / "new").exists()

    err = _one_line_exit_2(_export(url, "--out", "/dev/null", "--force"))
    assert "not a regular file" in err

    assert _export(url, "--out", str(deep), "--force").exit_code == 0
    assert _export(url, "--out", str(tmp_path / "best.pt"), "--force").exit_code == 0
    assert read_checkpoint(tmp_path / "best.pt")["study"] == EVIL_NAME


@pytest.mark.slow
def test_export_refuses_a_kept_model_replaced_by_a_malicious_pickle(kept: tuple[str, Path], tmp_path: Path) -> None:
    url, folder = kept
    [kept_file] = [p for p in (folder / "studies-models").iterdir() if p.is_file()]
    original = kept_file.read_bytes()
    marker = tmp_path / "marker"
    try:
        _malicious(kept_file, marker, "torch-save")
        err = _one_line_exit_2(_export(url, "--out", str(tmp_path / "best.pt")))
        assert "refused" in err
    finally:
        kept_file.write_bytes(original)
    assert not marker.exists() and not (tmp_path / "best.pt").exists() and not (tmp_path / "best.py").exists()


def test_delete_removes_only_studies_linked_by_a_stored_link(tmp_path: Path) -> None:
    """``exp:lr-sweep-keep-me`` merely starts with ``exp:``; ``exp:verify`` and ``renamed``
    carry the link ``source_study: exp`` (set by ``hpsearch verify``)."""
    import optuna

    url = f"sqlite:///{tmp_path / 'del.db'}"
    for name in ("exp", "exp:verify", "exp:lr-sweep-keep-me", "renamed", "other"):
        study = optuna.create_study(study_name=name, storage=url)
        if name in ("exp:verify", "renamed"):
            study.set_user_attr("source_study", "exp")
    result = CliRunner().invoke(main, ["delete", "exp", "--storage", url], input="")
    assert result.exit_code == 2 and "refusing to delete exp, exp:verify, renamed without --yes" in result.stderr
    result = CliRunner().invoke(main, ["delete", "exp", "--yes", "--storage", url])
    assert result.exit_code == 0 and result.stdout.strip() == "deleted exp, exp:verify, renamed"
    assert sorted(optuna.get_all_study_names(url)) == ["exp:lr-sweep-keep-me", "other"]


# --- custom task factories: only functions marked with @hpsearch.task are imported and called


def _optimize(path: Path, **kwargs):
    return CliRunner().invoke(main, ["optimize", str(path)], **kwargs)


def _study_file(tmp_path: Path, task: str) -> Path:
    import yaml

    path = tmp_path / "study.yaml"
    fixed = {k: v for k, v in TINY_STUDY["fixed"].items() if k not in ("hidden_units", "hidden_layers")}
    path.write_text(yaml.safe_dump({**TINY_STUDY, "task": task, "fixed": fixed}, sort_keys=False))
    return path


@pytest.mark.parametrize("decorator", ["", "@task\n", "@hpsearch.tasks.base.task\n", "@other.task\n"])
def test_a_module_without_a_marked_factory_is_never_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decorator: str) -> None:
    """The module's source is read, not run: its import-time code never runs, whatever else
    it defines (a local ``task`` decorator, another object's)."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the working directory added to it is removed afterwards
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "imported"
    name = f"side_effect_tasks_{abs(hash(decorator))}"
    (tmp_path / f"{name}.py").write_text(
        "import types\n\nimport hpsearch\n\nother = types.SimpleNamespace(task=lambda f: f)\n"
        f"open({str(marker)!r}, 'w').write('module code ran')\n\n\ndef task(f):\n    return f\n\n\n"
        f"{decorator}def make():\n    raise SystemExit('called')\n"
    )
    err = _one_line_exit_2(_optimize(_study_file(tmp_path, f"{name}:make")))
    assert "not a task factory" in err and "@hpsearch.task" in err
    assert not marker.exists() and name not in sys.modules
    assert not (tmp_path / "hpsearch.db").exists()


def test_an_unmarked_factory_is_never_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded already (in this process) or not (a fresh CLI process): refused before the call."""
    import custom_tasks  # noqa: F401  (loaded: the function's own mark is checked)

    marker = tmp_path / "called"
    monkeypatch.setenv("HPSEARCH_TEST_MARKER", str(marker))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    path = _study_file(tmp_path, "custom_tasks:unmarked_factory")
    assert "not a task factory" in _one_line_exit_2(_optimize(path))
    proc = run_cli("optimize", str(path), cwd=tmp_path, HPSEARCH_TEST_MARKER=str(marker))
    assert proc.returncode == 2 and "not a task factory" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "hpsearch.db").exists()


@pytest.mark.parametrize("ref", ["code:interact", "tempfile:mkdtemp", "os:system", "builtins:exec", "pdb:set_trace"])
def test_library_functions_are_not_task_factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ref: str) -> None:
    """``code:interact`` would run what is on stdin; ``tempfile:mkdtemp`` would leave a directory."""
    import tempfile

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    marker = tmp_path / "ran"
    result = _optimize(_study_file(tmp_path, ref), input=f"open({str(marker)!r}, 'w').write('stdin ran')\n")
    assert "not a task factory" in _one_line_exit_2(result)
    assert not marker.exists() and list((tmp_path / "tmp").iterdir()) == []


# --- the model directory from the environment is checked like the study file's


@pytest.mark.parametrize("value", ["/proc/self/models", "/dev/null", "FILE", "FILE/models"])
def test_model_dir_from_the_environment_is_checked_before_the_study_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    path = _study_file(tmp_path, "digits-mlp")
    monkeypatch.setenv("HPSEARCH_MODEL_DIR", value.replace("FILE", str(path)))
    err = _one_line_exit_2(_optimize(path))
    assert err.startswith("error: $HPSEARCH_MODEL_DIR: ")
    assert not (tmp_path / "hpsearch.db").exists()
