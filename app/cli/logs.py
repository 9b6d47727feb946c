"""`understudy logs`: recent turns, full-text search, export for fine-tuning, import from other tools and
rating an answer."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from app.cli.common import emit_json
from engine.errors import UnderstudyError


@click.group(invoke_without_command=True)
@click.option("-n", "limit", type=click.IntRange(1), default=3, show_default=True, help="How many turns.")
@click.option("-q", "--query", help="Full-text search over prompts and answers.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per turn.")
@click.pass_context
def logs(ctx: click.Context, limit: int, query: str | None, as_json: bool) -> None:
    """Show the newest logged turns (oldest of them first), with their model calls."""
    if ctx.invoked_subcommand is not None:
        return
    from engine.store import Store

    store = Store.open()
    turns = store.recent_turns(limit=limit, query=query)
    provenance = store.turn_provenance(turn["id"] for turn in turns)
    for turn in reversed(turns):
        for call in turn["model_calls"]:
            call["messages"] = json.loads(call.pop("messages_json"))
        turn["provenance"] = asdict(provenance[turn["id"]])
        if as_json:
            emit_json(turn)
            continue
        click.echo(
            f"# turn {turn['id']} · conversation {turn['conversation_id']} · {turn['created_utc']} · "
            f"{turn['model_id']} · {turn['status']}"
        )
        click.echo(f"> {turn['user_text']}")
        click.echo(turn["answer_text"] or f"(no answer: {turn['error']})")
        for call in turn["model_calls"]:
            click.echo(
                f"[{call['prompt_tokens']} + {call['completion_tokens']} tokens · "
                f"ttft {call['ttft_ms'] or 0:.0f} ms · {call['decode_tok_s'] or 0:.1f} tok/s · "
                f"{call['finish_reason'] or call['error']}]"
            )
        click.echo()


@logs.command("export")
@click.option("--jsonl", "path", type=click.Path(dir_okay=False, path_type=Path), required=True)
def logs_export(path: Path) -> None:
    """Write completed turns as chat-format JSONL ({"messages": [...]} per line), for fine-tuning."""
    from engine import files
    from engine.store import Store

    count = 0
    try:
        with files.publishing(path) as partial, partial.open("w", encoding="utf-8") as handle:
            for record in Store.open().iter_chat_records():
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    except OSError as error:
        raise UnderstudyError(f"could not write {path}: {error.strerror or error}") from error
    click.echo(f"Wrote {count} conversation turns to {path}", err=True)


@logs.command("import")
@click.option("--jsonl", "path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--skip-invalid", is_flag=True, help="Import the good lines even if some are malformed.")
@click.option(
    "--teacher",
    metavar="MODEL",
    help="The answers are this cloud (teacher) model's; by default a record's own \"model\" says.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the counts and any errors.")
def logs_import(path: Path, skip_invalid: bool, teacher: str | None, as_json: bool) -> None:
    """Import chat history in OpenAI chat format ({"messages": [...]} per line), e.g. from another tool.

    Every record is kept, repeated requests included; importing a file again adds only its new records.
    """
    from engine.log_import import import_chat_jsonl
    from engine.store import Store

    result = import_chat_jsonl(Store.open(), path, skip_invalid=skip_invalid, teacher=teacher)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(
            f"Imported {result.records} records ({result.turns} turns, {result.distinct_requests} distinct "
            f"requests, {result.teacher_turns} answered by a teacher) from {path}; "
            f"{result.duplicates} already imported, {result.empty} without an answered request"
        )
    for error in result.errors:
        click.echo(f"skipped {error}", err=True)


RATINGS = {"good": 1, "bad": -1}


@logs.command("rate")
@click.argument("turn_id", metavar="TURN", type=int)
@click.argument("rating", metavar="good|bad")
@click.option("--comment", default="", help="Why, in a few words.")
def logs_rate(turn_id: int, rating: str, comment: str) -> None:
    """Rate an answer, as the app's thumbs do: good answers teach specialists, bad ones are left out."""
    from engine.store import Store

    if rating not in RATINGS:
        raise UnderstudyError(f"a rating is good or bad, not {rating!r}")
    Store.open().set_feedback(turn_id, RATINGS[rating], comment)
    click.echo(f"Turn {turn_id}: {rating}")
