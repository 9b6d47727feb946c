"""``understudy tune``, ``understudy jobs`` and ``understudy adapters``: specialists from the log.

``tune --now`` runs the job in this very process, which is the separate worker the desktop app starts
(QProcess) so that a crash or a kill never hurts the app: with ``--json`` it prints one JSON event per
line, and SIGTERM or Ctrl-C stop it between training steps (recorded as cancelled; ``--resume``
continues later). Without ``--now`` the job is queued for the nightly window and ``tune run-due``
(from a timer, or the app) starts it when the schedule allows.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from engine.tuning import jobs
from engine.tuning.events import (
    CheckpointSaved,
    EvaluationProgress,
    JobCancelled,
    JobDone,
    JobEvent,
    JobFailed,
    JobQueued,
    JobWarning,
    NothingDue,
    RehearsalProgress,
    StageStarted,
    TrainingStep,
    describe,
)

EXIT_FAILED = 1
# A terminal scrolls, so frequent events get a line now and then: every Nth rehearsal answer or step.
REHEARSAL_LINE_EVERY = 16
STEP_LINE_EVERY = 10

SCHEDULING_HELP = (
    "Queued jobs start from `understudy tune run-due`: run it every 15 minutes from a timer "
    "(cron: `*/15 * * * * understudy tune run-due`; or a systemd user timer, Task Scheduler, launchd), "
    "or keep the app open, which calls it."
)


def _emit(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, ensure_ascii=False))


@click.group(invoke_without_command=True)
@click.option("--task", "task", help="The task to tune: its id, or its name (created if new).")
@click.option(
    "--dataset",
    "dataset_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='A JSONL file of {"messages": [...]} examples (what `logs export --jsonl` writes).',
)
@click.option(
    "--base", "base", help="Base model ID (default: the installed model with the best zero-shot score)."
)
@click.option("--now", is_flag=True, help="Run it now, in this process, instead of in the nightly window.")
@click.option("--resume", is_flag=True, help="Continue training from the last checkpoint of this dataset.")
@click.option("--steps", type=click.IntRange(1), help="Train exactly this many optimizer steps.")
@click.option("--epochs", type=click.FloatRange(0, min_open=True), help="Passes over the data (default 2).")
@click.option("--rank", type=click.IntRange(1, 256), help="LoRA rank (default 16).")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), help="Peak learning rate.")
@click.option("--scheduled", is_flag=True, help="Same as `tune run-due`.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def tune(
    ctx: click.Context,
    task: str | None,
    dataset_file: Path | None,
    base: str | None,
    now: bool,
    resume: bool,
    steps: int | None,
    epochs: float | None,
    rank: int | None,
    learning_rate: float | None,
    scheduled: bool,
    as_json: bool,
) -> None:
    """Tune a LoRA specialist for a task: queued for the night, or --now.

    The new adapter serves its task only if it beats the base (and the adapter active now) on the
    task's held-out examples and stays within 10 points of the base on a general regression set.
    """
    if ctx.invoked_subcommand is not None:
        return
    if scheduled:
        ctx.invoke(tune_run_due, as_json=as_json)
        return
    from engine.store import Store
    from engine.tuning import jobs
    from engine.tuning.pipeline import TuneRequest
    from engine.tuning.scheduler import load_schedule, next_window_start

    if task is None and dataset_file is None:
        raise click.UsageError("say what to tune: --task ID (or name) or --dataset FILE")
    overrides = {"max_steps": steps, "epochs": epochs, "rank": rank, "learning_rate": learning_rate}
    request = TuneRequest(
        task=task,
        dataset_file=dataset_file,
        base=base,
        resume=resume,
        train={name: value for name, value in overrides.items() if value is not None},
    )
    request.check()
    store = Store.open()
    job = jobs.create(store, jobs.KIND_TUNE, request.as_args())
    if now:
        _run_job_here(store, job.id, as_json)
        return
    schedule = load_schedule()
    opens = next_window_start(datetime.now().astimezone(), schedule)
    if as_json:
        queued = JobQueued(
            job_id=job.id,
            window=f"{schedule.window_start}-{schedule.window_end}",
            next_window=opens.isoformat(timespec="minutes"),
            log_path=str(job.log_path),
        )
        _emit(queued.to_dict())
        return
    click.echo(
        f"Queued tuning job {job.id}. It runs in the tuning window {schedule.window_start}-"
        f"{schedule.window_end} (next: {opens:%Y-%m-%d %H:%M}) once the machine is idle and on AC power."
    )
    click.echo(SCHEDULING_HELP)
    click.echo(f"To tune now instead, cancel it (`understudy tune cancel {job.id}`) and add --now.")


@tune.command("run-due")
@click.option(
    "--budget-minutes",
    type=click.FloatRange(0),
    help="Queue no more training than this (default: what is left of the nightly window).",
)
@click.option("--ignore-window", is_flag=True, help="Plan and run now, in the window or not.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def tune_run_due(budget_minutes: float | None, ignore_window: bool, as_json: bool) -> None:
    """Queue a job for each task with enough new examples (busiest replaceable tasks first, within
    the time budget), then run the oldest queued job if the schedule allows it now (for timers and
    the app)."""
    from engine.store import Store
    from engine.tuning.pipeline import run_due
    from engine.tuning.planner import plan_due_jobs, queue_due_jobs
    from engine.tuning.scheduler import PsutilMachine, load_schedule

    store = Store.open()
    schedule = load_schedule()
    now = datetime.now().astimezone()
    budget = None if budget_minutes is None else budget_minutes * 60
    plan = queue_due_jobs(store, plan_due_jobs(store, now, schedule, budget, ignore_window))
    for planned in plan:
        if as_json:
            _emit({"event": "planned", **planned.as_dict()})
        elif planned.queued:
            click.echo(f"Queued job #{planned.job_id} for {planned.label}: {planned.reason}.")
        else:
            click.echo(f"Skipped {planned.label}: {planned.reason}.")
    if ignore_window:
        schedule = schedule.model_copy(update={"window_start": "00:00", "window_end": "00:00"})
    cancel = threading.Event()
    with _stop_requests_set(cancel):
        finished, reason = run_due(
            store, PsutilMachine(), now, schedule, echo=_printer(as_json), cancel=cancel
        )
    if finished is None:
        _printer(as_json)(NothingDue(reason))
        return
    _exit_for(finished)


@tune.command("last-night")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def tune_last_night(as_json: bool) -> None:
    """What the jobs since the tuning window last opened came to: tasks now served locally, adapters
    the gate rejected and why, jobs that failed."""
    from engine.store import Store
    from engine.tuning.overview import last_night
    from engine.tuning.scheduler import load_schedule

    night = last_night(Store.open(), datetime.now().astimezone(), load_schedule())
    if as_json:
        _emit(night.as_dict())
        return
    for line in night.lines():
        click.echo(line)


@tune.command("cancel")
@click.argument("job_id", type=int)
def tune_cancel(job_id: int) -> None:
    """Cancel job JOB_ID: a queued one at once, a running one between two training steps."""
    from engine.store import Store
    from engine.tuning import jobs

    job = jobs.cancel(Store.open(), job_id)
    if job.status == "running":
        click.echo(f"Asked job {job_id} (process {job.pid}) to stop; it stops after the current step.")
    else:
        click.echo(f"Job {job_id} is {job.status}.")


@tune.command("schedule")
@click.option("--window", help="The nightly window as HH:MM-HH:MM (local time; may cross midnight).")
@click.option("--idle/--any-load", "require_idle", default=None, help="Wait until the machine is idle.")
@click.option("--ac/--any-power", "require_ac_power", default=None, help="Wait for AC power.")
def tune_schedule(window: str | None, require_idle: bool | None, require_ac_power: bool | None) -> None:
    """Show or change when queued jobs run."""
    from engine.tuning.scheduler import load_schedule, settings_path, update_schedule

    schedule = load_schedule()
    changes: dict[str, Any] = {}
    if window is not None:
        start, separator, end = window.partition("-")
        if not separator:
            raise click.BadParameter(
                "give the window as HH:MM-HH:MM, e.g. 01:00-06:00", param_hint="--window"
            )
        changes |= {"window_start": start.strip(), "window_end": end.strip()}
    if require_idle is not None:
        changes["require_idle"] = require_idle
    if require_ac_power is not None:
        changes["require_ac_power"] = require_ac_power
    if changes:
        schedule = update_schedule(**changes)
    click.echo(
        f"window {schedule.window_start}-{schedule.window_end} · "
        f"{'waits for idle' if schedule.require_idle else 'any load'} · "
        f"{'waits for AC power' if schedule.require_ac_power else 'any power'} · {settings_path()}"
    )


def _run_job_here(store, job_id: int, as_json: bool) -> None:
    from engine.errors import TuningError
    from engine.tuning import jobs
    from engine.tuning.pipeline import run_job

    cancel = threading.Event()
    try:
        with _stop_requests_set(cancel):
            finished = run_job(store, job_id, echo=_printer(as_json), cancel=cancel)
    except TuningError as refusal:  # another job is running: this one never started
        jobs.finish(store, job_id, "failed", error=str(refusal))
        raise
    _exit_for(finished)


def _exit_for(job: jobs.Job) -> None:
    if job.status == "cancelled":
        raise SystemExit(jobs.CANCELLED_EXIT_CODE)
    if job.status == "failed":
        raise SystemExit(EXIT_FAILED)


@contextmanager
def _stop_requests_set(cancel: threading.Event):
    """SIGTERM (`tune cancel`, the app's Stop) and Ctrl-C stop the job between steps."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = [signal.SIGINT, signal.SIGTERM]
    previous = {number: signal.signal(number, lambda *_: cancel.set()) for number in handled}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _printer(as_json: bool) -> Callable[[JobEvent], None]:
    if as_json:
        return lambda event: _emit(event.to_dict())
    return _show_event


def _show_event(event: JobEvent) -> None:
    """The renderer's line for each event worth a line in a terminal; a stage's with the job's progress."""
    match event:
        case EvaluationProgress() | CheckpointSaved():
            return
        case RehearsalProgress() if event.done % REHEARSAL_LINE_EVERY and event.done != event.total:
            return
        case TrainingStep() if event.step % STEP_LINE_EVERY and event.step != event.total_steps:
            return
        case StageStarted():
            click.echo(f"[{event.progress * 100:3.0f}%] {describe(event)}")
        case JobFailed() | JobCancelled() | JobWarning():
            click.echo(describe(event), err=True)
        case JobDone() | NothingDue():
            click.echo(describe(event))
        case _:
            click.echo(f"       {describe(event)}")


# jobs ----------------------------------------------------------------------------------------------


@click.command("jobs")
@click.option("-n", "limit", type=click.IntRange(1), default=20, show_default=True, help="How many jobs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
def jobs_command(limit: int, as_json: bool) -> None:
    """Tuning jobs, newest first, with status and progress."""
    from engine.store import Store
    from engine.tuning import jobs

    for job in jobs.list_jobs(Store.open(), limit=limit):
        if as_json:
            _emit(job.as_dict())
            continue
        click.echo(
            f"#{job.id:<4} {job.status:<10} {job.progress * 100:3.0f}%  {job.created_utc[:16]}  "
            f"{job.subject}  {job.outcome}"
        )


# adapters ------------------------------------------------------------------------------------------


@click.group()
def adapters() -> None:
    """LoRA specialists: list them, promote one, roll a task back."""


@adapters.command("list")
@click.option("--task", "task_id", type=int, help="Only this task's adapters.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per adapter.")
def adapters_list(task_id: int | None, as_json: bool) -> None:
    """Adapters, newest first: id, base model, task, status and evaluation figures (the task's by the
    measure it was scored by: exact match, JSON field match or similarity)."""
    from engine.store import Store
    from engine.tuning import adapters as registry

    for adapter in registry.list_adapters(Store.open(), task_id):
        gate = adapter.evaluation.gate
        if as_json:
            record = adapter.as_dict()
            record["figures"] = {} if gate is None else asdict(gate.figures)
            record["measure"] = adapter.evaluation.measure
            _emit(record)
            continue
        shown = "not evaluated"
        if gate is not None:
            task, general = gate.figures.task, gate.figures.general
            active = "" if task.active is None else f" active {_percent(task.active)}"
            shown = (
                f"task ({task.measure_name}) {_percent(task.base)} → {_percent(task.candidate)}{active} · "
                f"general {_percent(general.base)} → {_percent(general.candidate)}"
            )
        click.echo(
            f"#{adapter.id:<4} {adapter.status:<9} task {adapter.task_id!s:<4} {adapter.base_model_id:<24} "
            f"{adapter.created_utc[:16]}  {shown}"
        )


def _percent(score: float) -> str:
    return f"{score * 100:.0f}%"


@adapters.command("promote")
@click.argument("adapter_id", type=int)
@click.option("--force", is_flag=True, help="Promote even though it did not pass the evaluation gate.")
def adapters_promote(adapter_id: int, force: bool) -> None:
    """Make ADAPTER_ID its task's active adapter (the previous one is retired, not deleted)."""
    from engine.store import Store
    from engine.tuning import adapters as registry

    adapter = registry.promote(Store.open(), adapter_id, force=force)
    click.echo(f"Adapter {adapter.id} now serves task {adapter.task_id}.")


@adapters.command("rollback")
@click.argument("task_id", type=int)
def adapters_rollback(task_id: int) -> None:
    """Retire TASK_ID's active adapter and go back to the one before it (or to the base model)."""
    from engine.store import Store
    from engine.tuning import adapters as registry

    now_active = registry.rollback(Store.open(), task_id)
    if now_active is None:
        click.echo(f"Task {task_id} is back on its base model.")
    else:
        click.echo(f"Task {task_id} is back on adapter {now_active.id}.")
