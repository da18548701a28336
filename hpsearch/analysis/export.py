"""Exports: all trials as CSV rows, the best settings as a pasteable YAML ``fixed:`` block."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Any

import optuna

from hpsearch.errors import ConfigError
from hpsearch.study.meta import BestResult, objective_names, primary_value

BASE_COLUMNS = ["number", "state", "value", "duration_s", "datetime_start", "datetime_complete"]


# A text cell starting with one of these is a formula in Excel/LibreOffice (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell: ``""`` for None, JSON for containers; a *text* value that a spreadsheet
    would run as a formula gets a leading ``'``. Numbers are written as they are (a negative
    value stays a number)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, default=str)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def trial_rows(study: optuna.Study) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row per trial: number, state, value, duration, ``params_NAME`` and
    ``user_attrs_NAME`` columns (union over all trials, sorted)."""
    trials = study.get_trials(deepcopy=False)
    params = sorted({k for t in trials for k in t.params})
    attrs = sorted({k for t in trials for k in t.user_attrs})
    multi = len(study.directions) > 1
    names = [f"value_{n}" for n in objective_names(study)] if multi else []  # every objective of a multi-objective study
    columns = BASE_COLUMNS + names + [f"params_{p}" for p in params] + [f"user_attrs_{a}" for a in attrs]
    rows = []
    for t in trials:
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "value": primary_value(t),
            "duration_s": None if duration is None else round(duration, 3),
            "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
            "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
        }
        row.update({n: (t.values[i] if t.values else None) for i, n in enumerate(names)})
        row.update({f"params_{p}": t.params.get(p) for p in params})
        row.update({f"user_attrs_{a}": t.user_attrs.get(a) for a in attrs})
        rows.append({k: _cell(v) for k, v in row.items()})
    return columns, rows


def write_trials_csv(study: optuna.Study, out: IO[str]) -> int:
    """Write every trial of ``study`` as CSV to ``out``; returns the number of rows."""
    columns, rows = trial_rows(study)
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return len(rows)


def best_yaml(best: BestResult) -> str:
    """The best settings (searched and fixed) as a ``fixed:`` YAML block with a comment
    saying where they come from; paste it into a study file or a training config."""
    import yaml

    header = f"# best trial #{best.trial} of study {best.study}: {best.metric} = {best.value:.6g} ({best.direction})\n"
    return header + yaml.safe_dump({"fixed": dict(sorted(best.params.items()))}, sort_keys=False, default_flow_style=False)


def csv_target(path: str) -> Path:
    """The CSV path, checked: its directory must exist."""
    p = Path(path)
    if not p.parent.exists():
        raise ConfigError(f"--csv: directory {p.parent} does not exist")
    if p.is_dir():
        raise ConfigError(f"--csv: {p} is a directory")
    return p
