"""Exactness: a digits MLP written as a plain LightningModule, tuned as a Lightning task, holds
the same weights after one epoch as the built-in ``digits-mlp`` with the same seed and settings,
for every optimizer x l2_mode x l2_scope, and with dropout (keep_prob) set on its layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpsearch.run.training import fit
from hpsearch.study.config import StudyFile, parse_study
from hpsearch.study.definition import define
from hpsearch.study.space import settings_for

PROJECT = Path(__file__).resolve().parent / "lightning_project"
SEED = 7


def _definition(task: str, fixed: dict[str, object]) -> object:
    lines = [f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in fixed.items()]
    text = f"study: exact\ntask: {task}\ntrials: 1\nmax_epochs: 1\nfixed: {{{', '.join(lines)}}}\n"
    return define(StudyFile("exact.yaml", text, parse_study(text, "exact.yaml")))


LIGHTNING = ("{model: {class_path: lt_digits.models.DigitsMLP, init_args: {hidden_layers: 2}}, "
             "data: {class_path: lt_digits.data.DigitsData, init_args: {order_seed: 7}}, metric: val_acc, direction: maximize}")


def _weights(task_ref: str, fixed: dict[str, object]) -> list[torch.Tensor]:
    definition = _definition(task_ref, fixed)
    task = definition.task  # type: ignore[attr-defined]
    settings = settings_for({}, definition.config, task)  # type: ignore[attr-defined]
    data = task.splits(0, settings.options)
    result = fit(task, settings, data, max_epochs=1, seed=SEED, accelerator="cpu")
    assert result.error is None, result.error
    assert result.steps == 17  # 1,077 training digits in batches of 64
    return [p.detach().clone() for p in result.model.parameters()]


def _initial(fixed: dict[str, object]) -> list[torch.Tensor]:
    """The Lightning task's module as initialized with the seed (before training)."""
    definition = _definition(LIGHTNING, fixed)
    settings = settings_for({}, definition.config, definition.task)  # type: ignore[attr-defined]
    torch.manual_seed(SEED)
    return [p.detach() for p in definition.task.build_model(settings.reg, settings.options, None).parameters()]  # type: ignore[attr-defined]


CASES = [(opt, mode, scope) for opt in ("adamw", "adam", "sgd") for mode in ("decoupled", "loss") for scope in ("all", "weights", "fc")]


@pytest.mark.parametrize("optimizer,l2_mode,l2_scope", CASES)
def test_same_weights_as_builtin(optimizer: str, l2_mode: str, l2_scope: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT)
    fixed = {"optimizer": optimizer, "l2_mode": l2_mode, "l2_scope": l2_scope, "weight_decay": 0.05,
             "learning_rate": 0.05 if optimizer == "sgd" else 0.003, "keep_prob": 1.0, "hidden_units": 32}
    builtin = _weights("digits-mlp", {**fixed, "hidden_layers": 2, "batch_size": 64})
    own = _weights(LIGHTNING, fixed)
    assert len(builtin) == len(own) == 6
    start = _initial(fixed)
    for a, b in zip(builtin, own):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    # the runs really trained (not two copies of the initial weights)
    assert any(not torch.allclose(a, s) for a, s in zip(builtin, start))


def test_same_weights_with_dropout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT)
    fixed = {"optimizer": "adamw", "weight_decay": 0.01, "learning_rate": 0.003, "keep_prob": 0.6, "hidden_units": 32}
    builtin = _weights("digits-mlp", {**fixed, "hidden_layers": 2, "batch_size": 64})
    own = _weights(LIGHTNING, fixed)
    for a, b in zip(builtin, own):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    definition = _definition(LIGHTNING, fixed)
    settings = settings_for({}, definition.config, definition.task)  # type: ignore[attr-defined]
    model = definition.task.build_model(settings.reg, settings.options, None)  # type: ignore[attr-defined]
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == pytest.approx([0.4, 0.4])
