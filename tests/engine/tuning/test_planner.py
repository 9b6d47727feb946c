"""Auto-queueing: which tasks get a job tonight, in what order, within the window and the budget (real
SQLite in the test's data dir; nothing is trained)."""

from __future__ import annotations

from datetime import datetime

import pytest
from tuning_records import tune_result

from engine.store import ModelCallRecord, Store, TurnRecord
from engine.tuning import jobs
from engine.tuning.datasets import named_task
from engine.tuning.overview import last_night
from engine.tuning.planner import plan_due_jobs, queue_due_jobs
from engine.tuning.scheduler import ScheduleSettings

MODEL = "smollm2-135m-instruct"
NIGHT = datetime(2026, 11, 10, 2, 0).astimezone()
NOON = datetime(2026, 11, 10, 12, 0).astimezone()
SETTINGS = ScheduleSettings()


@pytest.fixture
def store():
    store = Store.open()
    yield store
    store.close()


def log_turns(store: Store, task_id: int, count: int, rating: int, start: int = 0) -> None:
    """``count`` one-turn conversations of the task, each rated ``rating``."""
    for number in range(start, start + count):
        question = f"Task {task_id} request number {number}: what is {number} plus {task_id}?"
        turn_id = store.log_turn(
            TurnRecord(
                conversation_id=None,
                user_text=question,
                model_id=MODEL,
                answer_text=f"{number + task_id}",
                model_calls=[
                    ModelCallRecord(
                        model_id=MODEL,
                        backend="llama_cpp",
                        messages=[{"role": "user", "content": question}],
                        finish_reason="stop",
                    )
                ],
            )
        )
        with store.transaction():
            store.db.execute("UPDATE turns SET cluster_id = ? WHERE id = ?", [task_id, turn_id])
        store.set_feedback(turn_id, rating)


@pytest.fixture
def tasks(store):
    """Busy but often turned down (22 requests, 12 replaceable), quiet but always kept (14 requests,
    14 replaceable), and one with too few examples."""
    busy, quiet, sparse = (named_task(store, label) for label in ("busy", "quiet", "sparse"))
    log_turns(store, busy, 12, rating=1)
    log_turns(store, busy, 10, rating=-1, start=100)
    log_turns(store, quiet, 14, rating=1)
    log_turns(store, sparse, 3, rating=1)
    return busy, quiet, sparse


def test_tasks_are_ranked_by_traffic_times_replaceability(store, tasks):
    busy, quiet, sparse = tasks
    plan = plan_due_jobs(store, NIGHT, SETTINGS, budget_seconds=24 * 3600)
    assert [planned.task_id for planned in plan] == [quiet, busy, sparse]
    assert [planned.queued for planned in plan] == [True, True, False]
    assert plan[0].share < plan[1].share and plan[0].priority > plan[1].priority
    assert plan[0].reason.startswith("ranked #1: ")
    assert plan[2].reason.startswith("too few new examples: 3 usable in all; tuning needs 10")


def test_nothing_is_queued_outside_the_window_unless_told_to_ignore_it(store, tasks):
    assert queue_due_jobs(store, plan_due_jobs(store, NOON, SETTINGS)) == []
    assert jobs.queued_count(store) == 0
    queued = queue_due_jobs(store, plan_due_jobs(store, NOON, SETTINGS, ignore_window=True))
    assert [planned.job_id for planned in queued if planned.queued] == [1, 2]
    assert [job.task_id for job in reversed(jobs.list_jobs(store))] == [tasks[1], tasks[0]]
    again = plan_due_jobs(store, NOON, SETTINGS, ignore_window=True)
    assert not any(planned.queued for planned in again)
    assert again[0].reason == "job #1 for it is already queued"


def test_lower_ranked_tasks_past_the_budget_are_skipped(store, tasks):
    busy, quiet, _sparse = tasks
    first = plan_due_jobs(store, NIGHT, SETTINGS, budget_seconds=24 * 3600)[0]
    plan = plan_due_jobs(store, NIGHT, SETTINGS, budget_seconds=first.estimated_seconds + 1)
    assert [(planned.task_id, planned.queued) for planned in plan[:2]] == [(quiet, True), (busy, False)]
    assert plan[1].reason.startswith("over budget: about ")


def test_only_examples_new_since_the_last_adapter_count(store, tasks):
    _busy, quiet, _sparse = tasks
    with store.transaction():
        store.db.execute("UPDATE turns SET created_utc = '2026-01-01T00:00:00.000+00:00'")
    store.insert(
        "adapters",
        {
            "task_id": quiet,
            "base_model_id": MODEL,
            "path": "",
            "sha256": "0" * 64,
            "status": "active",
            "created_utc": "2026-02-01T00:00:00.000+00:00",
        },
    )
    log_turns(store, quiet, 4, rating=1, start=200)
    planned = next(p for p in plan_due_jobs(store, NIGHT, SETTINGS) if p.task_id == quiet)
    assert not planned.queued
    assert planned.reason == "too few new examples: 4 usable since adapter #1; tuning needs 10"


def test_last_night_says_which_tasks_are_served_and_which_were_rejected(store, tasks):
    busy, quiet, _sparse = tasks
    served = jobs.create(store, jobs.KIND_TUNE, {"task": quiet}, task_id=quiet)
    rejected = jobs.create(store, jobs.KIND_TUNE, {"task": busy}, task_id=busy)
    for job, status in ((served, "active"), (rejected, "rejected")):
        jobs.start(store, job.id)
        jobs.finish(store, job.id, "succeeded", result=tune_result(job.id + 10, status, job.task_id))
    night = last_night(
        store, datetime.now().astimezone(), ScheduleSettings(window_start="00:00", window_end="00:00")
    )
    assert [(o.label, o.adapter_id) for o in night.served] == [("quiet", 11)]
    assert [(o.label, o.adapter_id) for o in night.rejected] == [("busy", 12)]
    assert night.lines()[0].startswith("quiet is now served locally by adapter #11")
    assert night.as_dict()["rejected"][0]["why"] == "task: 90.0% beats the base's 20.0%"
