"""Bad input, as a table: one clear line on stderr naming file and key, exit 2, no traceback,
nothing written to the database."""

from __future__ import annotations

import copy
import os
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


def toy(task: str) -> str:
    """A valid study for the test task ``custom_tasks:toy_regression`` run through ``task``."""
    return study(task=f"custom_tasks:{task}", fixed__hidden_units=DELETE, fixed__hidden_layers=DELETE)


# A real "billion laughs" document: 9 aliases per level, 9 levels, under 600 bytes.
ALIAS_BOMB = "study: tiny\n" + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)
MANY_ALIASES = "study: tiny\nx: &x 1\ny: [" + ", ".join(["*x"] * 150) + "]\n"

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
    # issue 11: hostile and careless files
    ("alias-bomb", ALIAS_BOMB, [], ["expands to more than 10000 values"]),
    ("too-many-aliases", MANY_ALIASES, [], ["more than 100 aliases"]),
    ("duplicate-top-key", study() + "trials: 50\n", [], ["duplicate key 'trials'", "line"]),
    ("duplicate-nested-key", study().replace("    log: true\n", "    log: true\n    low: 0.005\n", 1), [],
     ["duplicate key 'low'", "first on line"]),
    ("step-nan", study(search__keep_prob={"low": 0.5, "high": 1.0, "step": float("nan")}), [], ["search.keep_prob.step", "finite"]),
    ("step-inf", study(search__keep_prob={"low": 0.5, "high": 1.0, "step": float("inf")}), [], ["search.keep_prob.step", "finite"]),
    ("step-not-dividing", study(search__keep_prob={"low": 0.5, "high": 1.0, "step": 0.3}), [],
     ["search.keep_prob.step", "does not divide", "[0.5, 1.0]"]),
    ("int-step-not-dividing", study(search__hidden_units={"low": 8, "high": 64, "step": 10}, fixed__hidden_units=DELETE), [],
     ["search.hidden_units.step", "does not divide"]),
    ("duplicate-choices", study(search__batchnorm=["none", "before_activation", "none"]), [], ["search.batchnorm", "'none' is listed twice"]),
    ("sampler-option-wrong-type", study(sampler={"type": "tpe", "n_startup_trials": "x"}), [], ["sampler.n_startup_trials", "integer", "'x'"]),
    ("sampler-option-nan", study(sampler={"type": "cmaes", "sigma0": float("nan")}), [], ["sampler.sigma0", "finite"]),
    ("pruner-option-wrong-type", study(pruner={"type": "hyperband", "reduction_factor": "x"}), [], ["pruner.reduction_factor", "integer"]),
    ("pruner-option-bool-for-int", study(pruner={"type": "median", "n_warmup_steps": True}), [], ["pruner.n_warmup_steps", "integer"]),
    ("task-os-system", study(task="os:system"), [], ["task", "os:system", "not a task factory"]),
    ("task-builtins-eval", study(task="builtins:eval"), [], ["task", "builtins:eval", "not a task factory"]),
    ("task-builtins-exit", study(task="builtins:exit"), [], ["task", "builtins:exit", "not a task factory"]),
    ("task-factory-raises", study(task="custom_tasks:raising_factory"), [], ["task", "failed", "ValueError: factory exploded"]),
    ("task-factory-exits", study(task="custom_tasks:exiting_factory"), [], ["task", "failed", "SystemExit"]),
    ("load-data-raises", toy("data_raises"), [], ["load_data failed", "OSError: dataset server unreachable"]),
    ("load-data-exits", toy("data_exits"), [], ["load_data failed", "SystemExit"]),
    ("load-data-numpy", toy("numpy_data"), [], ["train x is numpy.ndarray", "torch.Tensor", "torch.as_tensor"]),
    ("load-data-mismatched", toy("mismatched_data"), [], ["train has 180 inputs but 179 targets"]),
    ("study-name-too-long", study(study="s" * 600), [], ["study", "at most 200 characters"]),
    ("study-name-nul", study(study="a\x00b"), [], ["study", "cannot contain '\\x00'"]),
    ("study-name-dotdot", study(study=".."), [], ["study", "not a usable study name"]),
    ("study-name-slash", study(study="a/b"), [], ["study", "cannot contain '/'"]),
    ("cli-study-name-dotdot", study(), ["--study-name", ".."], ["study", "not a usable study name"]),
    ("workers-over-limit", study(), ["--workers", "1000"], ["--workers", "1000", "limit"]),
    ("workers-zero", study(), ["--workers", "0"], ["--workers", "outside 1..64"]),
    ("postgres-without-driver", study(), ["--storage", "postgresql://user:s3cret-pw@127.0.0.1:1/db"],
     ["storage", "cannot open postgresql+psycopg2://user:***@"]),
    # issue 23: checks that came late (after the study was created) or never
    ("constraint-nan", study(constraints={"train_val_gap": {"max": float("nan")}}), [], ["constraints.train_val_gap.max", "finite", "nan"]),
    ("constraint-inf", study(constraints={"train_val_gap": {"min": float("-inf")}}), [], ["constraints.train_val_gap.min", "finite"]),
    ("model-dir-nul", study(model_dir="models\x00x"), [], ["model_dir", "cannot contain '\\x00'"]),
    ("model-dir-proc", study(model_dir="/proc/self/models"), [], ["model_dir", "/proc", "system path"]),
    ("model-dir-dev-null", study(model_dir="/dev/null"), [], ["model_dir", "/dev/null", "system path"]),
    ("model-dir-is-a-file", study(model_dir="bad.yaml"), [], ["model_dir", "bad.yaml exists and is not a directory"]),
    ("model-dir-under-a-file", study(model_dir="bad.yaml/models"), [], ["model_dir", "bad.yaml is not a directory"]),
    ("baselines-over-trials", study(trials=1, baselines={"a": {"learning_rate": 0.005}, "b": {"learning_rate": 0.002}}), [],
     ["baselines", "2 baselines but trials is 1"]),
    ("cli-trials-below-baselines", study(baselines={"a": {"learning_rate": 0.005}, "b": {"learning_rate": 0.002}}), ["--trials", "1"],
     ["baselines", "2 baselines but trials is 1"]),
    ("l2-mode-without-weight-decay", study(search__weight_decay=[0.0], search__l2_mode=["decoupled", "loss"]), [],
     ["search.l2_mode", "has no effect", "weight_decay > 0", "search.weight_decay only holds 0.0"]),
    ("l2-scope-without-weight-decay", study(search__weight_decay=[0.0, 0], search__l2_scope=["all", "fc"]), [],
     ["search.l2_scope", "has no effect"]),
    ("momentum-without-sgd", study(fixed__optimizer=DELETE, search__optimizer=["adamw", "adam"], search__momentum={"low": 0.5, "high": 0.9}), [],
     ["search.momentum", "optimizer is sgd", "search.optimizer only holds adamw, adam"]),
    ("active-if-circular", toy("circular_conditions"), [], ["task toy-regression", "circular (width -> behaviour -> width)"]),
    ("active-if-self", toy("self_condition"), [], ["task toy-regression", "circular (width -> width)"]),
    ("active-if-unknown", toy("condition_on_unknown"), [], ["task toy-regression", "active_if of width reads 'depth'"]),
    ("task-unmarked", toy("unmarked_factory"), [], ["task", "not a task factory", "@hpsearch.task"]),
    ("task-tempfile-mkdtemp", study(task="tempfile:mkdtemp"), [], ["task", "not a task factory"]),
    ("task-import-side-effect", study(task="antigravity:x"), [], ["task", "defines no function 'x' marked"]),
    ("task-not-a-reference", study(task="os.path:join()"), [], ["task", "not a custom task reference"]),
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
    if not any(a.startswith("--storage") or a == "--workers" for a in args):
        assert "bad.yaml" in err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "s3cret-pw" not in result.output
    assert not (tmp_path / "hpsearch.db").exists()


@pytest.mark.slow
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


@pytest.mark.parametrize("case", ["sampler-option-wrong-type", "pruner-option-wrong-type", "load-data-raises", "step-not-dividing",
                                  "baselines-over-trials", "model-dir-dev-null"])
def test_bad_input_with_a_worker_pool_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """``--workers 2`` checks everything before the pool creates the study."""
    text, _, expected = next(c[1:] for c in CASES if c[0] == case)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["optimize", str(path), "--workers", "2"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert all(fragment in result.stderr for fragment in expected)
    assert list(tmp_path.iterdir()) == [path]


def _special_file(kind: str, tmp_path: Path) -> str:
    """A study-file path that is not an ordinary small YAML file."""
    if kind == "dev-zero":
        return "/dev/zero"
    path = tmp_path / "special.yaml"
    if kind == "fifo":
        os.mkfifo(path)  # nobody ever writes to it: opening it for reading would block
    elif kind == "directory":
        path.mkdir()
    elif kind == "oversized":
        path.write_text(study() + "# padding\n" * 200_000)
    elif kind == "not-utf8":
        path.write_bytes(study().encode() + b"# \xff\xfe\n")
    return str(path)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("dev-zero", "not a regular file"),
        ("fifo", "not a regular file"),
        ("directory", "not a regular file"),
        ("oversized", "a study file is at most 1000000 bytes"),
        ("not-utf8", "not UTF-8"),
    ],
)
def test_study_file_that_is_not_a_small_regular_file(tmp_path: Path, kind: str, expected: str) -> None:
    """Bounded reads of regular files only: /dev/zero, a FIFO (would hang), a directory, a
    huge file, binary junk: one line, exit 2, in a real process with a time limit."""
    path = _special_file(kind, tmp_path)
    proc = run_cli("optimize", path, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert expected in proc.stderr and path in proc.stderr
    assert not (tmp_path / "hpsearch.db").exists()


def test_alias_bomb_fails_fast_and_quotes_nothing_of_it(tmp_path: Path) -> None:
    """The 9^9 expansion is never built or printed: the error comes at once and stays short."""
    import time

    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["optimize", str(path)])
    assert result.exit_code == 2 and time.perf_counter() - started < 5
    assert len(result.stderr) < 300 and "lol" not in result.stderr


def test_yaml_12_numbers_and_long_values_in_messages() -> None:
    """``1e-4`` is a float in every numeric field (YAML 1.2; PyYAML's 1.1 rules read a string);
    a huge wrong value is quoted cut short."""
    from hpsearch.errors import ConfigError
    from hpsearch.study.config import parse_study

    text = study(search__learning_rate=DELETE, fixed__learning_rate=0.5, sampler={"type": "tpe", "n_startup_trials": 3})
    text = text.replace("learning_rate: 0.5", "learning_rate: 1e-4").replace("n_startup_trials: 3", "gamma_unused: 1E+2")
    config = parse_study(text.replace("  gamma_unused: 1E+2\n", "") + "metric: val_acc\n")
    assert config.fixed["learning_rate"] == 1e-4 and isinstance(config.fixed["learning_rate"], float)
    ranged = parse_study(study(search__weight_decay={"low": 0, "high": 1}).replace("low: 0\n", "low: 1e-6\n").replace("high: 1\n", "high: 1E-1\n"))
    assert ranged.search["weight_decay"].low == 1e-6 and ranged.search["weight_decay"].high == 0.1
    assert parse_study("study: s\ntask: t\ntrials: 3\nmax_epochs: 2\nfixed: {a: .5, b: -2.5e3, c: 1_000.5, d: '1e-4', e: 10}\n").fixed == {
        "a": 0.5, "b": -2500.0, "c": 1000.5, "d": "1e-4", "e": 10,
    }
    with pytest.raises(ConfigError, match="trials: Input should be a valid integer, got 1000.0"):
        parse_study(study().replace("trials: 3", "trials: 1e3"))
    with pytest.raises(ConfigError) as info:
        parse_study(study(trials="x" * 100_000))
    assert len(str(info.value)) < 200


def test_custom_task_imports_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``task: mymodule:factory`` finds mymodule.py in the working directory, without PYTHONPATH."""
    import sys

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd())])  # restored afterwards
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_cwd_tasks.py").write_text(
        "import hpsearch\nfrom hpsearch.tasks import resolve_task\n\n@hpsearch.task\ndef make():\n    return resolve_task('digits-mlp')\n"
    )
    path = tmp_path / "study.yaml"
    # a metric the imported task does not report: the import worked once the task is checked
    path.write_text(study(task="my_cwd_tasks:make", metric="val_f1"))
    result = CliRunner().invoke(main, ["optimize", str(path)])
    assert result.exit_code == 2, result.output
    assert "metric: task digits-mlp does not report 'val_f1'" in result.stderr


def test_the_same_error_three_times_in_a_row_stops_the_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that always raises: the study stops after 3 trials with that error, exit 1."""
    import optuna

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "study.yaml"
    path.write_text(study(task="custom_tasks:toy_regression", trials=20, fixed__hidden_units=DELETE, fixed__hidden_layers=DELETE,
                          fixed__behaviour="raise"))
    result = CliRunner().invoke(main, ["optimize", str(path), "--storage", f"sqlite:///{tmp_path / 'db.sqlite'}"])
    assert result.exit_code == 1, result.output
    assert "the last 3 trials failed with the same error: RuntimeError: boom from the custom model" in result.stderr
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'db.sqlite'}").trials
    assert [t.state.name for t in trials] == ["FAIL"] * 3


def test_report_folder_of_a_dotted_name_stays_inside_reports() -> None:
    """A study named ``..`` (possible before names were checked) gets ``reports/__``."""
    from hpsearch.analysis.report.build import safe_name

    assert [safe_name(n) for n in ("..", ".", "a/../b", "a..b", "")] == ["__", "_", "a_.._b", "a..b", "_"]
