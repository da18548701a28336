"""The CLI end to end: real subprocesses on a real SQLite file, read back by the real `optuna` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from conftest import OPTUNA, cli_env, run_cli

from hpsearch.cli import main


@pytest.mark.slow
def test_optimize_end_to_end_read_back_by_optuna_cli(write_study, tmp_path: Path) -> None:
    path = write_study()
    proc = run_cli("--log-file", "run.log", "optimize", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "[3/3]" in out and "best trial #" in out and "learning_rate" in out
    assert "GPU available" not in out + proc.stderr and "LOCAL_RANK" not in out + proc.stderr
    assert proc.stderr == ""
    db = tmp_path / "hpsearch.db"
    assert db.exists()  # default storage: ./hpsearch.db
    log_text = (tmp_path / "run.log").read_text()
    assert "Trial 0 finished" in log_text  # Optuna's own messages go to the log file, not the terminal

    url = f"sqlite:///{db}"
    studies = subprocess.run([str(OPTUNA), "studies", "--storage", url, "-f", "json"], capture_output=True, text=True, check=True)
    [row] = json.loads(studies.stdout)
    assert row["name"] == "tiny" and row["n_trials"] == 3
    trials = subprocess.run(
        [str(OPTUNA), "trials", "--storage", url, "--study-name", "tiny", "-f", "json"], capture_output=True, text=True, check=True
    )
    assert {t["state"] for t in json.loads(trials.stdout)} <= {"COMPLETE", "PRUNED"}
    study = optuna.load_study(study_name="tiny", storage=url)
    assert len(study.trials) == 3

    again = run_cli("optimize", str(path), cwd=tmp_path)
    assert again.returncode == 0 and "3/3 finished" in again.stdout and "[" not in again.stdout.split("\n")[1]
    assert len(optuna.load_study(study_name="tiny", storage=url).trials) == 3


@pytest.mark.slow
def test_interrupted_study_runs_only_the_rest(write_study, sqlite_url: str, tmp_path: Path) -> None:
    path = write_study()
    assert run_cli("optimize", str(path), "--trials", "1", "--storage", sqlite_url, cwd=tmp_path).returncode == 0
    proc = run_cli("optimize", str(path), "--storage", sqlite_url, cwd=tmp_path)
    assert proc.returncode == 0 and "1/3 finished trials" in proc.stdout
    assert [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("[")] == ["[2/3]", "[3/3]"]
    assert len(optuna.load_study(study_name="tiny", storage=sqlite_url).trials) == 3


@pytest.mark.slow
def test_storage_from_environment_and_overrides(write_study, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    proc = run_cli("optimize", str(write_study()), "--study-name", "renamed", "--trials", "1", "--max-epochs", "1", "--seed", "7",
                   cwd=tmp_path, HPSEARCH_STORAGE=url)
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="renamed", storage=url)
    assert len(study.trials) == 1 and study.trials[0].user_attrs["epochs"] == 1 and study.trials[0].user_attrs["seed"] == 7


@pytest.mark.slow
def test_studies_and_best_commands(write_study, sqlite_url: str, tmp_path: Path) -> None:
    assert run_cli("optimize", str(write_study()), "--storage", sqlite_url, cwd=tmp_path).returncode == 0
    runner = CliRunner()
    listing = runner.invoke(main, ["studies", "--storage", sqlite_url, "--json"])
    assert listing.exit_code == 0
    [row] = json.loads(listing.output)
    assert row["study"] == "tiny" and row["complete"] + row["pruned"] == 3 and row["fail"] == 0 and row["best"] is not None
    table = runner.invoke(main, ["studies", "--storage", sqlite_url])
    assert "tiny" in table.output and "complete" in table.output

    best = runner.invoke(main, ["best", "tiny", "--storage", sqlite_url, "--json"])
    data = json.loads(best.output)
    assert set(data) == {"study", "metric", "direction", "value", "params", "trial"}
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert data["trial"] == study.best_trial.number and data["value"] == study.best_value
    assert data["params"]["hidden_units"] == 32 and data["params"]["learning_rate"] == study.best_params["learning_rate"]
    text = runner.invoke(main, ["best", "tiny", "--storage", sqlite_url])
    assert "best trial" in text.output and "keep_prob" in text.output


def test_python_api_mirrors_the_cli(write_study, sqlite_url: str) -> None:
    import hpsearch

    study_file = hpsearch.load_study_file(write_study(), trials=2)
    study = hpsearch.optimize(study_file, storage=sqlite_url)
    assert len(study.trials) == 2
    best = hpsearch.best_trial("tiny", storage=sqlite_url)
    assert best.trial == study.best_trial.number and best.metric == "val_acc"


def test_help_is_light_and_explains_itself() -> None:
    # --help must not import torch, lightning or optuna (they take seconds to import).
    code = (
        "import sys; from hpsearch.cli import main\n"
        "try:\n    main(['optimize', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'lightning', 'optuna', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True)
    assert "HEAVY []" in proc.stdout
    assert "--storage" in proc.stdout and "HPSEARCH_STORAGE" in proc.stdout
    for command in ("optimize", "studies", "best", "tasks"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_tasks_command_lists_parameters() -> None:
    result = CliRunner().invoke(main, ["tasks"])
    assert result.exit_code == 0
    assert "digits-mlp" in result.output and "keep_prob" in result.output and "(0, 1]" in result.output


def test_quickstart_study_file_is_valid() -> None:
    from hpsearch.api import load_study_file

    path = Path(__file__).resolve().parent.parent / "studies" / "quickstart.yaml"
    loaded = load_study_file(path)
    assert loaded.config.study == "quickstart" and yaml.safe_load(loaded.text)["trials"] == 40


def test_a_finished_command_leaves_its_sqlite_database_whole_and_its_log_written(write_study, tmp_path: Path) -> None:
    # the process skips the interpreter's final garbage collection (hpsearch.run.collector):
    # the storage still closes its connections at exit, so SQLite folds its write-ahead log back
    # into the file, and the other exit handlers (the log file's) still run
    db, log = tmp_path / "whole.db", tmp_path / "run.log"
    result = run_cli("--log-file", str(log), "optimize", str(write_study(trials=2, max_epochs=1)), "--storage", f"sqlite:///{db}", "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("whole.db*")) == ["whole.db"]  # no -wal or -shm left
    import sqlite3

    with sqlite3.connect(f"file:{db}?immutable=1", uri=True) as conn:  # the file alone, no log
        assert conn.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone() == (2,)
    assert "tiny" in log.read_text()


def test_skipping_the_final_collection_registers_one_exit_handler() -> None:
    import atexit

    from hpsearch.run import collector

    before = atexit._ncallbacks()
    collector.skip_final_collection()
    collector.skip_final_collection()
    assert atexit._ncallbacks() - before <= 1


@pytest.mark.parametrize("was_enabled", [True, False])
def test_the_training_stack_is_imported_frozen_with_the_collector_as_it_was(was_enabled: bool) -> None:
    code = (f"import gc, sys\n{'' if was_enabled else 'gc.disable()'}\n"
            "from hpsearch.run import collector\n"
            "collector.import_training_stack()\n"
            "frozen = gc.get_freeze_count()\n"
            "collector.import_training_stack()\n"  # the second call: nothing more frozen
            "print(gc.isenabled(), frozen > 0, 'lightning.pytorch' in sys.modules, gc.get_freeze_count() == frozen)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(was_enabled), "True", "True", "True"]
