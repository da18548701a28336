"""Retrain several (configuration, seed) pairs as populations: pairs whose models share a layer
graph and data (same options, activation and split) train as one stacked model, each member
with its own seed and regularization; a task whose models cannot be stacked trains one at a time.
Each member's outcome is what :func:`hpsearch.analysis.retrain.retrain` would report."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hpsearch.analysis.retrain import Retrained, retrain
from hpsearch.errors import describe_exception
from hpsearch.study.meta import metric_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainJob:
    """One retrain: the study definition it belongs to, its searched values and seeds."""

    definition: Any
    params: Mapping[str, Any]
    seed: int
    data_seed: int


def retrain_all(jobs: Sequence[RetrainJob], population: int) -> list[Retrained]:
    """Every job's outcome, in order; up to ``population`` members per stacked model."""
    from hpsearch.run.collector import import_training_stack

    import_training_stack()  # (the first retrain of a process imports Lightning: collector paused)
    from hpsearch.population.run import group_key
    from hpsearch.study.space import settings_for

    out: list[Retrained | None] = [None] * len(jobs)
    groups: dict[Any, list[int]] = {}
    for i, job in enumerate(jobs):
        try:
            settings = settings_for(job.params, job.definition.config, job.definition.task)
        except Exception:  # retrain() reports the reason
            out[i] = retrain(job.definition, job.params, job.seed, job.data_seed)
            continue
        key = (job.definition.task.name, job.definition.config.max_epochs, job.data_seed, group_key(settings))
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        for start in range(0, len(members), max(population, 1)):
            chunk = members[start:start + max(population, 1)]
            results = _stacked([jobs[i] for i in chunk]) if len(chunk) > 1 else None
            for i, result in zip(chunk, results or [retrain(jobs[i].definition, jobs[i].params, jobs[i].seed,
                                                            jobs[i].data_seed) for i in chunk]):
                out[i] = result
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


def _stacked(jobs: Sequence[RetrainJob]) -> list[Retrained] | None:
    """Train ``jobs`` (one group) as one population; ``None`` when the models cannot be stacked."""
    import lightning.pytorch as pl
    import torch

    from hpsearch.population.module import PopulationFeed, population_of
    from hpsearch.population.stacked import Unsupported
    from hpsearch.run.curves import ValidationCurve
    from hpsearch.run.training import fit_catching, quiet_lightning
    from hpsearch.study.space import settings_for

    first = jobs[0].definition
    if first.task.lightning is not None:  # the user's own module cannot be stacked
        return None
    try:
        settings = [settings_for(j.params, j.definition.config, j.definition.task) for j in jobs]
        data = first.task.splits(jobs[0].data_seed, settings[0].options)
        singles = []
        for job, s in zip(jobs, settings):
            torch.manual_seed(job.seed)
            singles.append(first.task.build_model(s.reg, s.options, data))
        pop = population_of(singles, [s.reg for s in settings], [j.seed for j in jobs], int(settings[0].options.get("batch_size", 64)))
    except Unsupported:
        return None
    except Exception:  # a builder that fails: each retrain alone reports its own reason
        return None
    torch.manual_seed(jobs[0].seed)  # dropout masks of the group
    quiet_lightning()
    curve = ValidationCurve(first.metric)
    trainer = pl.Trainer(accelerator="auto", devices=1, max_epochs=first.config.max_epochs, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[curve])
    started = time.perf_counter()
    error = fit_catching(trainer, pop, PopulationFeed(data.train, data.val))
    seconds = (time.perf_counter() - started) / len(jobs)  # each member's share of the fit
    if error is not None:  # e.g. out of memory for the whole stack: each member alone gives its own outcome
        log.info("stacked retrain of %d members failed (%s); retraining them one at a time", len(jobs), describe_exception(error))
        return None
    from hpsearch.models.norms import weight_norms_before_batchnorm

    key = metric_key(first.metric)
    device = pop.device
    norms = [weight_norms_before_batchnorm(single) if _load_member(pop.net, pos, single) else {}
             for pos, single in enumerate(singles)]
    test = pop.member_metrics(_to(data.test[0], device), data.test[1].to(device)).get(key)
    train = pop.member_metrics(_to(data.train[0], device), data.train[1].to(device)).get(key)
    val = pop.val_metrics.get(first.metric)
    out = []
    for pos in range(len(jobs)):
        loss = pop.train_losses[pos] if pop.train_losses else 0.0
        value = None if test is None else float(test[pos])
        if not math.isfinite(loss) or value is None or not math.isfinite(value):
            reason = f"non-finite training loss ({loss})" if not math.isfinite(loss) else \
                f"the model reported no finite {key!r} on the test split (got {value!r})"
            out.append(Retrained(None, reason, pop.epochs_validated, seconds))
            continue
        out.append(Retrained(value, None, pop.epochs_validated, seconds, None if train is None else float(train[pos]),
                             None if val is None else float(val[pos]), tuple(curve.member(pos)), norms[pos] or None))
    return out


def _load_member(net: Any, k: int, single: Any) -> bool:
    """Copy member ``k``'s trained parameters from the stacked ``net`` into ``single`` (the
    member's own model as the task built it); False when they do not line up. The stacked
    parameters follow the single model's order, except BatchNorms the member does not use."""
    import torch

    from hpsearch.population.stacked import StackedBatchNorm
    from hpsearch.population.stacked_cnn import StackedBatchNorm2d

    stacked = []
    for module in net.modules():
        if isinstance(module, (StackedBatchNorm, StackedBatchNorm2d)) and not bool(module.use.flatten()[k]):
            continue
        stacked.extend(module.parameters(recurse=False))
    own = list(single.parameters())
    if len(own) != len(stacked) or any(a.numel() * net.size != b.numel() for a, b in zip(own, stacked)):
        return False
    with torch.no_grad():
        for a, b in zip(own, stacked):
            a.copy_(b[k].reshape(a.shape))
    return True


def _to(x: Any, device: Any) -> Any:
    from hpsearch.data import to_device

    return to_device(x, device)
