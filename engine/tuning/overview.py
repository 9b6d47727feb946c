"""Where tuning stands, read in one go for whoever shows it (the desktop app's Tuning section): each
task with its newest dataset, its active adapter and what training it would cost here; every adapter
with its evaluation; recent jobs; the schedule; and the training speed measured on this machine.

- ``read_overview`` returns a ``TuningOverview`` of ``TaskOverview`` rows (the only SQL the section
  needs, kept here so the app never writes any).
- ``training_speed`` and ``how_long``: how long tuning a task takes, in words, from a measured speed.
- ``training_history``: a finished job's training steps, read back from its log.
- ``last_night``: what the jobs since the window last opened came to, for the morning.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.errors import TuningError
from engine.store import Store
from engine.tuning import adapters, jobs
from engine.tuning.adapters import Adapter
from engine.tuning.events import TrainingStep, number
from engine.tuning.jobs import Job
from engine.tuning.scheduler import ScheduleSettings, in_window, load_schedule, next_window_start

# Before anything is measured here: default jobs (task and rehearsal rows) on SmolLM2-135M with 2 CPU
# threads ran at 182-194 tokens/s on the development machine.
DEFAULT_TOKENS_PER_SECOND = 180.0
# A rough size of a chat record in tokens: its characters over four, plus what the chat template adds
# (SmolLM2's adds its default system prompt: about 30 tokens a record, measured on a real run).
CHARS_PER_TOKEN = 4
TEMPLATE_TOKENS_PER_EXAMPLE = 30
RECENT_JOBS = 50


@dataclass(frozen=True)
class TrainingSpeed:
    """Tokens per second of training and where the figure comes from, in words."""

    tokens_per_second: float
    source: str
    measured: bool


@dataclass(frozen=True)
class TaskOverview:
    """One task with its newest dataset, its active adapter and what training it would cost."""

    id: int
    label: str
    source: str
    requests: int
    dataset_id: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    dataset_file: str | None = None  # the JSONL file the newest dataset was built from
    active_adapter_id: int | None = None
    active_score: float | None = None
    last_job: Job | None = None
    train_tokens: int | None = None
    tokens_from: str = ""
    # What scrubbing changed in the newest dataset (``engine.redact.ScrubSummary`` as a dict), so the
    # app can say what personal details the task's examples held before training saw them.
    redaction: dict[str, Any] | None = None


@dataclass(frozen=True)
class TuningOverview:
    tasks: list[TaskOverview]
    adapters: dict[int, list[Adapter]]  # each task's, newest first
    jobs: list[Job]  # the most recent, newest first
    speed: TrainingSpeed
    schedule: ScheduleSettings
    next_window: datetime
    window_open: bool
    queued: int
    schedule_problem: str | None = None  # the schedule file is broken: the defaults apply

    def task(self, task_id: int | None) -> TaskOverview | None:
        return next((task for task in self.tasks if task.id == task_id), None)

    def running_job(self, besides: int | None = None) -> Job | None:
        """A running job other than ``besides`` (one that some other process runs)."""
        return next((job for job in self.jobs if job.status == "running" and job.id != besides), None)


def read_overview(store: Store) -> TuningOverview:
    """Everything there is to show about tuning, from the database, the dataset files and the schedule."""
    recent_jobs = jobs.list_jobs(store, limit=RECENT_JOBS)
    by_task: dict[int, list[Adapter]] = {}
    for adapter in adapters.list_adapters(store):
        by_task.setdefault(adapter.task_id, []).append(adapter)
    tasks = [
        _task_overview(store, row, by_task.get(row["id"], []), recent_jobs)
        for row in store.db.query(
            "SELECT tasks.id, label, source, (SELECT COUNT(*) FROM turns WHERE cluster_id = tasks.id) "
            "AS requests FROM tasks WHERE retired_utc IS NULL ORDER BY id"
        )
    ]
    schedule_problem = None
    try:
        schedule = load_schedule()
    except TuningError as error:
        schedule, schedule_problem = ScheduleSettings(), str(error)
    now = datetime.now().astimezone()
    return TuningOverview(
        tasks=tasks,
        adapters=by_task,
        jobs=recent_jobs,
        speed=training_speed(recent_jobs, [a for listed in by_task.values() for a in listed]),
        schedule=schedule,
        next_window=next_window_start(now, schedule),
        window_open=in_window(now, schedule),
        queued=jobs.queued_count(store),
        schedule_problem=schedule_problem,
    )


def _task_overview(
    store: Store, row: dict, task_adapters: list[Adapter], recent_jobs: list[Job]
) -> TaskOverview:
    task_id = row["id"]
    datasets = list(
        store.db.query("SELECT * FROM datasets WHERE task_id = ? ORDER BY id DESC LIMIT 1", [task_id])
    )
    dataset = datasets[0] if datasets else None
    source = json.loads(dataset["source_json"] or "{}") if dataset else {}
    active = next((a for a in task_adapters if a.status == "active"), None)
    trained = next((a for a in task_adapters if a.training.get("train_tokens")), None)
    if trained is not None:
        tokens, tokens_from = trained.training["train_tokens"], f"as many as adapter #{trained.id}'s run"
    elif dataset is not None:
        tokens, tokens_from = _dataset_tokens(Path(dataset["path"]) / "train.jsonl"), "from its dataset"
    else:
        tokens, tokens_from = _log_tokens(store, task_id), "estimated from its requests in the log"
    active_gate = active.evaluation.gate if active is not None else None
    return TaskOverview(
        id=task_id,
        label=row["label"],
        source=row["source"],
        requests=row["requests"],
        dataset_id=dataset["id"] if dataset else None,
        n_train=dataset["n_train"] if dataset else None,
        n_val=dataset["n_val"] if dataset else None,
        dataset_file=source.get("file") if source.get("from") == "jsonl" else None,
        active_adapter_id=active.id if active else None,
        active_score=active_gate.figures.task.candidate if active_gate is not None else None,
        last_job=next((job for job in recent_jobs if job.task_id == task_id), None),
        train_tokens=tokens,
        tokens_from=tokens_from,
        redaction=source.get("redaction"),
    )


def _default_run_tokens(per_epoch: float) -> int:
    """About how many tokens a default run trains on, from the task's tokens per epoch: its packed rows
    for the default epochs (at least the minimum steps), each step with one packed row of rehearsal."""
    from engine.tuning.trainer import TrainConfig, planned_steps

    default = TrainConfig(base_model_id="", dataset_folder=Path(), output_dir=Path())
    rows_per_epoch = max(1, math.ceil(per_epoch / default.batch_tokens))
    steps = planned_steps(default, rows_per_epoch)
    return round(steps * (per_epoch / rows_per_epoch + default.batch_tokens))


def _dataset_tokens(train_file: Path) -> int | None:
    """About how many tokens a default run on this dataset trains on."""
    from engine.tuning.datasets import read_records

    try:
        records = read_records(train_file)
    except (TuningError, OSError):
        return None
    characters = sum(len(message["content"]) for messages in records for message in messages)
    per_epoch = characters / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_EXAMPLE * len(records)
    return _default_run_tokens(per_epoch)


def _log_tokens(store: Store, task_id: int) -> int | None:
    row = next(
        iter(
            store.db.query(
                "SELECT COUNT(*) AS n, SUM(LENGTH(user_text) + LENGTH(answer_text)) AS characters "
                "FROM turns WHERE cluster_id = ? AND status = 'ok' AND replaced_by IS NULL",
                [task_id],
            )
        )
    )
    if not row["n"]:
        return None
    per_epoch = row["characters"] / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_EXAMPLE * row["n"]
    return _default_run_tokens(per_epoch)


# How long tuning takes ---------------------------------------------------------------------------------


def training_speed(recent_jobs: list[Job], known_adapters: list[Adapter]) -> TrainingSpeed:
    """The newest measured training speed here: a finished job's, else an adapter's, else a default."""
    for job in recent_jobs:
        measured = job.result.training.get("tokens_per_second") if job.result is not None else None
        if job.status == "succeeded" and measured:
            return TrainingSpeed(measured, f"measured in job #{job.id}", True)
    for adapter in known_adapters:
        measured = adapter.training.get("tokens_per_second")
        if measured:
            return TrainingSpeed(measured, f"measured training adapter #{adapter.id}", True)
    return TrainingSpeed(
        DEFAULT_TOKENS_PER_SECOND,
        "not measured here yet; the usual speed of SmolLM2-135M on two CPU cores",
        False,
    )


def how_long(task: TaskOverview, speed: TrainingSpeed) -> str:
    """A plain statement of how long tuning ``task`` takes on this machine."""
    from engine.tuning.trainer import estimate_seconds

    if not task.train_tokens:
        return (
            f"Task #{task.id} has nothing to train on yet: its requests need thumbs up (or answers the "
            "user went on from), or add a dataset file."
        )
    seconds = estimate_seconds(task.train_tokens, speed.tokens_per_second)
    return (
        f"{_duration(seconds)} of training on this machine ({number(speed.tokens_per_second)} tokens/s, "
        f"{speed.source}; about {number(task.train_tokens)} tokens, {task.tokens_from}). Scoring the base "
        "and evaluating the new adapter add a few minutes."
    )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return "Under a minute"
    minutes = int(seconds / 60 + 0.5)
    if minutes < 90:
        return f"About {minutes} minute{'s' if minutes != 1 else ''}"
    return f"About {seconds / 3600:.1f} hours"


# A job's training, read back -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingHistory:
    """The training steps a job's log recorded (none before training began)."""

    steps: list[TrainingStep] = field(default_factory=list)

    @property
    def loss_points(self) -> list[tuple[int, float]]:
        return [(step.step, step.loss) for step in self.steps]

    def summary(self) -> str:
        """How far training went and how fast, in words ("" when it never began)."""
        if not self.steps:
            return ""
        last = self.steps[-1]
        return (
            f"Trained {last.step} of {last.total_steps} steps at {number(last.tokens_per_second)} tokens/s; "
            f"last loss {last.loss:.3g}."
        )


def training_history(job: Job) -> TrainingHistory:
    return TrainingHistory([event for event in jobs.read_log(job) if isinstance(event, TrainingStep)])


# What last night came to -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NightOutcome:
    """One job of the night: the task it tuned, the adapter it made and why it ended as it did."""

    job_id: int
    task_id: int | None
    label: str
    adapter_id: int | None
    why: str


@dataclass(frozen=True)
class LastNight:
    """The jobs that ended since the tuning window last opened: the tasks now served locally, the
    adapters the gate rejected, and the jobs that failed or were cancelled."""

    since: datetime
    served: list[NightOutcome] = field(default_factory=list)
    rejected: list[NightOutcome] = field(default_factory=list)
    failed: list[NightOutcome] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary in plain words, one line each."""
        if not (self.served or self.rejected or self.failed):
            return [f"No tuning job has ended since {self.since:%Y-%m-%d %H:%M}."]
        return (
            [f"{o.label} is now served locally by adapter #{o.adapter_id} ({o.why})." for o in self.served]
            + [f"{o.label}: adapter #{o.adapter_id} was rejected: {o.why}." for o in self.rejected]
            + [f"{o.label}: job #{o.job_id} {o.why}." for o in self.failed]
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"since": self.since.isoformat(timespec="minutes")}


def last_night(store: Store, now: datetime, settings: ScheduleSettings) -> LastNight:
    """What the jobs that ended since the window last opened (at or before ``now``) came to."""
    opening = now.replace(
        hour=settings.start_time().hour, minute=settings.start_time().minute, second=0, microsecond=0
    )
    if opening > now:
        opening -= timedelta(days=1)
    labels = {row["id"]: row["label"] for row in store.db.query("SELECT id, label FROM tasks")}
    night = LastNight(since=opening)
    for job in reversed(jobs.list_jobs(store, limit=RECENT_JOBS)):
        if job.finished_utc is None or datetime.fromisoformat(job.finished_utc) < opening:
            continue
        label = labels.get(job.task_id, job.subject)
        result = job.result
        if result is not None and result.promoted:
            night.served.append(
                NightOutcome(job.id, job.task_id, label, result.adapter_id, result.reasons[0])
            )
        elif result is not None:
            why = "; ".join(result.reasons)
            night.rejected.append(NightOutcome(job.id, job.task_id, label, result.adapter_id, why))
        else:
            why = f"{job.status}: {job.error}" if job.error else job.status
            night.failed.append(NightOutcome(job.id, job.task_id, label, None, why))
    return night
