"""``hpsearch answer``: the verdict of a question study."""

from __future__ import annotations

import json

import click

from hpsearch.cli.common import CliContext, heartbeat_options, pass_cli, storage_options


@click.command()
@click.argument("study_name")
@click.option("--seeds", type=click.IntRange(min=2), default=None,
              help="Retraining seeds per level, 0..S-1, the same for every level (paired) [default: the question's "
                   "`seeds`, 10 unless set].")
@click.option("--vary", type=click.Choice(["seed", "split"]), default=None,
              help="seed: every retrain uses the study's train/validation/test split; split: seed s also trains "
                   "and scores on the task's data drawn with seed s (a new stratified split; for generated data "
                   "sets, new points), so the intervals cover data sampling too; refused where the data does not "
                   "depend on the seed. With split, retrains of different seeds cannot stack (--population). "
                   "[default: the question's `vary`, else seed]")
@click.option("--population", type=click.IntRange(min=1, max=1024), default=None,
              help="Retrains trained at once as one stacked model where the task allows it (a level's seeds are "
                   "members of one population) [default: the study file's `population` or the seeds, the larger].")
@storage_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (progress still goes to stderr).")
@heartbeat_options("retrain")
@pass_cli
def answer(cli: CliContext, study_name: str, seeds: int | None, vary: str | None, population: int | None, as_json: bool,
           heartbeat: int, grace: int) -> None:
    """Answer the question of STUDY_NAME (a study file with a `question:` block, tuned by
    `hpsearch optimize`).

    For each level (x `within` cell) the best configuration by validation among its first
    `budget` finished tuning trials is retrained with seeds 0..S-1, without pruning, and scored
    on the held-out test split. Each level is compared with the reference over the same seeds
    (paired): the difference with its interval, Holm-adjusted over all comparisons of the
    question (each interval at the level Holm tests it at), the share of seeds the level won,
    and a verdict fixed by the numbers: better / worse (interval excludes 0 and the difference
    is at least `min_effect`), equivalent (interval inside +-min_effect), or inconclusive (with
    the seeds that would likely settle it). Warnings a reviewer would raise follow.

    Retrains are trials of the linked study STUDY_NAME:answer: several `hpsearch answer`
    processes share them, a killed one loses only its running seeds, and a rerun reuses
    finished ones. The answer is stored on the study (`hpsearch report` draws it).
    """
    from hpsearch.question.answer import run_answer
    from hpsearch.question.render import answer_text
    from hpsearch.store.heartbeat import Heartbeat

    result = run_answer(study_name, cli.url, seeds, vary, population, Heartbeat(heartbeat, grace),
                        on_progress=lambda line: click.echo(line, err=True))
    click.echo(json.dumps(result, indent=2) if as_json else answer_text(result))


COMMANDS = [answer]
