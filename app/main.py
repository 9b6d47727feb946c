"""The ``understudy`` entry point: the command line with the desktop app's own commands attached.

``app.cli`` and ``app.qt`` never import each other; this composition root is the one place that knows
both. Qt is imported only when a GUI command runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from app.cli import bench, cli
from app.cli.common import emit_json, print_figures
from engine.errors import UnderstudyError


@click.command("app")
@click.option("--self-test", is_flag=True, help="Send one prompt through the real window, then exit.")
@click.option(
    "--screenshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --self-test: save a picture of the window after the answer.",
)
@click.option("--startup-probe", is_flag=True, hidden=True, help="Used by `bench startup`.")
def app_command(self_test: bool, screenshot: Path | None, startup_probe: bool) -> None:
    """Open the desktop app (Qt)."""
    headless = not any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    if sys.platform.startswith("linux") and headless:
        raise UnderstudyError(
            "there is no display to open the window on (no DISPLAY or WAYLAND_DISPLAY); use "
            "`understudy chat` in this terminal, or run the app from a desktop session"
        )
    from app.qt.app import run_app

    code = run_app(self_test=self_test, screenshot=screenshot, startup_probe=startup_probe)
    if code:
        raise SystemExit(code)


@click.command("startup")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_startup(rounds: int, as_json: bool) -> None:
    """Time to the first shown window and to model-ready, against a bare Qt window, side by side."""
    from app.qt.startup_bench import bench_startup as run

    print_figures(run(rounds=rounds), as_json)


@click.group("serve", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--allow-remote", is_flag=True, help="Allow a --host other machines can reach.")
@click.option("--json", "as_json", is_flag=True, help='First line: {"event": "listening", "url", "token"}.')
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, allow_remote: bool, as_json: bool) -> None:
    """Serve the models to other programs: an OpenAI-compatible API (chat completions, tools) on
    this machine. Every request needs the token (`understudy serve token`) and is logged."""
    if ctx.invoked_subcommand is not None:
        return
    from app.gateway import access
    from app.gateway.server import serve

    if not access.is_loopback(host):
        if not allow_remote:
            raise click.UsageError(
                f"{host} can be reached from other machines; add --allow-remote to mean it"
            )
        click.echo(
            f"warning: serving on {host}: anyone on the network with the token can use your models "
            "and read nothing else; the traffic is not encrypted",
            err=True,
        )
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/v1"
    token = access.gateway_token()

    def listening() -> None:
        if as_json:
            emit_json({"event": "listening", "url": url, "token": token})
        else:
            click.echo(f"Serving on {url} (token: `understudy serve token`); Ctrl-C stops")

    serve(host, port, on_listening=listening)


@serve_command.command("token")
def serve_token() -> None:
    """Print the gateway's token (made on first use), for a client's Authorization header."""
    from app.gateway import access

    click.echo(access.gateway_token())


@serve_command.group("teacher")
def serve_teacher() -> None:
    """Teacher mode: requests routed for a client go to the cloud teacher (with redaction), so its
    answers become teacher examples for tuning; local-only and never_cloud pins still win."""


@serve_teacher.command("on")
@click.option("--client", default=None, help="Only this client (its User-Agent's name); default all.")
@click.option("--calls", type=click.IntRange(1), default=None, help="Stop after this many calls.")
@click.option("--hours", type=click.FloatRange(0, min_open=True), default=None, help="Stop after this long.")
def serve_teacher_on(client: str | None, calls: int | None, hours: float | None) -> None:
    """Switch teacher mode on, for a number of calls and/or hours (without either: until `off`)."""
    from engine import consent

    mode = consent.teacher_on(client or consent.ALL_CLIENTS, calls, hours)
    click.echo(f"Teacher mode on for {client or 'all clients'}: {_teacher_limits(mode)}")


@serve_teacher.command("off")
@click.option("--client", default=None, help="Only this client; default every client.")
def serve_teacher_off(client: str | None) -> None:
    """Switch teacher mode off."""
    from engine import consent

    consent.teacher_off(client)
    click.echo(f"Teacher mode off for {client or 'all clients'}")


@serve_teacher.command("status")
@click.option("--json", "as_json", is_flag=True)
def serve_teacher_status(as_json: bool) -> None:
    """Show where teacher mode is on, and until when."""
    from engine import consent

    active = consent.teacher_status()
    if as_json:
        emit_json({name: mode.model_dump() for name, mode in active.items()})
        return
    if not active:
        click.echo("Teacher mode is off")
    for name, mode in active.items():
        who = "all clients" if name == consent.ALL_CLIENTS else name
        click.echo(f"Teacher mode on for {who}: {_teacher_limits(mode)}")


def _teacher_limits(mode) -> str:
    limits = []
    if mode.calls_left is not None:
        limits.append(f"{mode.calls_left} call(s) left")
    if mode.until_utc is not None:
        limits.append(f"until {mode.until_utc}")
    return ", ".join(limits) or "until switched off"


cli.add_command(app_command)
cli.add_command(serve_command)
bench.add_command(bench_startup)


def main() -> None:
    cli(prog_name="understudy")
