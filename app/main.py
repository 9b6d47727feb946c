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
from app.cli.common import print_figures
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


cli.add_command(app_command)
bench.add_command(bench_startup)


def main() -> None:
    cli(prog_name="understudy")
