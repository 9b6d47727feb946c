"""``understudy datasets``: what a task's dataset is made of, and the user's say over it.

The rules and the choices live in ``engine.tuning.datasets``; this module only shows and records them.
"""

from __future__ import annotations

import click

from app.cli.common import emit_json
from engine.store import Store
from engine.tuning.datasets import SOURCES, choose_examples, dataset_examples

SHOWN_CHARACTERS = 60


@click.group()
def datasets() -> None:
    """Review a task's dataset: each example, its source and why it is in; keep or leave examples out."""


@datasets.command("show")
@click.argument("task_id", type=int)
@click.option("--left-out", is_flag=True, help="Also list the turns left out, with the reason.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per example.")
def datasets_show(task_id: int, left_out: bool, as_json: bool) -> None:
    """The examples the next build of TASK_ID's dataset takes, each with its source and reason."""
    examples = [e for e in dataset_examples(Store.open(), task_id) if e.included or left_out]
    for example in examples:
        if as_json:
            emit_json(example.to_dict())
            continue
        where = (
            f"turn {example.turn_id}"
            if example.turn_id is not None
            else f"escalation #{example.escalation_id}"
        )
        mark = "in " if example.included else "out"
        question = " ".join(example.question.split())[:SHOWN_CHARACTERS]
        click.echo(f"{mark} {where:<16} {example.source:<10} {example.reason}\n      {question}")
    if not as_json and not examples:
        click.echo(
            f"Task {task_id}'s next dataset has no examples; --left-out lists the turns left out and why."
        )


def _choose(
    task_id: int, example: int | None, escalation: int | None, source: str | None, included: bool
) -> None:
    if (example is not None) + (escalation is not None) + (source is not None) != 1:
        raise click.UsageError("say which examples: a TURN_ID, --escalation ID or --source SOURCE")
    choose_examples(Store.open(), task_id, included, turn_id=example, escalation_id=escalation, source=source)
    which = (
        f"turn {example}" if example is not None
        else f"escalation #{escalation}" if escalation is not None
        else f"the examples from source '{source}'"
    )  # fmt: skip
    verb = "included in" if included else "left out of"
    click.echo(f"{which[0].upper()}{which[1:]} will be {verb} task {task_id}'s next dataset.")


def _choice_command(included: bool, summary: str) -> click.Command:
    @click.command(help=summary)
    @click.argument("task_id", type=int)
    @click.argument("turn_id", type=int, required=False)
    @click.option(
        "--escalation", "escalation_id", type=int, help="An approved cloud answer, by escalation id."
    )
    @click.option("--source", type=click.Choice(SOURCES), help="Every example from this source.")
    def command(task_id: int, turn_id: int | None, escalation_id: int | None, source: str | None) -> None:
        _choose(task_id, turn_id, escalation_id, source, included)

    return command


datasets.add_command(
    _choice_command(
        True,
        "Keep TURN_ID (or --escalation ID) in TASK_ID's dataset whatever the rules say; with --source, "
        "take back that source's exclusion.",
    ),
    "include",
)
datasets.add_command(
    _choice_command(
        False, "Leave TURN_ID, --escalation ID or every example of --source out of TASK_ID's dataset."
    ),
    "exclude",
)
