"""``understudy discover``, ``route``, ``tasks`` and ``report``: the app's tasks, found in the log (S3),
where each request would go (S6), and how much of the work a local model already does."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


def _emit(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, ensure_ascii=False))


def _encoder_for(name: str | None):
    """The encoder to use, building the static one first (once) with a note on stderr."""
    from engine import embeddings

    name = name or embeddings.DEFAULT_ENCODER
    if not embeddings.is_built(name):
        click.echo(f"Building the {name} encoder from MiniLM (once, about two minutes)…", err=True)
    return embeddings.load_encoder(name)


@click.command()
@click.option("--encoder", type=click.Choice(["static-minilm-l6-v2-pca256", "all-MiniLM-L6-v2"]))
@click.option(
    "--keyword-labels", is_flag=True, help="Label new tasks by their keywords, without asking the model."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the figures and every task found.")
def discover(encoder: str | None, keyword_labels: bool, as_json: bool) -> None:
    """Find the tasks in the log (re-run any time: task ids and labels stay stable)."""
    from engine.discovery import ModelNamer
    from engine.discovery import discover as run
    from engine.store import Store

    namer = None if keyword_labels else ModelNamer()
    result = run(Store.open(), encoder=_encoder_for(encoder), namer=namer)
    if as_json:
        _emit(result.to_dict())
        return
    click.echo(
        f"{result.n_requests} requests → {result.n_clusters} tasks; outliers "
        f"{result.outlier_share_before:.0%} → {result.outlier_share_after:.0%} after joining the nearest "
        f"task ({result.encoder}, {result.duration_s:.1f} s)"
    )
    for cluster in result.clusters:
        mark = "new" if cluster.new else "   "
        example = cluster.examples[0] if cluster.examples else ""
        click.echo(f"#{cluster.task_id:<4} {mark} {cluster.size:>5}  {cluster.label:<36} “{example[:60]}”")
    if result.retired_task_ids:
        click.echo(f"retired: {', '.join(f'#{task_id}' for task_id in result.retired_task_ids)}", err=True)


@click.command()
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per decision.")
def route(prompt: str, as_json: bool) -> None:
    """Show where PROMPT would go, without generating (`-` reads one prompt per line from stdin)."""
    from engine.router import Router
    from engine.store import Store

    router = Router(Store.open())
    prompts = (line.rstrip("\n") for line in sys.stdin) if prompt == "-" else iter([prompt])
    for text in prompts:
        if not text.strip():
            continue
        decision = router.decide(text)
        if as_json:
            _emit(decision.to_dict())
            continue
        task = "no task" if decision.task_id is None else f"task #{decision.task_id} {decision.task_label}"
        distance = "" if decision.distance is None else f", distance {decision.distance:.3f}"
        click.echo(f"{decision.target} ({task}{distance}): {decision.reason} [{decision.decision_ms:.2f} ms]")


@click.group(invoke_without_command=True)
@click.option("--all", "include_retired", is_flag=True, help="Also the retired tasks.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per task.")
@click.pass_context
def tasks(ctx: click.Context, include_retired: bool, as_json: bool) -> None:
    """The tasks found in the log (or named by you), their pins and specialists."""
    if ctx.invoked_subcommand is not None:
        return
    from engine.discovery import list_tasks
    from engine.store import Store

    for task in list_tasks(Store.open(), include_retired):
        if as_json:
            _emit(task.to_dict())
            continue
        specialist = f"specialist {task.adapter_id}" if task.adapter_id else "no specialist"
        retired = " (retired)" if task.retired_utc else ""
        click.echo(f"#{task.id:<4} {task.size:>5}  {task.label:<36} {task.pin:<16} {specialist}{retired}")


@tasks.command("pin")
@click.argument("task_id", type=int)
@click.argument("pin", type=click.Choice(["auto", "always_local", "always_ask_cloud", "never_cloud"]))
def tasks_pin(task_id: int, pin: str) -> None:
    """Pin task TASK_ID: auto, always_local, always_ask_cloud (propose, never send) or never_cloud."""
    from engine.router import set_pin
    from engine.store import Store

    set_pin(Store.open(), task_id, pin)
    click.echo(f"Task {task_id}: {pin}")


@tasks.command("calibrate")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per task.")
def tasks_calibrate(as_json: bool) -> None:
    """Fit each task's confidence threshold from your feedback and choices (see `understudy report`)."""
    from dataclasses import asdict

    from engine.router import DEFAULT_CONFIDENCE_THRESHOLD, calibrate
    from engine.store import Store

    for calibration in calibrate(Store.open()):
        if as_json:
            _emit(asdict(calibration))
            continue
        threshold = (
            calibration.threshold if calibration.threshold is not None else DEFAULT_CONFIDENCE_THRESHOLD
        )
        click.echo(
            f"#{calibration.task_id:<4} {calibration.label:<36} threshold {threshold:.3f} "
            f"({calibration.source}, {calibration.outcomes} outcomes, {calibration.bad} bad)"
        )


@click.command()
@click.option("--provider", help="Price savings against this cloud provider (default: the one in use).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object: totals, tasks and days.")
def report(provider: str | None, markdown_path: Path | None, html_path: Path | None, as_json: bool) -> None:
    """Per task: traffic, where it went, satisfaction, savings and how replaceable it is."""
    from engine import files
    from engine.errors import UnderstudyError
    from engine.report import build_report, to_html, to_markdown
    from engine.store import Store

    built = build_report(Store.open(), provider)
    for path, render in ((markdown_path, to_markdown), (html_path, to_html)):
        if path is None:
            continue
        try:
            files.write_text(path, render(built))
        except OSError as error:
            raise UnderstudyError(f"could not write {path}: {error.strerror or error}") from error
        click.echo(f"Wrote {path}", err=True)
    if as_json:
        _emit(built.to_dict())
    elif markdown_path is None and html_path is None:
        click.echo(to_markdown(built))
