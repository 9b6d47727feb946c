"""What every command shares: engine errors turned into one line and an exit code, JSON lines, and the
terminal's answer to a tool approval."""

from __future__ import annotations

import json
from typing import Any

import click

from engine.errors import UnderstudyError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class UnderstudyGroup(click.Group):
    """Turns engine errors into a clear message and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UnderstudyError as error:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            ctx.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def emit_json(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, ensure_ascii=False))


def terminal_approver(request) -> str:
    """Ask on the terminal, showing the exact arguments; anything but o/a is a denial."""
    click.echo(f"\nThe model wants to run {request.tool} ({request.risk}) with exactly:", err=True)
    click.echo(request.arguments_json, err=True)
    answer = click.prompt("Allow [o]nce, [a]lways for this tool, or [d]eny?", default="d", err=True)
    return {"o": "once", "a": "always"}.get(answer.strip().lower()[:1], "deny")


def print_figures(figures: dict[str, Any], as_json: bool) -> None:
    """A benchmark's figures: one JSON object, or one aligned line per figure."""
    if as_json:
        emit_json(figures)
        return
    for key, value in figures.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        click.echo(f"{key:<24} {shown}")
