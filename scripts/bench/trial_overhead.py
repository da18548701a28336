"""Trial overhead: one hpsearch trial vs a hand-written PyTorch loop doing the same work.

Both sides train the same digits-mlp configuration (2 × 256 hidden units, batchnorm, dropout,
AdamW, batch 64) for the same number of epochs: same data, model builder, seed, optimizer
steps and whole-split validations, same torch thread count. Side (b) is a real trial: Optuna
study on a real SQLite file, Lightning Trainer, pruning callback, user attrs written.

Prints each pair and ends with ``RESULT trial_overhead <median b/a> goal <= 1.15``.
Usage: python scripts/bench/trial_overhead.py [--pairs 15] [--epochs 20] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from hpsearch.regularization import make_optimizer
from hpsearch.study.config import parse_study
from hpsearch.study.space import settings_for
from hpsearch.tasks import resolve_task

STUDY = """
study: overhead
task: digits-mlp
trials: 1
max_epochs: {epochs}
seed: 0
sampler: {{type: random}}
pruner: {{type: none}}
search: {{}}
fixed:
  hidden_units: 256
  hidden_layers: 2
  batchnorm: before_activation
  keep_prob: 0.8
  optimizer: adamw
  learning_rate: 0.001
  weight_decay: 0.0001
  batch_size: 64
"""


def raw_loop(epochs: int, seed: int) -> tuple[float, float]:
    """The plain PyTorch loop: in-memory tensors, randperm batches, whole-split validation."""
    config = parse_study(STUDY.format(epochs=epochs))
    task = resolve_task("digits-mlp")
    data = task.load_data(config.seed)
    settings = settings_for({}, config, task)
    started, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    model = task.build_model(settings.reg, settings.options, data).net
    opt = make_optimizer(model, settings.reg)
    loss_fn = nn.CrossEntropyLoss()
    (x, y), (vx, vy) = data.train, data.val
    gen = torch.Generator().manual_seed(seed)
    bs = settings.options["batch_size"]
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        xs, ys = x[order], y[order]
        for start in range(0, len(x), bs):
            opt.zero_grad()
            loss = loss_fn(model(xs[start : start + bs]), ys[start : start + bs])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(vx).argmax(1) == vy).float().mean())
    assert acc > 0.5
    return time.perf_counter() - started, time.process_time() - cpu


def open_bench_study(epochs: int, db: Path):  # noqa: ANN201 - (study, objective)
    """The benchmark study on a real SQLite file, opened the way ``hpsearch optimize`` does."""
    from hpsearch.run.runner import open_study
    from hpsearch.study.config import StudyFile
    from hpsearch.study.definition import define

    text = STUDY.format(epochs=epochs)
    return open_study(define(StudyFile(path="<bench>", text=text, config=parse_study(text))), f"sqlite:///{db}")


def hpsearch_trial(study, objective) -> tuple[float, float]:  # noqa: ANN001
    """One real trial of the open study: sampling, Trainer, pruning callback, per-epoch
    reports and user attrs written to SQLite."""
    started, cpu = time.perf_counter(), time.process_time()
    study.optimize(objective, n_trials=1)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    last = study.trials[-1]
    assert last.state.name == "COMPLETE" and last.user_attrs["epochs"] == objective.definition.config.max_epochs
    return seconds, cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both sides (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from hpsearch.logs import setup_logging

    setup_logging(0, None)
    print(f"torch threads: {torch.get_num_threads()}, epochs: {args.epochs}")
    with tempfile.TemporaryDirectory() as tmp:
        study, objective = open_bench_study(args.epochs, Path(tmp) / "bench.db")
        hpsearch_trial(study, objective)  # warm-up: imports, first Trainer
        raw_loop(1, 0)
        ratios, cpu_ratios = [], []
        for i in range(args.pairs):
            if i % 2:  # alternate the order so drift in machine speed hits both sides alike
                b, b_cpu = hpsearch_trial(study, objective)
                a, a_cpu = raw_loop(args.epochs, seed=0)
            else:
                a, a_cpu = raw_loop(args.epochs, seed=0)
                b, b_cpu = hpsearch_trial(study, objective)
            ratios.append(b / a)
            cpu_ratios.append(b_cpu / a_cpu)
            print(f"pair {i}: raw {a:.3f} s, hpsearch trial {b:.3f} s, ratio {b / a:.3f} "
                  f"(overhead {1000 * (b - a):.0f} ms; CPU time ratio {b_cpu / a_cpu:.3f})")
    print(f"median CPU-time ratio {statistics.median(cpu_ratios):.3f}")
    print(f"RESULT trial_overhead {statistics.median(ratios):.3f} goal <= 1.15")


if __name__ == "__main__":
    main()
