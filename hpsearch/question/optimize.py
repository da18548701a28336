"""Stratified search: every (level, ``within``) cell of a question gets its own linked study,
run to the same budget of finished tuning trials.

The question's own study (its name in the file) is the hub: it holds the study file and the
map from cells to their studies (study user attr :data:`QUESTION_ATTR`), and later the answer.
Each cell study carries ``source_study`` and ``question_cell`` user attrs, the stored link
``delete`` and ``answer`` follow. Workers visit the cells in an order rotated by their index,
so several workers spread over the cells; a cell that holds its budget runs nothing, so a
rerun resumes where the last one stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import optuna

from hpsearch.question import QUESTION_ATTR
from hpsearch.question.cells import Cell, QuestionPlan, cell_definition, plan

#: Study user attr of a cell study: its cell key.
CELL_ATTR = "question_cell"
SOURCE_ATTR = "source_study"


@dataclass(frozen=True)
class CellRun:
    """One cell of the question and the definition of its study."""

    index: int
    cell: Cell
    definition: Any  # StudyDefinition of the cell's study

    @property
    def study_name(self) -> str:
        return str(self.definition.config.study)

    def splits(self, data_seed: int) -> Any:
        """The data this cell's trials and retrains use when split with ``data_seed``."""
        from hpsearch.study.space import settings_for

        options = settings_for({}, self.definition.config, self.definition.task).options
        return self.definition.task.splits(data_seed, options)


def cell_runs(definition: Any) -> tuple[QuestionPlan, list[CellRun]]:
    """The question's plan and one :class:`CellRun` per cell, in design order."""
    design = plan(definition)
    return design, [CellRun(i, cell, cell_definition(definition, design, cell)) for i, cell in enumerate(design.cells)]


def design_attr(design: QuestionPlan, runs: list[CellRun]) -> dict[str, Any]:
    """What the hub study stores about the design (JSON)."""
    q = design.question
    return {
        "asks": q.asks, "factors": design.factors, "levels": [lv.name for lv in design.levels],
        "level_settings": {lv.name: lv.settings for lv in design.levels}, "reference": design.reference.name,
        "within": list(q.within), "budget": q.budget, "seeds": q.seeds, "min_effect": q.min_effect,
        "cells": [{"key": r.cell.key, "level": r.cell.level.name, "within": dict(r.cell.within), "study": r.study_name}
                  for r in runs],
    }


def open_question(definition: Any, url: str, allow_changes: bool = False) -> tuple[optuna.Study, QuestionPlan, list[CellRun]]:
    """Create or load the hub study and every cell study (checked like any study: a changed
    definition is refused unless ``allow_changes``), linking each cell to the hub."""
    from hpsearch.run.runner import create_or_load, record_definition

    design, runs = cell_runs(definition)
    hub = create_or_load(definition, url, allow_changes=allow_changes)
    record_definition(hub, definition)
    wanted = design_attr(design, runs)
    if hub.user_attrs.get(QUESTION_ATTR) != wanted:
        hub.set_user_attr(QUESTION_ATTR, wanted)
    for run in runs:
        study = create_or_load(run.definition, url, allow_changes=allow_changes)
        for key, value in ((SOURCE_ATTR, hub.study_name), (CELL_ATTR, run.cell.key)):
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
    return hub, design, runs


def run_question(definition: Any, url: str, run_cell: Callable[[CellRun, int], object], worker_index: int = 0,
                 allow_changes: bool = False) -> list[CellRun]:
    """Open the question (see :func:`open_question`), then ``run_cell(run, total)`` for every
    cell, starting at cell ``worker_index mod total``; returns the cells in design order."""
    _, _, runs = open_question(definition, url, allow_changes)
    start = worker_index % len(runs)
    for run in runs[start:] + runs[:start]:
        run_cell(run, len(runs))
    return runs
