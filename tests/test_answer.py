"""`question:` studies and `hpsearch answer`, end to end with real training, real subprocesses
and real SIGKILLs: a planted large effect is found, every level gets its budget with a pruner
and two workers, a killed answer resumes without retraining finished seeds, selection never
reads the test split, and bad input is one line with exit 2."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import run_cli
from faults import by_state, finish, kill_all, start, trials, wait_for
from optuna.trial import TrialState

from hpsearch.testing.synthetic import make_synthetic_study

# Width 2 vs 10 on circles: one hidden layer of 2 ReLU units cannot draw a circle.
WIDTH_QUESTION = {
    "study": "widths",
    "task": "toy2d-mlp",
    "trials": 1,
    "max_epochs": 30,
    "seed": 0,
    "sampler": {"type": "random"},
    "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 5},
    "search": {"learning_rate": {"low": 0.01, "high": 0.1, "log": True}, "width": [2, 10]},
    "fixed": {"dataset": "circles", "optimizer": "adamw", "batch_size": 64},
    "question": {"asks": "Does a wider hidden layer help on circles?", "compare": "width", "reference": "2",
                 "budget": 3, "seeds": 5, "min_effect": 0.02},
}


def write(tmp_path: Path, data: dict, name: str = "question.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def stored(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


@pytest.mark.slow
def test_a_planted_large_effect_is_better_and_every_level_gets_its_budget(tmp_path: Path, sqlite_url: str) -> None:
    path = write(tmp_path, WIDTH_QUESTION)
    proc = run_cli("optimize", str(path), "--workers", "2", "--storage", sqlite_url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "level 2" in proc.stdout or "[2]" in proc.stdout  # progress names the level
    for level in ("2", "10"):
        cell = stored(sqlite_url, f"widths:{level}")
        finished = by_state(cell.trials, TrialState.COMPLETE, TrialState.PRUNED)
        assert len(finished) >= 3 and cell.user_attrs["source_study"] == "widths"
        assert all(t.params.keys() == {"learning_rate"} for t in finished)  # width is fixed per level
    again = run_cli("optimize", str(path), "--storage", sqlite_url, cwd=tmp_path)  # a rerun resumes: nothing to do
    assert again.returncode == 0 and "trial" not in again.stdout.split("level")[0]

    out = run_cli("answer", "widths", "--json", "--storage", sqlite_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert [lv["tuning"]["finished"] for lv in answer["levels"]] == [3, 3]  # exactly the budget
    assert all(lv["n"] == 5 and lv["seeds"] == [0, 1, 2, 3, 4] for lv in answer["levels"])
    (row,) = answer["comparisons"]
    assert row["level"] == "10" and row["reference"] == "2"
    assert row["verdict"] == "better" and row["ci_low"] > 0 and row["difference"] >= 0.02, row
    text = run_cli("answer", "widths", "--storage", sqlite_url, cwd=tmp_path)
    assert text.returncode == 0 and "10 vs 2: BETTER" in text.stdout and "cover seed noise" in text.stdout
    assert "[" not in text.stderr  # all 10 retrains were reused: no progress lines
    listing = run_cli("studies", "--storage", sqlite_url, cwd=tmp_path)
    assert "answered" in listing.stdout
    report = run_cli("report", "widths", "--out", str(tmp_path / "rep"), "--storage", sqlite_url, cwd=tmp_path)
    assert report.returncode == 0 and (tmp_path / "rep" / "forest.png").stat().st_size > 1000
    assert "10 vs 2: BETTER" in (tmp_path / "rep" / "report.html").read_text()


def test_answer_on_a_study_without_a_question_is_one_line_exit_2(sqlite_url: str, tmp_path: Path) -> None:
    make_synthetic_study(sqlite_url, "tiny", 3)  # a plain study (the quickstart file, no question:), made without training
    proc = run_cli("answer", "tiny", "--storage", sqlite_url, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert "no question" in proc.stderr
    missing = run_cli("answer", "nope", "--storage", sqlite_url, cwd=tmp_path)
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1


@pytest.mark.parametrize("bad, message", [
    ({"compare": "nope"}, "nope"),
    ({"compare": "learning_rate"}, "must be searched as a list of choices"),
    ({"compare": ["width", "width"]}, "two distinct"),
    ({"compare": ["width", "dataset", "activation"]}, "one parameter, or two"),
    ({"reference": "7"}, "is not a level"),
    ({"min_effect": 0}, "min_effect"),
    ({"min_effect": float("nan")}, "min_effect"),
    ({"budget": 0}, "budget"),
    ({"seeds": 1}, "seeds"),
    ({"within": ["width"]}, "within"),
    ({"within": ["dataset"]}, "dataset must be searched"),
    ({"levels": {"a": {"widht": 3}, "b": {}}, "reference": "a"}, "widht"),
    ({"levels": {"a:b": {}, "c": {}}, "reference": "c"}, "cannot contain"),
    ({"levels": {"a": {}}, "reference": "a"}, "at least two levels"),
    ({"levels": {"a": 3, "b": {}}, "reference": "a"}, "a level is a mapping"),
    ({"extra": 1}, "extra"),
    ({"vary": "splits"}, "vary"),
])
def test_a_bad_question_block_is_refused_with_one_line(tmp_path: Path, bad: dict, message: str) -> None:
    from hpsearch.api import load_study_file
    from hpsearch.errors import ConfigError

    data = json.loads(json.dumps(WIDTH_QUESTION))
    data["question"].update(bad)
    with pytest.raises(ConfigError) as err:
        load_study_file(write(tmp_path, data))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_question_is_exit_2_before_anything_is_written(tmp_path: Path, sqlite_url: str) -> None:
    data = {**WIDTH_QUESTION, "question": {**WIDTH_QUESTION["question"], "reference": "7"}}
    proc = run_cli("optimize", str(write(tmp_path, data)), "--storage", sqlite_url, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "is not a level" in proc.stderr
    assert not (tmp_path / "studies.db").exists() or not optuna.get_all_study_names(sqlite_url)


def _pairs_done(url: str) -> list[optuna.trial.FrozenTrial]:
    return by_state(trials(url, "widths:answer"), TrialState.COMPLETE)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["first-retrain", "mid-run"])
def test_a_killed_answer_resumes_without_retraining_finished_seeds(tmp_path: Path, sqlite_url: str, moment: str) -> None:
    data = {**WIDTH_QUESTION, "max_epochs": 60, "question": {**WIDTH_QUESTION["question"], "budget": 2, "seeds": 6}}
    assert run_cli("optimize", str(write(tmp_path, data)), "--storage", sqlite_url, cwd=tmp_path).returncode == 0
    beat = ["--heartbeat", "1", "--grace", "2"]
    proc = start("answer", "widths", *beat, storage=sqlite_url)
    try:
        if moment == "first-retrain":
            wait_for(lambda: by_state(trials(sqlite_url, "widths:answer"), TrialState.RUNNING), 120, "a running retrain", (proc,))
        else:
            wait_for(lambda: len(_pairs_done(sqlite_url)) >= 4, 180, "4 finished retrains", (proc,))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_all(proc)
    before = {t.number: t.value for t in _pairs_done(sqlite_url)}
    rerun = start("answer", "widths", "--json", *beat, storage=sqlite_url)
    code, out, err = finish(rerun)
    assert code == 0, err
    after = _pairs_done(sqlite_url)
    pairs = [(t.user_attrs["cell"], t.user_attrs["seed"]) for t in after]
    assert len(pairs) == len(set(pairs)) == 12  # each pair finished exactly once
    kept = {t.number: t.value for t in after}
    assert all(kept.get(number) == value for number, value in before.items())  # finished seeds were kept...
    assert err.count("seed") == 12 - len(before)  # ...and only the others retrained
    states = {t.state for t in trials(sqlite_url, "widths:answer")}
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    answer = json.loads(out)
    assert all(lv["n"] == 6 for lv in answer["levels"])


@pytest.mark.slow
def test_selection_never_reads_the_test_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same question tuned twice from scratch, once with the test labels shuffled: the
    configurations chosen (trial, validation value, params) are the same, the test scores not."""
    import torch

    from hpsearch.api import load_study_file, optimize
    from hpsearch.question.answer import run_answer
    from hpsearch.tasks import toy2d
    from hpsearch.tasks.base import DataSplits

    data = {**WIDTH_QUESTION, "max_epochs": 10, "question": {**WIDTH_QUESTION["question"], "seeds": 2}}
    path = write(tmp_path, data)
    honest_url, lied_url = f"sqlite:///{tmp_path / 'honest.db'}", f"sqlite:///{tmp_path / 'lied.db'}"
    optimize(load_study_file(path), honest_url)
    honest = run_answer("widths", honest_url)
    original = toy2d.load_toy2d_splits

    def shuffled(seed: int) -> DataSplits:
        splits = original(seed)
        variants = {}
        for name, v in splits.info["variants"].items():
            y = v.test[1][torch.randperm(len(v.test[1]), generator=torch.Generator().manual_seed(1))]
            variants[name] = DataSplits(v.train, v.val, (v.test[0], 1 - y), v.info)
        first = variants["moons"]
        return DataSplits(first.train, first.val, first.test, {"variants": variants})

    monkeypatch.setattr(toy2d, "load_toy2d_splits", shuffled)
    optimize(load_study_file(path), lied_url)
    lied = run_answer("widths", lied_url)
    assert [lv["tuning"] for lv in lied["levels"]] == [lv["tuning"] for lv in honest["levels"]]
    assert [lv["values"] for lv in lied["levels"]] != [lv["values"] for lv in honest["levels"]]


def test_level_names_from_choices_are_made_safe_and_a_numeric_reference_is_a_name(tmp_path: Path) -> None:
    from hpsearch.api import load_study_file
    from hpsearch.question.cells import plan

    data = {"study": "bn", "task": "custom_tasks:slashed_choices", "trials": 1, "max_epochs": 1,
            "search": {"layout": ["fc/none", "fc/before_activation"], "learning_rate": {"low": 1e-3, "high": 1e-2}},
            "question": {"asks": "where?", "compare": "layout", "reference": "fc-none", "budget": 1, "min_effect": 0.01}}
    design = plan(load_study_file(write(tmp_path, data)))
    assert [c.key for c in design.cells] == ["fc-none", "fc-before_activation"]
    assert design.levels[0].settings == {"layout": "fc/none"}
    numeric = {**WIDTH_QUESTION, "question": {**WIDTH_QUESTION["question"], "reference": 2}}
    assert plan(load_study_file(write(tmp_path, numeric))).reference.name == "2"


def test_vary_split_on_a_task_whose_data_ignores_the_seed_is_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    from hpsearch.api import load_study_file
    from hpsearch.errors import ConfigError
    from hpsearch.question.answer import check_split_varies
    from hpsearch.question.optimize import cell_runs

    definition = load_study_file(write(tmp_path, WIDTH_QUESTION))
    runs = cell_runs(definition)[1]
    check_split_varies(definition, runs[0])  # toy2d draws new points with each seed
    fixed = replace(definition, task=replace(definition.task, load_data=lambda seed: definition.task.load_data(0)))
    with pytest.raises(ConfigError, match="same data for every seed"):
        check_split_varies(fixed, runs[0])


def test_a_stacked_retrain_whose_model_cannot_be_built_reports_the_real_reason(tmp_path: Path) -> None:
    from dataclasses import replace

    from hpsearch.api import load_study_file
    from hpsearch.population.retrain import RetrainJob, retrain_all

    definition = load_study_file(write(tmp_path, WIDTH_QUESTION))

    def broken(reg, options, data):
        raise RuntimeError("cannot build this model")

    bad = replace(definition, task=replace(definition.task, build_model=broken))
    jobs = [RetrainJob(bad, {"learning_rate": 0.01, "width": 10}, seed, 0) for seed in range(3)]
    outcomes = retrain_all(jobs, population=3)
    assert all(o.value is None and "cannot build this model" in (o.error or "") for o in outcomes)


def test_a_trial_that_never_beat_is_failed_after_the_grace_period(sqlite_url: str) -> None:
    from hpsearch.store.queries import fail_unbeaten

    study = optuna.create_study(storage=sqlite_url, study_name="s")
    study.ask()  # RUNNING, no heartbeat row: Optuna's own stale check never fails it
    assert fail_unbeaten(study, grace=3600) == 0
    assert fail_unbeaten(study, grace=0) == 1
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL and "before its first heartbeat" in trial.user_attrs["fail_reason"]


def test_a_retrain_failed_meanwhile_by_another_process_is_left_alone(sqlite_url: str) -> None:
    """A process whose heartbeat went stale finishes its retrain after another process failed
    it: storing the outcome (or an interrupt) must not raise and must not revive the trial."""
    from hpsearch.analysis.retrain import Retrained, fail_interrupted, record
    from hpsearch.store.queries import fail_if_running, trial_id

    study = optuna.create_study(storage=sqlite_url, study_name="s")
    trial = study.ask()
    assert fail_if_running(study, trial_id(trial), "stale")
    record(study, trial, Retrained(0.9, None, 3, 1.0))
    fail_interrupted(study, trial, KeyboardInterrupt())
    (stored,) = study.trials
    assert stored.state == TrialState.FAIL and stored.user_attrs["fail_reason"] == "stale"


def test_the_question_can_fix_vary_split(tmp_path: Path) -> None:
    from hpsearch.api import load_study_file

    data = {**WIDTH_QUESTION, "question": {**WIDTH_QUESTION["question"], "vary": "split"}}
    assert load_study_file(write(tmp_path, data)).config.question.vary == "split"


@pytest.mark.slow
def test_task_test_baselines_stand_beside_every_level_and_warn_when_they_win(tmp_path: Path, sqlite_url: str) -> None:
    from custom_tasks import _data_with_baselines

    data = {"study": "tb", "task": "custom_tasks:toy_regression_baselines", "trials": 1, "max_epochs": 2, "seed": 0,
            "sampler": {"type": "random"}, "pruner": {"type": "none"},
            "search": {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "width": [2, 4]},
            "question": {"asks": "width?", "compare": "width", "reference": "2", "budget": 1, "seeds": 2,
                         "min_effect": 0.1}}
    path = write(tmp_path, data)
    assert run_cli("optimize", str(path), "--storage", sqlite_url, cwd=tmp_path).returncode == 0
    out = run_cli("answer", "tb", "--json", "--storage", sqlite_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    expected = _data_with_baselines(0).info["test_baselines"]
    assert {(b["cell"], b["name"]) for b in answer["baselines"]} == {(c, n) for c in ("2", "4") for n in expected}
    for level in answer["levels"]:
        assert level["baselines"] == pytest.approx({n: e["value"] for n, e in expected.items()})
    # two epochs of a tiny MLP do not reach the true linear model: the reviewer is told
    assert any(w.startswith("baseline least-squares scores") for w in answer["warnings"]), answer["warnings"]
    text = run_cli("answer", "tb", "--storage", sqlite_url, cwd=tmp_path).stdout
    assert "least-squares (baseline)" in text and "baseline train-mean: predict the training mean" in text
