"""Study identity: a study file edited after its study was created is refused with one line
per changed key and nothing written; ``--allow-changes`` goes on and records the change;
checkpoints of one study (as created, with one definition) are never resumed by another."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from conftest import TINY_STUDY

from hpsearch.cli import main
from hpsearch.errors import ConfigError
from hpsearch.study.config import StudyFile, parse_study
from hpsearch.study.definition import define
from hpsearch.study.identity import CHANGES_ATTR, FINGERPRINT_ATTR, UID_ATTR

SMALL = {**TINY_STUDY, "trials": 2, "max_epochs": 1}


def _write(path: Path, **changes: object) -> Path:
    data = json.loads(json.dumps(SMALL))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _dump(db: Path) -> list[str]:
    """Every row of every table: the whole database content."""
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def _definition(**changes: object):
    data = {**json.loads(json.dumps(SMALL)), **changes}
    text = yaml.safe_dump(data, sort_keys=False)
    return define(StudyFile("study.yaml", text, parse_study(text, "study.yaml")))


@pytest.mark.slow  # trains 3 small trials
def test_edited_study_file_is_refused_then_allowed(tmp_path: Path) -> None:
    db = tmp_path / "studies.db"
    url = f"sqlite:///{db}"
    path = _write(tmp_path / "study.yaml")
    first = CliRunner().invoke(main, ["optimize", str(path), "--storage", url])
    assert first.exit_code == 0, first.output
    before = _dump(db)
    created = optuna.load_study(study_name="tiny", storage=url).user_attrs
    assert created[FINGERPRINT_ATTR]["search.keep_prob.high"] == 1.0 and len(created[UID_ATTR]) == 32

    # a changed range and max_epochs (trials may change): refused, per key, for one process and a pool
    _write(path, trials=3, max_epochs=2, search__keep_prob__high=0.9)
    for extra in ([], ["--workers", "2"]):
        refused = CliRunner().invoke(main, ["optimize", str(path), "--storage", url, *extra])
        assert refused.exit_code == 2, refused.output
        lines = refused.stderr.strip().splitlines()
        assert lines[0] == f"error: {path}: study 'tiny' in {url} was created with another definition:"
        assert lines[1:3] == ["  max_epochs: 1 -> 2", "  search.keep_prob.high: 1.0 -> 0.9"]
        assert "--allow-changes" in lines[3] and "--study-name" in lines[3] and len(lines) == 4
        assert "Traceback" not in refused.stderr
        assert _dump(db) == before  # nothing written

    allowed = CliRunner().invoke(main, ["optimize", str(path), "--storage", url, "--allow-changes"])
    assert allowed.exit_code == 0, allowed.output
    study = optuna.load_study(study_name="tiny", storage=url)
    assert len([t for t in study.trials if t.state.is_finished()]) == 3
    [change] = study.user_attrs[CHANGES_ATTR]
    assert change["changes"] == ["max_epochs: 1 -> 2", "search.keep_prob.high: 1.0 -> 0.9"] and change["trials_before"] == 2
    assert study.user_attrs[FINGERPRINT_ATTR]["max_epochs"] == 2
    assert study.user_attrs[UID_ATTR] == created[UID_ATTR]
    # the recorded definition is now the study's own: the same file runs without the flag
    again = CliRunner().invoke(main, ["optimize", str(path), "--storage", url])
    assert again.exit_code == 0 and "3/3 finished" in again.output

    # an allowed change that Optuna cannot sample in this study: the same reason 3 times stops it
    _write(path, trials=9, max_epochs=2, search__keep_prob__high=0.9, search__batchnorm=["none", "after_activation"])
    incompatible = CliRunner().invoke(main, ["optimize", str(path), "--storage", url, "--allow-changes"])
    assert incompatible.exit_code == 1, incompatible.output
    assert "the last 3 trials failed with the same error: ValueError:" in incompatible.stderr
    failed = [t for t in optuna.load_study(study_name="tiny", storage=url).trials if t.state.name == "FAIL"]
    assert len(failed) == 3 and all(t.user_attrs["fail_reason"].startswith("ValueError:") for t in failed)


def test_what_counts_as_a_change(tmp_path: Path) -> None:
    """Task, search space, fixed settings and seed are identity; trials and sampler/pruner
    options are not; metric and direction never change, not even with allow_changes."""
    from hpsearch.run.runner import create_or_load

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_or_load(_definition(), url)
    create_or_load(_definition(trials=50, sampler={"type": "tpe", "n_startup_trials": 3}, pruner={"type": "median"}), url)
    cases = [
        ({"task": "digits-cnn", "fixed": {"optimizer": "adamw", "batch_size": 128, "channels": 4}},
         ["task: digits-mlp -> digits-cnn", "fixed.channels: (absent) -> 4", "fixed.hidden_layers: 1 -> (absent)"]),
        ({"seed": 7}, ["seed: 0 -> 7"]),
        ({"search": {**SMALL["search"], "batchnorm": ["none"]}}, ['search.batchnorm: ["none", "before_activation"] -> ["none"]']),
        ({"fixed": {**SMALL["fixed"], "optimizer": "sgd"}}, ["fixed.optimizer: adamw -> sgd"]),
    ]
    for changes, expected in cases:
        with pytest.raises(ConfigError) as info:
            create_or_load(_definition(**changes), url)
        for line in expected:
            assert f"\n  {line}\n" in str(info.value) + "\n", str(info.value)
    with pytest.raises(ConfigError, match="the metric of a study cannot change"):
        create_or_load(_definition(metric="val_loss", direction="maximize"), url, allow_changes=True)


def test_checkpoints_belong_to_one_study_as_created_and_one_definition(tmp_path: Path) -> None:
    """Only the re-run of the same trial of the same study finds a checkpoint: a study made
    again under the same name, or run with another definition, uses other files."""
    from hpsearch.run.runner import open_study

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    ckpt = tmp_path / "ckpt"

    def path_for_trial_0(definition, **kwargs: object) -> Path:
        study, objective = open_study(definition, url, checkpoint_dir=ckpt, **kwargs)  # type: ignore[arg-type]
        assert objective.checkpoints is not None
        return objective.checkpoints.path_for(0)

    first = path_for_trial_0(_definition())
    assert first.name == "trial-0.ckpt" and first.parent.parent == ckpt / "tiny"
    assert path_for_trial_0(_definition(trials=9)) == first  # the same study re-run: resumable
    edited = path_for_trial_0(_definition(max_epochs=3), allow_changes=True)
    assert edited != first
    optuna.delete_study(study_name="tiny", storage=url)
    assert path_for_trial_0(_definition()) not in (first, edited)  # made again: another study
    dotted = path_for_trial_0(_definition(study="a..b"))
    assert dotted.parent.parent == ckpt / "a__b"
