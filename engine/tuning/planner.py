"""Which tasks to tune tonight, so the loop closes without a click.

``plan_due_jobs`` looks at every live task and picks those with at least ``MIN_EXAMPLES`` (what the
dataset builder requires) usable examples that are new since the task's last adapter, or since its
last failed or cancelled job, so a task that was tried is tried again only on new data. It ranks them
by traffic share times replaceability (from ``engine.report``): the requests a specialist could take over.
Their estimated training time (``overview.training_speed``, ``trainer.estimate_seconds``) must fit in
the budget: what is left of the nightly window, or a budget the caller gives; jobs already queued or
running spend it first. ``queue_due_jobs`` queues the plan's picks; ``tune run-due`` then runs them one
at a time, and the gate decides each as usual.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from engine.store import Store
from engine.tuning import jobs
from engine.tuning.datasets import MIN_EXAMPLES, dataset_examples
from engine.tuning.overview import TaskOverview, TuningOverview, read_overview
from engine.tuning.scheduler import ScheduleSettings, in_window, window_seconds_left

ENDED_BADLY = ("failed", "cancelled")


@dataclass(frozen=True)
class PlannedJob:
    """One task considered for tuning: queued (``job_id`` once it is) or skipped, and why in words."""

    task_id: int
    label: str
    queued: bool
    reason: str
    new_examples: int
    share: float
    replaceability: float | None
    priority: float  # share times replaceability: the share of all requests a specialist could take over
    estimated_seconds: float | None
    job_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_due_jobs(
    store: Store,
    now: datetime,
    settings: ScheduleSettings,
    budget_seconds: float | None = None,
    ignore_window: bool = False,
) -> list[PlannedJob]:
    """Every live task, picked (``queued``) or skipped, highest priority first; nothing outside the
    window unless ``ignore_window``. The budget defaults to what is left of the window."""
    if not ignore_window and not in_window(now, settings):
        return []
    from engine.report import build_report
    from engine.tuning.trainer import estimate_seconds

    overview = read_overview(store)
    reports = {report.task_id: report for report in build_report(store).tasks}
    busy = {job.task_id: job for job in jobs.list_jobs(store) if job.status in ("queued", "running")}

    def seconds(task: TaskOverview) -> float | None:
        if not task.train_tokens:
            return None
        return estimate_seconds(task.train_tokens, overview.speed.tokens_per_second)

    budget = window_seconds_left(now, settings) if budget_seconds is None else budget_seconds
    budget -= sum(seconds(task) or 0.0 for task in overview.tasks if task.id in busy)
    considered: list[tuple[PlannedJob, str]] = []
    for task in overview.tasks:
        report = reports.get(task.id)
        share = report.share if report is not None else 0.0
        replaceability = report.replaceability if report is not None else None
        since, since_what = _last_try(task, overview)
        planned = PlannedJob(
            task_id=task.id,
            label=task.label,
            queued=False,
            reason="",
            new_examples=_new_usable_examples(store, task.id, since),
            share=share,
            replaceability=replaceability,
            priority=round(share * (replaceability or 0.0), 4),
            estimated_seconds=seconds(task),
        )
        considered.append((planned, since_what))
    considered.sort(key=lambda pair: (-pair[0].priority, -pair[0].share, pair[0].task_id))
    plan = []
    for rank, (planned, since_what) in enumerate(considered, start=1):
        if planned.task_id in busy:
            job = busy[planned.task_id]
            plan.append(replace(planned, reason=f"job #{job.id} for it is already {job.status}"))
        elif planned.new_examples < MIN_EXAMPLES:
            plan.append(
                replace(
                    planned,
                    reason=f"too few new examples: {planned.new_examples} usable {since_what}; "
                    f"tuning needs {MIN_EXAMPLES}",
                )
            )
        elif (planned.estimated_seconds or 0.0) > budget:
            plan.append(
                replace(
                    planned,
                    reason=f"over budget: about {_minutes(planned.estimated_seconds or 0.0)} of training, "
                    f"{_minutes(max(0.0, budget))} of the budget left",
                )
            )
        else:
            budget -= planned.estimated_seconds or 0.0
            plan.append(
                replace(
                    planned,
                    queued=True,
                    reason=f"ranked #{rank}: {planned.share * 100:.0f}% of requests, "
                    f"{_replaceable(planned.replaceability)}; {planned.new_examples} usable examples "
                    f"{since_what}; about {_minutes(planned.estimated_seconds or 0.0)} of training",
                )
            )
    return plan


def queue_due_jobs(store: Store, plan: list[PlannedJob]) -> list[PlannedJob]:
    """Queue a tuning job for each task the plan picked; return the plan with their job ids."""
    return [
        replace(planned, job_id=jobs.create(store, jobs.KIND_TUNE, _tune_args(planned), planned.task_id).id)
        if planned.queued
        else planned
        for planned in plan
    ]


def _tune_args(planned: PlannedJob) -> dict[str, Any]:
    from engine.tuning.pipeline import TuneRequest

    return TuneRequest(task=planned.task_id).as_args()


def _last_try(task: TaskOverview, overview: TuningOverview) -> tuple[str | None, str]:
    """When the task was last tuned (its newest adapter, or a newer job that failed or was cancelled),
    and how to say "since then"."""
    newest = next(iter(overview.adapters.get(task.id, [])), None)
    since, words = (None, "in all") if newest is None else (newest.created_utc, f"since adapter #{newest.id}")
    for job in overview.jobs:
        if (
            job.task_id == task.id
            and job.status in ENDED_BADLY
            and (since is None or job.created_utc > since)
        ):
            since, words = job.created_utc, f"since job #{job.id} {job.status}"
            break
    return since, words


def _new_usable_examples(store: Store, task_id: int, since_utc: str | None) -> int:
    """The examples the dataset builder would keep for the task, counting only those logged after
    ``since_utc`` (all of them when it is None)."""
    kept = [example for example in dataset_examples(store, task_id) if example.included]
    if since_utc is None:
        return len(kept)
    newer_turns = _newer(store, "turns", [e.turn_id for e in kept if e.turn_id is not None], since_utc)
    newer_escalations = _newer(
        store,
        "escalations",
        [e.escalation_id for e in kept if e.turn_id is None and e.escalation_id],
        since_utc,
    )
    return newer_turns + newer_escalations


def _newer(store: Store, table: str, ids: list[int], since_utc: str) -> int:
    if not ids:
        return 0
    marks = ", ".join("?" for _ in ids)
    rows = store.db.query(
        f"SELECT COUNT(*) AS n FROM {table} WHERE id IN ({marks}) AND created_utc > ?", [*ids, since_utc]
    )
    return next(iter(rows))["n"]


def _replaceable(replaceability: float | None) -> str:
    if replaceability is None:
        return "replaceability not known yet (no request served here)"
    return f"{replaceability * 100:.0f}% replaceable"


def _minutes(seconds: float) -> str:
    return f"{max(1, round(seconds / 60))} min"
