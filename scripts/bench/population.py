"""Populations: the stacked step against plain PyTorch, and whole commands with ``--population
1`` and ``--population K`` side by side.

``--part`` picks what runs (default: all, in this order):

- ``step``: 16 stacked digits MLPs 64-128-128-10 with dropout, batch 64, AdamW, on the digits
  training split, without Lightning: (a) the plain PyTorch stacked loop (``baddbmm``, one
  dropout-mask draw per step, ``fused=True`` AdamW), (b) the matrix products of that step alone,
  (c) hpsearch's stacked module with its optimizer, loss and penalty path (members with their
  own learning rate, decay and dropout), (d) for comparison, (a) with (c)'s weight layout and
  in-place dropout mask. Milliseconds per step, best of ``--step-repeats``;
  ``RESULT population_step_ratio <(c)/(a)> goal <= 1.1``.
- ``mlp``: per seed (``--seeds``), a ``--trials`` (192) trial digits-mlp study on the quickstart
  search space (48 distinct proposals' worth of space; random sampler, no pruner,
  ``--max-epochs`` 20), each side a whole ``hpsearch optimize`` command (a new process: start-up,
  data, training, database) with population 1 and ``--population`` (16).
  ``RESULT population_speedup <t(1)/t(K)> goal >= 3`` and ``population_best_acc_gap``.
- ``hyperband``: the quickstart study itself (TPE + Hyperband), ``--hyperband-trials`` (192).
  ``RESULT population_hyperband_speedup <ratio> goal >= 2`` and ``population_hyperband_acc_gap``.
- ``toy2d``: the activation study's search space (data set x activation x width x learning
  rate; random sampler, no pruner, Adam, batch 64), ``--toy2d-trials`` (256) x
  ``--toy2d-epochs`` (200), population 1 against ``--toy2d-population`` (64).
  ``RESULT population_toy2d_speedup <ratio> goal >= 10`` and ``population_toy2d_acc_gap``.

Both sides of a comparison see the same random proposals and per-trial seeds, so the best
accuracies should agree up to dropout masks and float rounding. ``--device cuda`` runs the
commands on the first GPU (``--device cpu``, the default, hides any GPU).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from common import QUICKSTART_SEARCH, RANDOM_STUDY, REPO, result

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")



TOY2D_STUDY = """
study: population
task: toy2d-mlp
metric: val_acc
trials: {trials}
max_epochs: {epochs}
seed: 0
sampler: {{type: random}}
pruner: {{type: none}}
{search}fixed:
  optimizer: adam
  batch_size: 64
"""

THREADS = {"n": 1}


def run(study: Path, url: str, population: int, device: str, extra: list[str]) -> float:
    """Wall seconds of one whole ``hpsearch optimize`` command."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(THREADS["n"])
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    started = time.perf_counter()
    subprocess.run([HPSEARCH, "optimize", str(study), "--storage", url, "--population", str(population), "-q", *extra],
                   check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def best(url: str, name: str) -> float:
    return optuna.load_study(study_name=name, storage=url).best_value


STEP_K, STEP_WIDTH, STEP_BATCH = 16, 128, 64  # the shapes of the step part


def _step_regs(k: int) -> list[Any]:
    """``k`` AdamW members with their own learning rate, decay and dropout."""
    from hpsearch.regularization import Regularization

    return [Regularization(learning_rate=10 ** (-3 + (i % 4) / 2), weight_decay=10 ** (-4 + i % 3), optimizer="adamw",
                           keep_prob=0.5 + 0.4 * ((i * 7) % k) / k, l2_mode="decoupled") for i in range(k)]


def _orders(k: int, n: int) -> torch.Tensor:
    gens = [torch.Generator().manual_seed(i) for i in range(k)]
    return torch.stack([torch.randperm(n, generator=g) for g in gens])


def plain_epoch(x: torch.Tensor, y: torch.Tensor, k: int, epochs: int, matmul_only: bool = False,
                tuned: bool = False) -> tuple[float, int]:
    """(seconds, steps) of the plain PyTorch stacked loop: per step one gather of every member's
    batch, three ``baddbmm``, one dropout-mask draw, mean cross entropy, backward, fused AdamW.
    ``matmul_only``: the matrix products alone (forward ``baddbmm`` and the backward products
    for the input and weight gradients) on the same shapes. ``tuned``: the plain loop with the
    two layout choices hpsearch's step makes (weights stored (K, in, out), so that the weight
    gradient needs no transposing copy; the dropout mask made in place, without a bool -> float
    copy), for comparison only (the goal is stated against the plain loop)."""
    import torch.nn.functional as F

    sizes = [x.shape[1], STEP_WIDTH, STEP_WIDTH, 10]
    torch.manual_seed(0)
    ws = [(torch.randn(k, o, i) / i**0.5) for i, o in zip(sizes, sizes[1:])]
    ws = [(w.transpose(1, 2).contiguous().transpose(1, 2) if tuned else w).requires_grad_() for w in ws]
    bs = [torch.zeros(k, 1, o).requires_grad_() for o in sizes[1:]]
    opt = torch.optim.AdamW([*ws, *bs], lr=1e-3, weight_decay=1e-2, fused=True)
    keep = torch.linspace(0.5, 0.9, k).view(k, 1, 1).expand(k, 1, STEP_WIDTH)
    inv_keep = 1 / keep
    xs = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)  # the input standardization, once
    n, steps = y.shape[0], 0
    started = time.perf_counter()
    for _ in range(epochs):
        orders = _orders(k, n)
        for start in range(0, n, STEP_BATCH):
            index = orders[:, start:start + STEP_BATCH]
            xb, yb = xs[index], y[index]
            b = xb.shape[1]
            steps += 1
            if matmul_only:
                with torch.no_grad():
                    h = xb
                    for w, bias in zip(ws, bs):
                        g = torch.baddbmm(bias, h, w.transpose(1, 2))
                        torch.bmm(g.transpose(1, 2), h)  # weight gradient
                        torch.bmm(g, w)  # input gradient
                        h = g
                continue
            if tuned:
                scale = torch.rand(len(ws) - 1, k, b, STEP_WIDTH)
                scale.lt_(keep).mul_(inv_keep)
            else:
                scale = (torch.rand(len(ws) - 1, k, b, STEP_WIDTH) < keep) * inv_keep  # every layer's mask/keep
            h = xb
            for j, (w, bias) in enumerate(zip(ws, bs)):
                h = torch.baddbmm(bias, h, w.transpose(1, 2))
                if j < len(ws) - 1:
                    h = h.relu() * scale[j]
            loss = F.cross_entropy(h.reshape(-1, 10), yb.reshape(-1), reduction="none").view(k, -1).mean(1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - started, steps


def product_epoch(x: torch.Tensor, y: torch.Tensor, k: int, epochs: int) -> tuple[float, int]:
    """(seconds, steps) of hpsearch's stacked module on the same shapes: ``k`` digits-mlp members
    built by the task, stacked, trained with the population optimizer and loss (no Lightning)."""
    from hpsearch.population.module import population_of
    from hpsearch.tasks import resolve_task

    task = resolve_task("digits-mlp")
    data = task.splits(0, {"hidden_units": STEP_WIDTH, "hidden_layers": 2})
    regs = _step_regs(k)
    singles = []
    for i, reg in enumerate(regs):
        torch.manual_seed(i)
        singles.append(task.build_model(reg, {"hidden_units": STEP_WIDTH, "hidden_layers": 2, "batch_size": STEP_BATCH}, data))
    pop = population_of(singles, regs, list(range(k)), STEP_BATCH)
    opt = pop.configure_optimizers()
    pop.train()
    n = y.shape[0]
    started = time.perf_counter()
    for _ in range(epochs):
        pop.train_epoch(x, y, opt)
    return time.perf_counter() - started, epochs * math.ceil(n / STEP_BATCH)


def step_part(epochs: int, repeats: int) -> None:
    """Part 0: per-step milliseconds of the plain loop, the matrix products alone and the product's step."""
    from hpsearch.tasks import resolve_task

    data = resolve_task("digits-mlp").splits(0, {"hidden_units": STEP_WIDTH, "hidden_layers": 2})
    x, y = data.train
    k = STEP_K
    print(f"step: {k} stacked digits MLPs {x.shape[1]}-{STEP_WIDTH}-{STEP_WIDTH}-10, dropout, batch {STEP_BATCH}, AdamW, "
          f"{epochs} epoch(s) of {y.shape[0]} examples, best of {repeats}; {torch.get_num_threads()} torch thread(s); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    variants = {"plain": lambda: plain_epoch(x, y, k, epochs),
                "matmul": lambda: plain_epoch(x, y, k, epochs, matmul_only=True),
                "product": lambda: product_epoch(x, y, k, epochs),
                "tuned": lambda: plain_epoch(x, y, k, epochs, tuned=True),
                "one model": lambda: plain_epoch(x, y, 1, epochs)}
    for fn in variants.values():
        fn()  # warm-up
    timings = {name: math.inf for name in variants}
    for _ in range(repeats):  # interleaved, so that a change of load hits every variant alike
        for name, fn in variants.items():
            seconds, steps = fn()
            timings[name] = min(timings[name], seconds / steps * 1e3)
    print(f"  (a) plain PyTorch stacked loop: {timings['plain']:.3f} ms/step "
          f"(one model alone: {timings['one model']:.3f} ms/step)", flush=True)
    print(f"  (b) matrix products alone:      {timings['matmul']:.3f} ms/step", flush=True)
    print(f"  (c) hpsearch stacked step:      {timings['product']:.3f} ms/step", flush=True)
    print(f"  (d) the plain loop with (c)'s weight layout and in-place mask: {timings['tuned']:.3f} ms/step "
          f"(for comparison; (c)/(d) = {timings['product'] / timings['tuned']:.2f})", flush=True)
    result("population_step_ratio", timings["product"] / timings["plain"], "<=", 1.1, ".2f")


def side_by_side(study: Path, tmp: Path, tag: str, k: int, device: str, extra: list[str] = ()) -> tuple[float, float, float, float]:
    """(t1, tK, best1, bestK) of the study with population 1 and k."""
    name = yaml.safe_load(study.read_text())["study"]
    out = []
    for size in (1, k):
        url = f"sqlite:///{tmp / f'{tag}-k{size}.db'}"
        seconds = run(study, url, size, device, list(extra))
        out.append((seconds, best(url, name)))
    (t1, b1), (tk, bk) = out
    print(f"  {tag}: population 1: {t1:.1f} s, best val_acc {b1:.4f}; population {k}: {tk:.1f} s, best val_acc {bk:.4f}; "
          f"speed-up {t1 / tk:.2f}x", flush=True)
    return t1, tk, b1, bk


def spread(xs: list[float]) -> str:
    """``mean ± sd`` (or the one value)."""
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


PARTS = ("step", "mlp", "hyperband", "toy2d")


def mlp_part(tmp: Path, args: argparse.Namespace) -> None:
    k = args.population
    times1, timesk, best1, bestk = [], [], [], []
    print(f"mlp: {args.trials} trials x {args.max_epochs} epochs, random sampler, no pruner, digits-mlp, K = {k}", flush=True)
    for seed in range(args.seeds):
        study = tmp / f"random-{seed}.yaml"
        study.write_text(RANDOM_STUDY.format(name="population", task="digits-mlp", trials=args.trials,
                                             epochs=args.max_epochs, seed=seed, search=QUICKSTART_SEARCH))
        t1, tk, b1, bk = side_by_side(study, tmp, f"seed {seed}", k, args.device)
        times1.append(t1)
        timesk.append(tk)
        best1.append(b1)
        bestk.append(bk)
    print(f"  best val_acc over {args.seeds} seed(s): population 1 {spread(best1)}; population {k} {spread(bestk)}")
    print(f"  load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    result("population_speedup", sum(times1) / sum(timesk), ">=", 3, ".2f")
    result("population_best_acc_gap", statistics.mean(bestk) - statistics.mean(best1), ">=", -0.01, ".4f")


def hyperband_part(tmp: Path, args: argparse.Namespace) -> None:
    k = args.population
    print(f"hyperband: quickstart (TPE + Hyperband), {args.hyperband_trials} trials x {args.max_epochs} epochs, K = {k}", flush=True)
    study = tmp / "quickstart.yaml"
    study.write_text((REPO / "studies" / "quickstart.yaml").read_text())
    t1, tk, b1, bk = side_by_side(study, tmp, "quickstart", k, args.device,
                                  ["--trials", str(args.hyperband_trials), "--max-epochs", str(args.max_epochs)])
    print(f"  load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    result("population_hyperband_speedup", t1 / tk, ">=", 2, ".2f")
    result("population_hyperband_acc_gap", bk - b1, ">=", -0.01, ".4f")


def toy2d_part(tmp: Path, args: argparse.Namespace) -> None:
    k = args.toy2d_population
    search = {"search": yaml.safe_load((REPO / "studies" / "activations.yaml").read_text())["search"]}
    print(f"toy2d: the activation study's space, {args.toy2d_trials} trials x {args.toy2d_epochs} epochs, random sampler, "
          f"no pruner, K = {k}", flush=True)
    study = tmp / "toy2d.yaml"
    study.write_text(TOY2D_STUDY.format(trials=args.toy2d_trials, epochs=args.toy2d_epochs,
                                        search=yaml.safe_dump(search, default_flow_style=False, sort_keys=False)))
    t1, tk, b1, bk = side_by_side(study, tmp, "toy2d", k, args.device)
    print(f"  load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    result("population_toy2d_speedup", t1 / tk, ">=", 10, ".2f")
    result("population_toy2d_acc_gap", bk - b1, ">=", -0.01, ".4f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=PARTS, action="append", help="run only this part (repeatable; default: all)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--trials", type=int, default=192)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--hyperband-trials", type=int, default=192)
    parser.add_argument("--no-hyperband", action="store_true", help="Skip the hyperband part.")
    parser.add_argument("--toy2d-trials", type=int, default=256)
    parser.add_argument("--toy2d-epochs", type=int, default=200)
    parser.add_argument("--toy2d-population", type=int, default=64)
    parser.add_argument("--step-epochs", type=int, default=3, help="epochs of each timed run of the step part")
    parser.add_argument("--step-repeats", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each command and of the step part (1: steadier timings on a shared machine)")
    args = parser.parse_args()
    parts = args.part or [p for p in PARTS if not (p == "hyperband" and args.no_hyperband)]
    THREADS["n"] = args.threads
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{os.cpu_count()} CPUs, {args.threads} torch thread(s), device {args.device}; "
          f"load average {os.getloadavg()[0]:.1f} at start; parts {', '.join(parts)}", flush=True)
    if "step" in parts:
        step_part(args.step_epochs, args.step_repeats)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for part, fn in (("mlp", mlp_part), ("hyperband", hyperband_part), ("toy2d", toy2d_part)):
            if part in parts:
                fn(tmp, args)


if __name__ == "__main__":
    main()
