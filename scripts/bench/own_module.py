"""Your own Lightning project: one hpsearch trial of a user's module vs ``Trainer.fit`` of the
same module and DataModule by hand.

Both sides train examples/image-folder's SmallCNN on its PNG files (written to a temporary
directory by its make_images.py), read by 2 DataLoader workers with augmentation, for the same
epochs, after ``seed_everything(seed, workers=True)``, with the same lean Trainer (no logger,
progress bar, model summary, checkpointing or sanity validation), in one process, alternating
the order of the pair. Side (b) is a real trial: an Optuna study on a real SQLite file, the
class imported from the study's task block, hpsearch's optimizer (AdamW with decoupled decay
on the fc layers), keep_prob on the dropout layers, pruning and progress callbacks, the
logged-metric capture, user attrs written; side (a) uses the module's own optimizer (Adam).

Prints each pair and ends with ``RESULT own_module_overhead <median b/a> goal <= 1.1``.
Usage: python scripts/bench/own_module.py [--pairs 7] [--epochs 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "image-folder"

STUDY = """
study: own-module
task:
  model: {{class_path: imgfolder.models.SmallCNN, init_args: {{num_classes: 3, channels: 16, hidden: 64}}}}
  data: {{class_path: imgfolder.data.ImageFolderData, init_args: {{root: {root}, batch_size: 32, num_workers: {workers}}}}}
  metric: val_acc
  direction: maximize
trials: 1
max_epochs: {epochs}
seed: 0
sampler: {{type: random}}
pruner: {{type: none}}  # every trial runs all epochs (the pruning callback still reports each one)
fixed: {{learning_rate: 0.003, weight_decay: 0.01, l2_scope: fc, keep_prob: 0.75}}
"""


def by_hand(root: str, epochs: int, workers: int, seed: int) -> float:
    """``Trainer.fit(SmallCNN, ImageFolderData)`` as a user writes it, lean Trainer."""
    import lightning.pytorch as pl
    from imgfolder.data import ImageFolderData
    from imgfolder.models import SmallCNN

    started = time.perf_counter()
    pl.seed_everything(seed, workers=True, verbose=False)
    model = SmallCNN(num_classes=3, channels=16, hidden=64)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, ImageFolderData(root=root, batch_size=32, num_workers=workers))
    assert "val_acc" in trainer.callback_metrics
    return time.perf_counter() - started


def hpsearch_trial(study, objective) -> float:  # noqa: ANN001
    """One real trial of the open study."""
    started = time.perf_counter()
    study.optimize(objective, n_trials=1)
    seconds = time.perf_counter() - started
    last = study.trials[-1]
    assert last.state.name in ("COMPLETE", "PRUNED"), last.user_attrs.get("fail_reason")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers on both sides")
    args = parser.parse_args()
    import torch

    from hpsearch.logs import setup_logging
    from hpsearch.run.runner import open_study
    from hpsearch.run.training import quiet_lightning
    from hpsearch.study.config import StudyFile, parse_study
    from hpsearch.study.definition import define

    setup_logging(0, None)
    quiet_lightning()
    os.chdir(EXAMPLE)  # hpsearch imports the task block's classes from the current directory
    sys.path.insert(0, str(EXAMPLE))
    with tempfile.TemporaryDirectory() as tmp:
        root = str(Path(tmp) / "images")
        subprocess.run([sys.executable, "make_images.py", "--root", root], check=True, capture_output=True)
        text = STUDY.format(root=root, epochs=args.epochs, workers=args.workers)
        study, objective = open_study(define(StudyFile("<bench>", text, parse_study(text))), f"sqlite:///{tmp}/bench.db")
        print(f"torch threads: {torch.get_num_threads()}, epochs: {args.epochs}, DataLoader workers: {args.workers}")
        hpsearch_trial(study, objective)  # warm-up: imports, first Trainer, file cache
        by_hand(root, 1, args.workers, 0)
        ratios = []
        for i in range(args.pairs):
            if i % 2:
                b = hpsearch_trial(study, objective)
                a = by_hand(root, args.epochs, args.workers, seed=0)
            else:
                a = by_hand(root, args.epochs, args.workers, seed=0)
                b = hpsearch_trial(study, objective)
            ratios.append(b / a)
            print(f"pair {i}: Trainer.fit by hand {a:.3f} s, hpsearch trial {b:.3f} s, ratio {b / a:.3f} "
                  f"(overhead {1000 * (b - a):.0f} ms)", flush=True)
    print(f"RESULT own_module_overhead {statistics.median(ratios):.3f} goal <= 1.1")


if __name__ == "__main__":
    main()
