"""Trivial methods a task scored on its test split, shown beside every level of an answer.

A task puts them in ``DataSplits.info["test_baselines"]`` as ``{name: {"value": number,
"about": text}}``, in the units of the answer's test metric and on the split of the study's
seed (``load_data(seed)``); a task whose splits depend on the trial's options (``pick_data``)
gives each cell its own. The answer lists them per cell and warns when one is as good as or
better than every level of its cell: a verdict between models that a trivial method beats says
little.
"""

from __future__ import annotations

import math
from typing import Any

from hpsearch.errors import ConfigError

INFO_KEY = "test_baselines"


def _checked(task: str, raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"task {task}: info[{INFO_KEY!r}] must map a baseline name to {{value, about}}, got {type(raw).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if (not isinstance(name, str) or not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value)):
            raise ConfigError(f"task {task}: test baseline {name!r} needs a finite number as 'value', got {entry!r}")
        out[name] = {"value": float(value), "about": str(entry.get("about", ""))}
    return out


def cell_baselines(definition: Any, runs: list[Any]) -> list[dict[str, Any]]:
    """One row per (cell, baseline): ``{cell, within, name, value, about}``, for the split of the
    study's seed; empty when the task computes none."""
    rows = []
    for run in runs:
        raw = run.splits(definition.config.seed).info.get(INFO_KEY)
        if raw is None:
            continue
        for name, entry in _checked(run.definition.task.name, raw).items():
            rows.append({"cell": run.cell.key, "within": run.cell.within_label, "name": name, **entry})
    return rows


def baseline_warnings(baselines: list[dict[str, Any]], levels: list[dict[str, Any]], maximize: bool,
                      metric: str) -> list[str]:
    """A test baseline as good as or better than every level's test mean in its ``within`` cell."""
    out, seen = [], set()
    for b in baselines:
        key = (b["within"], b["name"])
        means = [lv["mean"] for lv in levels if lv["within"] == b["within"] and lv.get("mean") is not None]
        if key in seen or not means:
            continue
        seen.add(key)
        best = max(means) if maximize else min(means)
        if (b["value"] >= best) if maximize else (b["value"] <= best):
            where = f" ({b['within']})" if b["within"] else ""
            out.append(f"baseline {b['name']}{where} scores {metric} = {b['value']:.4g} on the test split, as good as "
                       f"or better than every level (best mean {best:.4g}): the models do not beat a trivial method")
    return out
