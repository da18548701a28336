"""Several objectives and constraints from the study file, on real SQLite studies."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from optuna.trial import TrialState

from hpsearch.api import best_trial, load_study_file
from hpsearch.errors import ConfigError
from hpsearch.run.runner import run_study
from hpsearch.store.queries import is_feasible
from hpsearch.study.meta import pareto_front

TWO_OBJECTIVES = [{"metric": "val_acc", "direction": "maximize"}, {"metric": "param_count", "direction": "minimize"}]
WIDTHS = {"hidden_units": [4, 8, 16, 32, 64], "learning_rate": {"low": 3e-3, "high": 3e-2, "log": True}}
FIXED = {"optimizer": "adamw", "batch_size": 128, "hidden_layers": 1}


def _dominated(a: list[float], b: list[float]) -> bool:
    """Whether ``b`` dominates ``a`` for (maximize, minimize)."""
    return b[0] >= a[0] and b[1] <= a[1] and (b[0] > a[0] or b[1] < a[1])


@pytest.mark.slow
def test_two_objectives_give_a_non_dominated_front(write_study, sqlite_url: str) -> None:
    path = write_study(trials=6, max_epochs=1, objectives=TWO_OBJECTIVES, search=WIDTHS, fixed=FIXED, pruner={"type": "none"})
    study = run_study(load_study_file(path), sqlite_url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_acc", "param_count"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6
    for t in complete:
        assert t.values == [t.user_attrs["val_acc"], t.user_attrs["param_count"]]
        assert t.intermediate_values == {}  # no pruning, no reports with several objectives
        assert t.user_attrs["val_curve"] == pytest.approx([t.user_attrs["val_acc"]])  # the curve is kept instead
    from hpsearch.analysis.report.data import extract
    from hpsearch.analysis.report.figures_html import intermediate

    records = extract(study).trials
    assert all(r.steps == (0,) and len(r.intermediate) == 1 for r in records if r.state == "complete")
    plotted = [y for trace in intermediate(extract(study)).data for y in trace.y if y is not None]
    assert len(plotted) == 6  # the learning-curve figure is no longer empty
    front = pareto_front(study)
    numbers = {t.number for t in front}
    for t in complete:  # checked against the trials themselves
        dominated = any(_dominated(t.values, o.values) for o in complete)
        assert (t.number in numbers) == (not dominated), (t.number, t.values)
    assert front == sorted(front, key=lambda t: -t.values[0])

    out = run_cli("best", "tiny", "--storage", sqlite_url)
    assert out.returncode == 0, out.stderr
    assert "Pareto front of tiny" in out.stdout and "param_count" in out.stdout
    assert f"best trial #{front[0].number}" in out.stdout
    worst = max(complete, key=lambda t: (t.number in numbers, -t.values[0]))
    picked = run_cli("best", "tiny", "--storage", sqlite_url, "--trial", str(worst.number), "--format", "json")
    data = json.loads(picked.stdout)
    assert data["trial"] == worst.number and data["values"] == {"val_acc": worst.values[0], "param_count": worst.values[1]}
    assert data["on_front"] == (worst.number in numbers)


@pytest.mark.slow
def test_a_constraint_keeps_infeasible_trials_out_of_best(write_study, sqlite_url: str) -> None:
    # param_count is decided by the width alone: hidden_units 32 and 64 break the bound.
    path = write_study(trials=6, max_epochs=1, search=WIDTHS, fixed=FIXED, constraints={"param_count": {"max": 1500}}, pruner={"type": "none"})
    study = run_study(load_study_file(path), sqlite_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    for t in complete:
        assert t.constraints == {"param_count": t.user_attrs["param_count"] - 1500}
    feasible = [t for t in complete if is_feasible(t)]
    assert feasible and len(feasible) < len(complete), [t.params for t in complete]
    best = best_trial("tiny", sqlite_url)
    assert best.trial == max(feasible, key=lambda t: (t.value, -t.number)).number
    assert best.feasible


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"objectives": [{"metric": "val_acc", "direction": "maximize"}, {"metric": "val_gap", "direction": "minimize"}]},
         r"objectives\.1\.metric: unknown metric 'val_gap'; valid: val_acc, val_loss, train_acc, train_val_gap"),
        ({"objectives": [{"metric": "train_val_gap", "direction": "minimize"}]},
         r"objectives\.0\.metric: the first objective must be a metric task digits-mlp reports"),
        ({"constraints": {"device": {"max": 1}}}, r"constraints\.device: 'device' is not a number a trial stores"),
        ({"constraints": {"train_val_gap": {}}}, r"constraints\.train_val_gap: give min, max or both"),
        ({"objectives": TWO_OBJECTIVES, "metric": "val_acc"}, r"give either metric/direction or objectives, not both"),
        ({"objectives": TWO_OBJECTIVES, "pruner": {"type": "median"}}, r"pruner: Optuna cannot prune a study with several objectives"),
        ({"objectives": TWO_OBJECTIVES, "sampler": {"type": "cmaes"}}, r"sampler\.type: cmaes handles one objective only"),
    ],
)
def test_bad_objectives_and_constraints_are_one_line_errors(write_study, sqlite_url: str, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        run_study(load_study_file(write_study(**changes)), sqlite_url)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_the_accuracy_vs_overfitting_study_runs_its_baseline_first(sqlite_url: str) -> None:
    definition = load_study_file("accuracy-vs-overfitting", trials=2, max_epochs=1)
    assert definition.multi and definition.config.constraints and "tf-mnist-l2" in definition.config.baselines
    study = run_study(definition, sqlite_url)
    first = study.trials[0]
    assert first.user_attrs["baseline"] == "tf-mnist-l2" and first.state == TrialState.COMPLETE
    assert first.params["l2_scope"] == "fc" and first.params["weight_decay"] == 5.0e-4
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert not load_study_file("quickstart").multi  # the first experience stays one objective


def test_the_fingerprint_covers_objectives_constraints_and_baselines(write_study) -> None:
    from hpsearch.study.identity import describe_changes, fingerprint

    base = write_study(objectives=TWO_OBJECTIVES, search=WIDTHS, fixed=FIXED)
    old = fingerprint(load_study_file(base))
    edits = {
        "objectives": [TWO_OBJECTIVES[0], {"metric": "train_val_gap", "direction": "minimize"}],
        "constraints": {"param_count": {"max": 900}},
        "baselines": {"narrow": {"hidden_units": 4, "learning_rate": 0.01}},
    }
    for key, value in edits.items():
        changes = {"objectives": TWO_OBJECTIVES, "search": WIDTHS, "fixed": FIXED, key: value}
        new = fingerprint(load_study_file(write_study(**changes)))
        assert any(line.startswith(key) for line in describe_changes(old, new)), (key, describe_changes(old, new))


def test_studies_lists_the_best_feasible_value_not_optunas_best(sqlite_url: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="constrained", storage=sqlite_url, direction="maximize")
    for value, excess in ((0.95, 100.0), (0.80, -5.0), (0.70, 0.0)):  # the highest value breaks its bound
        trial = study.ask()
        trial.set_constraint("param_count", excess)
        study.tell(trial, value)
    infeasible_only = optuna.create_study(study_name="all-infeasible", storage=sqlite_url, direction="minimize")
    trial = infeasible_only.ask()
    trial.set_constraint("param_count", 1.0)
    infeasible_only.tell(trial, 0.1)
    out = run_cli("studies", "--json", "--storage", sqlite_url)
    assert out.returncode == 0, out.stderr
    rows = {r["study"]: r for r in json.loads(out.stdout)}
    assert study.best_trial.value in (0.95, 0.80)  # whatever Optuna calls best, the listing is feasible
    assert rows["constrained"]["best"] == 0.80 and rows["constrained"]["complete"] == 3
    assert rows["all-infeasible"]["best"] is None


def test_the_progress_best_of_a_two_objective_study_reads_the_front_rarely_and_agrees_with_it(sqlite_url: str) -> None:
    import random

    import optuna

    from hpsearch.study.meta import RunningBest, best_or_none

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="two", storage=sqlite_url, directions=["maximize", "minimize"])
    reads = 0
    get_trials = study.get_trials

    def counted(*args, **kwargs):  # the real query, counted
        nonlocal reads
        reads += 1
        return get_trials(*args, **kwargs)

    study.get_trials = counted  # type: ignore[method-assign]
    running = RunningBest(refresh_seconds=3600)
    rng = random.Random(0)
    for i in range(60):
        trial = study.ask()
        trial.set_constraint("param_count", -1.0 if i % 7 else 1.0)  # every 7th trial infeasible
        values = [round(rng.random(), 1), rng.random()]  # ties in the first objective happen
        shown = running.update(study, study.tell(trial, values))
        before = reads
        expected = best_or_none(study)  # the full read, for comparison only
        reads = before
        assert (shown and shown.number) == (expected and expected.number), i
    assert reads == 1  # RunningBest read the whole front once, then followed the finished trials
