"""The ``understudy`` command line: one module per command group, every capability scriptable.

Engine errors become one line on stderr and a non-zero exit code here, at the edge (``common``);
``--debug`` shows the traceback instead. The desktop app's own commands (``app``, ``bench startup``) are
attached by ``app.main``, so this package never imports the GUI.
"""

from __future__ import annotations

import click

from app.cli.bench import bench
from app.cli.chat import chat
from app.cli.cloud import cloud, escalations
from app.cli.common import UnderstudyGroup
from app.cli.datasets import datasets
from app.cli.discovery import discover, report, route, tasks
from app.cli.logs import logs
from app.cli.mcp import mcp
from app.cli.models import models
from app.cli.redact import redact
from app.cli.tools import tools
from app.cli.tune import adapters, jobs_command, tune


@click.group(cls=UnderstudyGroup, invoke_without_command=True)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="understudy-desktop")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Understudy: an on-device assistant whose small models learn their part from the log.

    Without a command it opens the desktop app.
    """
    if ctx.invoked_subcommand is None:
        app_command = ctx.command.get_command(ctx, "app")
        if app_command is None:
            raise click.UsageError("this build has no desktop app; run a command such as `understudy chat`")
        ctx.invoke(app_command)


for command in (
    chat,
    models,
    logs,
    tools,
    redact,
    cloud,
    escalations,
    bench,
    mcp,
    discover,
    route,
    tasks,
    report,
    tune,
    datasets,
    jobs_command,
    adapters,
):
    cli.add_command(command)
