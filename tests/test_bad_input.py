"""Bad input, as a table: one clear line on stderr naming file and key, exit 2, no traceback,
nothing written to the database."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import TINY_STUDY, run_cli

from hpsearch.cli import main


def study(**changes: Any) -> str:
    data = copy.deepcopy(TINY_STUDY)
    for dotted, value in changes.items():
        keys = dotted.split("__")
        target = data
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        if value is DELETE:
            target.pop(keys[-1])
        else:
            target[keys[-1]] = value
    return yaml.safe_dump(data, sort_keys=False)


DELETE = object()

# (case id, study file text, extra CLI args, substrings the error line must contain)
CASES: list[tuple[str, str | None, list[str], list[str]]] = [
    ("malformed-yaml", "study: [unclosed\ntrials: 3\n", [], ["malformed YAML", "line"]),
    ("not-a-mapping", "- a\n- b\n", [], ["YAML mapping"]),
    ("unknown-top-key", study(trails=40), [], ["trails", "unknown key"]),
    ("missing-required", study(trials=DELETE), [], ["trials", "required"]),
    ("wrong-type", study(trials="forty"), [], ["trials", "integer"]),
    ("float-trials", study(trials=2.5), [], ["trials"]),
    ("zero-trials", study(trials=0), [], ["trials", "greater than 0"]),
    ("negative-epochs", study(max_epochs=-1), [], ["max_epochs", "greater than 0"]),
    ("bad-direction", study(direction="upward"), [], ["direction", "maximize"]),
    ("inverted-range", study(search__learning_rate={"low": 0.1, "high": 0.01}), [], ["search.learning_rate", "low", "high"]),
    ("empty-range", study(search__learning_rate={"low": 0.01, "high": 0.01}), [], ["search.learning_rate", "empty or inverted"]),
    ("log-range-nonpositive", study(search__weight_decay={"low": 0.0, "high": 0.1, "log": True}), [], ["search.weight_decay", "low > 0"]),
    ("keep-prob-range-above-1", study(search__keep_prob={"low": 0.5, "high": 1.5}), [], ["search.keep_prob.high", "(0, 1]"]),
    ("keep-prob-fixed-zero", study(search__keep_prob=DELETE, fixed__keep_prob=0.0), [], ["fixed.keep_prob", "(0, 1]"]),
    ("keep-prob-bool", study(search__keep_prob=DELETE, fixed__keep_prob=True), [], ["fixed.keep_prob"]),
    ("searched-and-fixed", study(fixed__batchnorm="none"), [], ["batchnorm", "both searched and fixed"]),
    ("unknown-task", study(task="imagenet-resnet"), [], ["task", "digits-mlp", "digits-cnn"]),
    ("custom-task-missing-module", study(task="no_such_module:factory"), [], ["task", "no_such_module"]),
    ("custom-task-not-callable", study(task="custom_tasks:not_a_task"), [], ["task", "not_a_task"]),
    ("custom-task-wrong-type", study(task="custom_tasks:returns_wrong_type"), [], ["task", "expected hpsearch.tasks.Task"]),
    ("unknown-metric", study(metric="val_f1"), [], ["metric", "val_f1", "val_acc"]),
    ("unknown-choice", study(search__batchnorm=["none", "sideways"]), [], ["search.batchnorm", "sideways", "before_activation"]),
    ("concat-placement-on-mlp", study(search__batchnorm=["none", "after_concat"]), [], ["search.batchnorm", "after_concat"]),
    ("unknown-parameter", study(search__dropout_rate=[0.1, 0.2]), [], ["search.dropout_rate", "unknown parameter", "keep_prob"]),
    ("unknown-range-key", study(search__learning_rate={"low": 1e-3, "high": 1e-2, "logg": True}), [],
     ["search.learning_rate", "logg", "unknown key"]),
    ("range-for-categorical", study(search__batchnorm={"low": 0, "high": 1}), [], ["search.batchnorm", "categorical"]),
    ("empty-choices", study(search__l2_mode=[]), [], ["search.l2_mode", "empty"]),
    ("scalar-search-entry", study(search__l2_mode="loss"), [], ["search", "l2_mode", "list of choices"]),
    ("int-param-float-range", study(search__hidden_units={"low": 8.5, "high": 64}, fixed__hidden_units=DELETE), [],
     ["search.hidden_units.low", "integer"]),
    ("unknown-sampler", study(sampler={"type": "bayes"}), [], ["sampler.type", "tpe"]),
    ("unknown-sampler-option", study(sampler={"type": "tpe", "n_startup": 5}), [], ["sampler.n_startup", "n_startup_trials"]),
    ("unknown-pruner-option", study(pruner={"type": "median", "warmup": 2}), [], ["pruner.warmup", "n_warmup_steps"]),
    ("percentile-without-percentile", study(pruner={"type": "percentile"}), [], ["pruner.percentile", "required"]),
    ("missing-file", None, [], ["study file not found"]),
    ("cli-zero-trials", study(), ["--trials", "0"], ["trials", "greater than 0"]),
    ("cli-zero-max-epochs", study(), ["--max-epochs", "0"], ["max_epochs", "greater than 0"]),
    ("malformed-storage-url", study(), ["--storage", "not a url"], ["storage", "malformed URL"]),
    ("sqlite-missing-directory", study(), ["--storage", "sqlite:////nonexistent-dir/x/studies.db"], ["storage", "does not exist"]),
    ("unreachable-postgres", study(), ["--storage", "postgresql+psycopg2://user:s3cret-pw@127.0.0.1:1/db"], ["storage", "cannot open", "***"]),
]


@pytest.mark.parametrize(("text", "args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None, args: list[str], expected: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    result = CliRunner().invoke(main, ["optimize", str(path), *args])
    err = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    if not any(a.startswith("--storage") for a in args):
        assert "bad.yaml" in err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "s3cret-pw" not in result.output
    assert not (tmp_path / "hpsearch.db").exists()


@pytest.mark.parametrize("case", ["malformed-yaml", "unknown-parameter", "unreachable-postgres"])
def test_bad_input_in_a_real_process(tmp_path: Path, case: str) -> None:
    text, args, expected = next(c[1:] for c in CASES if c[0] == case)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = run_cli("optimize", str(path), *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert all(fragment in proc.stderr for fragment in expected)
    assert "s3cret-pw" not in proc.stderr
    assert list(tmp_path.iterdir()) == [path]


def test_unknown_study_for_best_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["best", "nope", "--storage", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 2 and "no study database" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_click_usage_errors_are_exit_2() -> None:
    result = CliRunner().invoke(main, ["optimize"])
    assert result.exit_code == 2 and "Missing argument" in result.output


@pytest.mark.parametrize("command", [["studies"], ["best", "tiny"]])
def test_read_commands_on_a_database_that_is_not_optuna(tmp_path: Path, command: list[str]) -> None:
    import sqlite3

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
    result = CliRunner().invoke(main, [*command, "--storage", f"sqlite:///{db}"])
    assert result.exit_code == 2
    assert "not an Optuna study database" in result.stderr and len(result.stderr.strip().splitlines()) == 1
