"""Lightning tasks (a study's task block naming the user's LightningModule and DataModule):
bad blocks are one line before anything is written; a metric never logged ends the run; a
module that raises fails its trial only; a stored study imports only from the current directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import run_cli

from hpsearch.errors import ConfigError
from hpsearch.study.config import StudyFile, parse_study
from hpsearch.study.definition import define
from hpsearch.study.stored import searched_definition

PROJECT = Path(__file__).resolve().parent / "lightning_project"
MODEL = {"class_path": "lt_digits.models.DigitsMLP", "init_args": {"hidden_layers": 1}}
DATA = {"class_path": "lt_digits.data.DigitsData", "init_args": {"batch_size": 128}}


def study(**changes: Any) -> dict[str, Any]:
    task = {"model": MODEL, "data": DATA, "metric": "val_acc", "direction": "maximize", **changes.pop("task", {})}
    return {"study": "lt", "task": task, "trials": 2, "max_epochs": 1, "sampler": {"type": "random"},
            "pruner": {"type": "none"}, "search": {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}},
            "fixed": {"hidden_units": 16}, **changes}


def define_data(data: dict[str, Any], stored: bool = False) -> Any:
    text = yaml.safe_dump(data, sort_keys=False)
    return define(StudyFile("s.yaml", text, parse_study(text, "s.yaml")), stored=stored)


@pytest.fixture(autouse=True)
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT)


def test_a_good_block_routes_settings() -> None:
    d = define_data(study(search={"hidden_units": [16, 32], "batch_size": [32, 64], "keep_prob": {"low": 0.5, "high": 1.0}},
                          fixed={}))
    setup = d.task.lightning
    assert setup.routes == {"hidden_units": ("model",), "batch_size": ("data",)}
    assert d.task.params["hidden_units"].kind == "int"
    assert d.metric == "val_acc" and d.task.name == "lightning:lt_digits.models.DigitsMLP+lt_digits.data.DigitsData"


@pytest.mark.parametrize("changes,message", [
    ({"task": {"model": {"class_path": "lt_digits.models.NotAModule"}}},
     "s.yaml: task.model: 'lt_digits.models.NotAModule' is not a LightningModule subclass"),
    ({"task": {"data": {"class_path": "lt_digits.models.DigitsMLP"}}}, "is not a LightningDataModule subclass"),
    ({"task": {"model": {"class_path": "lt_digits.models.NOT_A_CLASS"}}}, "is not a LightningModule subclass (it is a int)"),
    ({"task": {"model": {"class_path": "lt_digits.nowhere.Net"}}}, "no module named 'lt_digits.nowhere'"),
    ({"task": {"model": {"class_path": "Net"}}}, "task.model.class_path: expected a dotted path"),
    ({"search": {"width": [1, 2]}}, "s.yaml: search.width: no init argument of lt_digits.models.DigitsMLP or "
                                    "lt_digits.data.DigitsData takes 'width'"),
    ({"fixed": {"batchnorm": "before_activation"}}, "fixed.batchnorm: no init argument"),
    ({"task": {"model": {"class_path": "lt_digits.models.DigitsMLP", "init_args": {"depth": 3}}}},
     "task.model.init_args: lt_digits.models.DigitsMLP takes no init argument 'depth'"),
    ({"task": {"model": {"class_path": "lt_digits.models.NoDropoutConv"}}, "fixed": {"keep_prob": 0.5}},
     "fixed.keep_prob: keep_prob cannot act on lt_digits.models.NoDropoutConv: it has no dropout layer"),
    ({"task": {"model": {"class_path": "lt_digits.models.NoDropoutConv"}}, "fixed": {},
      "search": {"weight_decay": {"low": 1e-5, "high": 1e-2, "log": True}, "l2_scope": ["weights", "fc"]}},
     "search.l2_scope: l2_scope 'fc' cannot act on lt_digits.models.NoDropoutConv: it has no nn.Linear layer"),
    ({"task": {"precision": "8-bit"}}, "task.precision"),
    ({"task": {"devices": 2}}, "task.devices"),
    ({"metric": "val_loss"}, "metric: task lightning:"),
    ({"fixed": {"hidden_units": -1}}, "building lt_digits.models.DigitsMLP failed"),
    ({"task": {"data": {"class_path": "lt_digits.data.BadInitData", "init_args": {"batch_size": -1}}}},
     "s.yaml: task.data: building lt_digits.data.BadInitData failed: ValueError: batch_size must be >= 0, got -1"),
])
def test_bad_blocks_are_one_line(changes: dict[str, Any], message: str) -> None:
    data = study(**{k: v for k, v in changes.items() if k != "task"})
    if "task" in changes:
        data["task"] = {**data["task"], **changes["task"]}
    with pytest.raises(ConfigError) as err:
        define_data(data)
    text = str(err.value)
    assert message in text and "\n" not in text


@pytest.mark.slow  # a real hpsearch process
def test_bad_block_exits_2_before_any_study(tmp_path: Path) -> None:
    data = study()
    data["task"]["model"] = {"class_path": "lt_digits.models.NotAModule"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    db = tmp_path / "s.db"
    out = run_cli("optimize", str(path), "--storage", f"sqlite:///{db}", cwd=PROJECT)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "is not a LightningModule subclass" in out.stderr
    assert not db.exists()


@pytest.mark.slow  # a real hpsearch process
def test_metric_never_logged_ends_the_run(tmp_path: Path) -> None:
    data = study(task={"metric": "val_f1"})
    path = tmp_path / "nometric.yaml"
    path.write_text(yaml.safe_dump(data))
    out = run_cli("optimize", str(path), "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=PROJECT)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "never logged 'val_f1'" in last and "it logged: train_acc, val_acc, val_loss" in last
    trials = optuna.load_study(study_name="lt", storage=f"sqlite:///{tmp_path / 's.db'}").trials
    assert len(trials) == 1  # the run ended after the first trial's first validation


def test_training_step_error_fails_the_trial_only(tmp_path: Path) -> None:
    from hpsearch.run.runner import run_study

    data = study(trials=3, search={"hidden_units": [13, 16]}, fixed={})
    data["task"]["model"] = {"class_path": "lt_digits.models.Explodes", "init_args": {"hidden_layers": 1}}
    url = f"sqlite:///{tmp_path / 's.db'}"
    s = run_study(define_data(data), url)
    failed = [t for t in s.trials if t.state == optuna.trial.TrialState.FAIL]
    done = [t for t in s.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert failed and done  # the study went on after the failing trial
    assert all(t.params["hidden_units"] == 13 for t in failed)
    assert {t.user_attrs["fail_reason"] for t in failed} == {"RuntimeError: boom in training_step"}
    assert all(set(t.intermediate_values) == {0} for t in done)  # the logged val_acc reported for pruning
    assert all(t.user_attrs["val_acc"] == t.value and t.user_attrs["epochs"] == 1 for t in done)


def test_populations_cannot_stack_a_lightning_task() -> None:
    from hpsearch.run.trial_loop import _no_population_reason

    reason = _no_population_reason(define_data(study(population=4)))
    assert reason is not None and "cannot stack" in reason


def test_scheduler_hook_and_optimizer_by_role() -> None:
    d = define_data(study(fixed={"hidden_units": 16, "optimizer": "sgd", "momentum": 0.5, "learning_rate": 0.2},
                          search={}, task={"model": {"class_path": "lt_digits.models.WithScheduler"}}))
    from hpsearch.study.space import settings_for

    settings = settings_for({}, d.config, d.task)
    model = d.task.build_model(settings.reg, settings.options, None)
    conf = model.configure_optimizers()
    from hpsearch.sgdw import SGDW

    assert isinstance(conf["optimizer"], SGDW) and conf["optimizer"].param_groups[0]["lr"] == 0.2
    assert conf["optimizer"].param_groups[0]["momentum"] == 0.5
    assert type(conf["lr_scheduler"]).__name__ == "StepLR"


def test_stored_study_imports_only_from_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpsearch.run.runner import run_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    run_study(define_data(study(trials=1)), url)
    stored = optuna.load_study(study_name="lt", storage=url)
    assert searched_definition(stored).task.lightning is not None  # from the project: rebuilt
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError, match="imports a stored study's classes only from the project's Python files under the current directory"):
        searched_definition(stored)


def test_stored_study_never_imports_an_installed_package() -> None:
    boring = study(task={"model": {"class_path": "lightning.pytorch.demos.boring_classes.BoringModel"},
                         "data": {"class_path": "lightning.pytorch.demos.boring_classes.BoringDataModule"},
                         "metric": "valid_loss"}, fixed={})
    assert define_data(boring).task.lightning is not None  # a study file the user hands in may name it
    with pytest.raises(ConfigError, match="comes from a stored study"):
        define_data(boring, stored=True)


def test_resolve_task_refuses_a_lightning_name() -> None:
    from hpsearch.tasks import resolve_task

    with pytest.raises(ConfigError, match="rebuilt from its study's task block"):
        resolve_task("lightning:lt_digits.models.DigitsMLP+lt_digits.data.DigitsData")


def test_checkpoint_resume_continues_a_lightning_trial(tmp_path: Path) -> None:
    """A re-run of a dead worker's trial resumes from its last epoch's checkpoint."""
    from hpsearch.run.checkpoints import EpochCheckpoint
    from hpsearch.run.training import fit
    from hpsearch.study.space import settings_for

    d = define_data(study(search={}))
    settings = settings_for({}, d.config, d.task)
    data = d.task.splits(0, settings.options)
    path = tmp_path / "trial-0.ckpt"
    first = fit(d.task, settings, data, max_epochs=2, seed=3, callbacks=[EpochCheckpoint(path)], accelerator="cpu")
    assert first.error is None and first.epochs == 2 and path.exists()
    again = EpochCheckpoint(path)
    resumed = fit(d.task, settings, data, max_epochs=3, seed=3, callbacks=[again], accelerator="cpu", ckpt_path=str(path))
    assert resumed.error is None, resumed.error
    assert again.resumed_from_epoch == 2 and resumed.epochs == 3
    assert resumed.steps == 3 * 9  # 1,077 digits in batches of 128: no epoch trained twice


EVIL = """from pathlib import Path
Path({marker!r}).write_text("imported")
import lightning.pytorch as pl


class Net(pl.LightningModule):
    pass
"""


def _evil_package(folder: Path, marker: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(EVIL.format(marker=str(marker)))
    (folder / "nets.py").write_text(EVIL.format(marker=str(marker)))


def _stored_ref(class_path: str) -> Any:
    from hpsearch.lightning_task.config import ClassRef

    return ClassRef(class_path=class_path)


def test_stored_study_refuses_a_package_installed_under_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package in ./.venv is under the current directory but is not the project."""
    import lightning.pytorch as pl

    from hpsearch.lightning_task.imports import import_class

    site = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    (tmp_path / ".venv" / "pyvenv.cfg").parent.mkdir()
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    marker = tmp_path / "imported.txt"
    _evil_package(site / "evilpkg_site", marker)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    for path in ("evilpkg_site.nets.Net", "evilpkg_site.Net"):
        with pytest.raises(ConfigError) as err:
            import_class(_stored_ref(path), pl.LightningModule, "db: task.model", stored=True)
        assert "comes from a stored study" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_stored_study_checks_every_parent_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package under the current directory whose __init__.py is a link to a file elsewhere is
    refused before anything runs (the module itself is under the current directory)."""
    import lightning.pytorch as pl

    from hpsearch.lightning_task.imports import import_class

    project, outside = tmp_path / "project", tmp_path / "outside"
    marker = tmp_path / "imported.txt"
    _evil_package(outside / "evilpkg_link", marker)
    (project / "evilpkg_link").mkdir(parents=True)
    (project / "evilpkg_link" / "__init__.py").symlink_to(outside / "evilpkg_link" / "__init__.py")
    (project / "evilpkg_link" / "nets.py").write_text("import lightning.pytorch as pl\n\n\nclass Net(pl.LightningModule):\n    pass\n")
    monkeypatch.chdir(project)
    with pytest.raises(ConfigError, match="is not under the current directory"):
        import_class(_stored_ref("evilpkg_link.nets.Net"), pl.LightningModule, "db: task.model", stored=True)
    assert not marker.exists() and "evilpkg_link" not in __import__("sys").modules


def test_imports_leave_sys_path_as_it_was() -> None:
    import sys

    import lightning.pytorch as pl

    from hpsearch.lightning_task.imports import import_class

    before = list(sys.path)
    assert import_class(_stored_ref("lt_digits.models.DigitsMLP"), pl.LightningModule, "s", stored=True).__name__ == "DigitsMLP"
    assert import_class(_stored_ref("lt_digits.data.DigitsData"), pl.LightningDataModule, "s").__name__ == "DigitsData"
    assert sys.path == before


def test_regularization_named_settings_reach_the_datamodule() -> None:
    """``input_norm`` taken by the DataModule's __init__ gets the trial's value, in training and
    when a split is scored."""
    from hpsearch.run.training import fit
    from hpsearch.study.space import settings_for

    d = define_data(study(search={"input_norm": ["standardize"]}, fixed={"hidden_units": 8},
                          task={"data": {"class_path": "lt_digits.data.NormData", "init_args": {"batch_size": 256}}}))
    assert d.task.lightning.routes == {"input_norm": ("data",), "hidden_units": ("model",)}
    NormData: Any = d.task.lightning.data_cls
    settings = settings_for({"input_norm": "standardize"}, d.config, d.task)
    data = d.task.splits(0, settings.options)
    NormData.built.clear()
    result = fit(d.task, settings, data, max_epochs=1, seed=1, accelerator="cpu")
    assert result.error is None
    data.test.evaluate(result.model)
    assert NormData.built == ["standardize", "standardize"]


def _dropout_level_study() -> Any:
    """A question whose one level sets keep_prob and activation on an ActMLP with its own
    dropout 0.2 and activation tanh."""
    return define_data(study(search={"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}, fixed={},
                             question={"asks": "Does dropout help?", "levels": {"plain": {}, "drop": {"keep_prob": 0.5, "activation": "relu"}},
                                       "compare": "keep_prob", "reference": "plain", "budget": 2, "seeds": 2, "min_effect": 0.01},
                             task={"model": {"class_path": "lt_digits.models.ActMLP",
                                             "init_args": {"dropout": 0.2, "activation": "tanh"}}}))


def test_role_and_routed_settings_act_only_when_the_trial_sets_them() -> None:
    """The study sets keep_prob and activation in one question level only: a trial of the other
    level keeps the module's own dropout and its init_args activation."""
    from hpsearch.study.space import settings_for

    d = _dropout_level_study()
    setup = d.task.lightning
    trial = settings_for({"learning_rate": 0.005}, d.config, d.task)
    model = setup.build_model(trial.reg, trial.options, named=trial.named)
    assert model.net[2].p == pytest.approx(0.2) and model.activation == "tanh"
    baseline = settings_for({"learning_rate": 0.01, "keep_prob": 0.5, "activation": "relu"}, d.config, d.task)
    model = setup.build_model(baseline.reg, baseline.options, named=baseline.named)
    assert model.net[2].p == pytest.approx(0.5) and model.activation == "relu"


def test_the_datamodule_split_follows_the_study_seed_only() -> None:
    """A DataModule splitting with the global generator gets the same split in every trial
    (different trial seeds) and when verify/answer score a split."""
    from hpsearch.run.training import fit
    from hpsearch.study.space import settings_for

    d = define_data(study(search={}, seed=7,
                          task={"data": {"class_path": "lt_digits.data.RandomSplitData", "init_args": {"batch_size": 256}}}))
    RandomSplitData: Any = d.task.lightning.data_cls
    settings = settings_for({}, d.config, d.task)
    data = d.task.splits(0, settings.options)
    RandomSplitData.seen.clear()
    models = [fit(d.task, settings, data, max_epochs=1, seed=s, accelerator="cpu").model for s in (1, 2)]
    data.val.evaluate(models[0])
    assert len(RandomSplitData.seen) == 3 and len(set(RandomSplitData.seen)) == 1
    import torch

    torch.manual_seed(1)
    first = torch.nn.Linear(4, 4).weight.detach().clone()
    torch.manual_seed(2)
    assert not torch.equal(first, torch.nn.Linear(4, 4).weight)  # the trial seeds do differ


def test_l2_as_a_loss_term_skips_a_step_without_gradients() -> None:
    """A skipped batch (no gradient anywhere in scope) gets no decay-only step; a real one does."""
    import torch

    from hpsearch.study.space import settings_for

    d = define_data(study(search={}, fixed={"hidden_units": 8, "weight_decay": 0.1, "l2_mode": "loss"}))
    settings = settings_for({}, d.config, d.task)
    model = d.task.lightning.build_model(settings.reg, settings.options, named=settings.named)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.on_before_optimizer_step(optimizer)
    assert all(p.grad is None for p in model.parameters())
    model(torch.zeros(2, 64)).sum().backward()
    model.on_before_optimizer_step(optimizer)
    first = model.net[0].weight
    assert first.grad is not None and torch.allclose(first.grad, 0.1 * first.detach())  # zero input: only λ·w


def test_a_model_file_rebuilds_with_the_settings_its_trial_set(tmp_path: Path) -> None:
    """load_model builds the module as the trial did: settings the trial did not set keep the
    module's own dropout and init_args (the names are kept in the file as task_named)."""
    import torch

    from hpsearch.models.checkpoint import checkpoint_dict
    from hpsearch.models.load import load_model
    from hpsearch.study.space import settings_for

    d = _dropout_level_study()
    setup = d.task.lightning
    trial = settings_for({"learning_rate": 0.005}, d.config, d.task)
    assert trial.named is not None
    model = setup.build_model(trial.reg, trial.options, named=trial.named)
    info = {"study": "lt", "trial": 0, "task": d.config.task_ref, "data_seed": 0, "seed": 1, "settings": trial.as_dict(),
            "metrics": {}, **setup.model_file_info(), "task_named": sorted(trial.named)}
    torch.save(checkpoint_dict(info, model.state_dict()), tmp_path / "m.pt")
    loaded, _ = load_model(tmp_path / "m.pt")
    assert loaded.activation == "tanh" and loaded.net[2].p == pytest.approx(0.2)
