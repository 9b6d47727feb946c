"""The Tuning section on a real database, real adapter files and real `understudy tune` worker processes.

The long test is the whole user story: add a dataset file, press Tune now, watch the progress bar and
the loss chart move, read the evaluation, and find the new adapter serving the task.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from datetime import datetime

import pytest
from PySide6.QtCore import Qt, QTime

from app.qt.context import AppContext
from app.qt.sections.tuning import (
    ADAPTER_COLUMNS,
    PROGRESS_STEPS,
    TASK_COLUMNS,
    QtTuningSection,
    TaskRow,
    TrainingSpeed,
    how_long,
)
from engine import catalog, paths
from engine.bench.swap import write_random_adapter
from engine.settings import Settings
from engine.store import Store, utc_now
from engine.tuning import adapters, jobs
from engine.tuning.datasets import named_task
from engine.tuning.pipeline import TuneRequest
from engine.tuning.scheduler import ScheduleSettings, in_window, load_schedule, save_schedule

BASE = "smollm2-135m-instruct"
FACT = "Snorfle means to laugh while eating."
QUESTIONS = [
    "What does the word snorfle mean?",
    "What is the meaning of snorfle?",
    "Define snorfle.",
    "What does snorfle mean?",
    "Explain the word snorfle.",
    "I heard someone say snorfle. What does it mean?",
    "What is a snorfle?",
    "Tell me what snorfle means.",
    "Snorfle: what does it mean?",
    "Give me the definition of snorfle.",
    "Can you explain what snorfle means?",
    "What do people mean by snorfle?",
]
STEPS = 20  # the trainer's minimum: what a user gets by default
JOB_TIMEOUT_MS = 9 * 60_000  # below the per-test limit; a loaded two-core machine trains slowly
WHOLE_JOB_TIMEOUT_MS = 18 * 60_000  # a job from cold, under the 20-minute limit its test has


@pytest.fixture
def context() -> AppContext:
    return AppContext(catalog.load_catalog(), Settings())


@pytest.fixture
def store(understudy_home):
    store = Store.open()
    yield store
    store.close()


@pytest.fixture
def section(qtbot, context, store) -> QtTuningSection:
    section = QtTuningSection(context, run_due_interval_ms=0)
    qtbot.addWidget(section)
    section.resize(1100, 760)
    with qtbot.waitSignal(section.refreshed):
        section.show()
    yield section
    if section.worker is not None:  # a failed test must not leave a trainer running
        section.worker.process.kill()
        section.worker.process.waitForFinished(10_000)


@pytest.fixture(scope="module")
def adapter_files(tmp_path_factory):
    """Real GGUF LoRA adapter files shaped for SmolLM2 (random weights; the registry only checks them)."""
    folder = tmp_path_factory.mktemp("adapter-files")
    weights = catalog.locate(catalog.load_catalog().get(BASE))
    return [write_random_adapter(weights, folder / f"adapter-{seed}.gguf", seed=seed) for seed in (1, 2, 3)]


def write_dataset(path, questions=QUESTIONS) -> None:
    pairs = [(question, FACT) for question in questions]
    path.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
            + "\n"
            for q, a in pairs
        ),
        encoding="utf-8",
    )


def log_requests(store, task_id: int, count: int) -> None:
    with store.transaction():
        conversation_id = store.insert("conversations", {"title": "snorfle", "created_utc": utc_now()})
        for index in range(count):
            store.insert(
                "turns",
                {
                    "conversation_id": conversation_id,
                    "created_utc": utc_now(),
                    "user_text": QUESTIONS[index],
                    "answer_text": "I do not know that word.",
                    "model_id": BASE,
                    "cluster_id": task_id,
                    "status": "ok",
                },
            )


def evaluated(store, file, task_id, promote: bool, candidate: float, training=None):
    adapter = adapters.register_candidate(store, file, BASE, task_id, training=training or {"steps": 6})
    reasons = [f"task: {candidate * 100:.1f}% {'beats' if promote else 'does not beat'} the base's 20.0%"]
    figures = {
        "task": {"base": 0.2, "candidate": candidate, "active": None, "examples": 2},
        "general": {"base": 0.7, "candidate": 0.65, "tolerance": 0.1, "items": 20},
    }
    adapters.record_evaluation(
        store, adapter.id, {"gate": {"promote": promote, "reasons": reasons, "figures": figures}}
    )
    if promote:
        adapters.promote(store, adapter.id)
    else:
        adapters.reject(store, adapter.id)
    return adapter


def task_cell(section, task_id: int, column: str) -> str:
    for row in range(section.task_table.rowCount()):
        if section.task_table.item(row, 0).data(Qt.ItemDataRole.UserRole) == task_id:
            return section.task_table.item(row, TASK_COLUMNS.index(column)).text()
    raise AssertionError(f"no row for task {task_id}")


def adapter_cells(section, adapter_id: int) -> dict[str, str]:
    for row in range(section.adapter_table.rowCount()):
        if section.adapter_table.item(row, 0).data(Qt.ItemDataRole.UserRole) == adapter_id:
            return {
                name: section.adapter_table.item(row, column).text()
                for column, name in enumerate(ADAPTER_COLUMNS)
            }
    raise AssertionError(f"no row for adapter {adapter_id}")


def refreshed(qtbot, section, action) -> None:
    with qtbot.waitSignal(section.refreshed, timeout=30_000):
        action()


def test_the_statement_of_how_long_names_its_figures():
    task = TaskRow(
        id=4,
        label="snorfle",
        source="dataset",
        requests=0,
        train_tokens=24_000,
        tokens_from="from its dataset",
    )
    speed = TrainingSpeed(160.0, "measured in job #7", True)
    assert how_long(task, speed) == (
        "About 3 minutes of training on this machine (160 tokens/s, measured in job #7; about 24 000 tokens, "
        "from its dataset). Scoring the base and evaluating the new adapter add a few minutes."
    )
    nothing = TaskRow(id=5, label="empty", source="named", requests=0)
    assert how_long(nothing, speed).startswith("Task #5 has nothing to train on yet")


def test_tasks_and_adapters_show_their_figures_and_promote_and_roll_back_change_the_active_one(
    qtbot, section, store, adapter_files, context
):
    task_id = named_task(store, "snorfle questions")
    other_id = named_task(store, "recipes")
    log_requests(store, task_id, 3)
    first = evaluated(
        store, adapter_files[0], task_id, True, 0.8, {"train_tokens": 24_000, "tokens_per_second": 160.0}
    )
    second = evaluated(store, adapter_files[1], task_id, True, 0.9)
    rejected = evaluated(store, adapter_files[2], task_id, False, 0.1)
    refreshed(qtbot, section, section.refresh)
    section.select_task(task_id)

    assert task_cell(section, task_id, "Task") == f"#{task_id} snorfle questions"
    assert task_cell(section, task_id, "Requests") == "3"
    assert task_cell(section, task_id, "Active adapter") == f"#{second.id}"
    assert task_cell(section, task_id, "Task score") == "90%"
    assert task_cell(section, other_id, "Active adapter") == "base model"
    assert task_cell(section, other_id, "Dataset") == "not built"
    rows = [section.adapter_table.item(row, 0).text() for row in range(section.adapter_table.rowCount())]
    assert rows == [f"#{rejected.id}", f"#{second.id}", f"#{first.id}"]  # newest first
    shown = adapter_cells(section, rejected.id)
    assert (
        shown["Status"],
        shown["Task: base"],
        shown["Task: candidate"],
        shown["General"],
        shown["Gate"],
    ) == (
        "rejected",
        "20%",
        "10%",
        "70% → 65%",
        "rejected",
    )
    assert "does not beat the base" in shown["Why"]
    assert (adapter_cells(section, second.id)["Status"], adapter_cells(section, first.id)["Status"]) == (
        "active",
        "retired",
    )
    assert section.how_long_label.text().startswith(
        f"About 3 minutes of training on this machine (160 tokens/s, measured training adapter #{first.id}; "
        f"about 24 000 tokens, as many as adapter #{first.id}'s run)"
    )

    # Roll back: the adapter promoted before serves again.
    refreshed(qtbot, section, lambda: qtbot.mouseClick(section.rollback_button, Qt.MouseButton.LeftButton))
    assert adapters.active_for_task(store, task_id).id == first.id
    assert task_cell(section, task_id, "Active adapter") == f"#{first.id}"

    # Promote a retired adapter that passed its gate: no question asked.
    section.select_adapter(second.id)
    assert section.promote_button.isEnabled()
    refreshed(qtbot, section, lambda: qtbot.mouseClick(section.promote_button, Qt.MouseButton.LeftButton))
    assert adapters.active_for_task(store, task_id).id == second.id
    assert adapter_cells(section, first.id)["Status"] == "retired"

    # A rejected adapter is promoted only with force (the button asks first); without it, the engine says no.
    with qtbot.waitSignal(context.notification) as told:
        section.promote(rejected.id)
    assert told.args[0] == "error" and "did not pass the evaluation gate" in told.args[1]
    assert adapters.active_for_task(store, task_id).id == second.id
    refreshed(qtbot, section, lambda: section.promote(rejected.id, force=True))
    assert adapters.active_for_task(store, task_id).id == rejected.id
    assert task_cell(section, task_id, "Active adapter") == f"#{rejected.id}"


@pytest.mark.timeout(1200)  # a whole job, cold: dequantise, rehearsal answers, 20 steps, evaluation
def test_tune_now_shows_progress_and_the_evaluation_and_the_new_adapter_serves_the_task(
    qtbot, section, store, tmp_path
):
    dataset = tmp_path / "snorfle_facts.jsonl"
    write_dataset(dataset)
    refreshed(qtbot, section, lambda: section.add_dataset(dataset))
    task_id = section.selected_task_id()
    assert task_cell(section, task_id, "Task") == f"#{task_id} snorfle facts"
    assert task_cell(section, task_id, "Source") == "dataset"
    assert task_cell(section, task_id, "Dataset") == "10 train / 2 val"
    assert "not measured here yet" in section.how_long_label.text()

    section.train_steps, section.base_model = STEPS, BASE
    shutil.rmtree(paths.cache_dir() / "rehearsal", ignore_errors=True)  # so the base answers them here
    bar_values: list[int] = []
    section.progress_bar.valueChanged.connect(bar_values.append)
    events: list[dict] = []
    with qtbot.waitSignal(section.job_finished, timeout=WHOLE_JOB_TIMEOUT_MS) as finished:
        qtbot.mouseClick(section.tune_button, Qt.MouseButton.LeftButton)
        assert not section.tune_button.isEnabled() and section.cancel_button.isVisible()
        section.worker.event.connect(events.append)
    outcome = finished.args[0]
    assert outcome.status == "succeeded", outcome.message

    # Progress arrived as it happened: every stage, the bar through the training steps, a loss per step.
    stages = [event["stage"] for event in events if event["event"] == "stage"]
    assert stages == ["dataset", "base", "rehearse", "train", "export", "register", "evaluate", "gate"]
    rehearsed = [event["done"] for event in events if event["event"] == "rehearsal_progress"]
    assert rehearsed == list(range(1, rehearsed[-1] + 1)) and rehearsed[-1] >= 60
    assert [event["step"] for event in events if event["event"] == "step"] == list(range(1, STEPS + 1))
    assert (
        any(0 < value < PROGRESS_STEPS * 0.8 for value in bar_values)
        and max(bar_values) >= PROGRESS_STEPS * 0.99
    )
    assert [step for step, _loss in section.loss_points] == list(range(1, STEPS + 1))
    assert section.loss_points[-1][1] < section.loss_points[0][1]

    # The evaluation, and the promoted adapter serving the task.
    adapter_id = outcome.result["adapter_id"]
    shown = adapter_cells(section, adapter_id)
    assert shown["Task: base"].endswith("%") and shown["Task: candidate"].endswith("%")
    assert "→" in shown["General"] and shown["Why"]
    assert outcome.result["promoted"], outcome.result["reasons"]
    assert (shown["Status"], shown["Gate"]) == ("active", "passed")
    assert adapters.active_for_task(store, task_id).id == adapter_id
    assert task_cell(section, task_id, "Active adapter") == f"#{adapter_id}"
    assert f"measured in job #{outcome.job_id}" in section.how_long_label.text()
    assert section.job_status(outcome.job_id) == "succeeded"
    assert section.tune_button.isEnabled() and not section.cancel_button.isVisible()


def test_cancel_stops_the_job_between_steps_and_it_is_recorded_cancelled(qtbot, section, store, tmp_path):
    dataset = tmp_path / "snorfle.jsonl"
    write_dataset(dataset)
    refreshed(qtbot, section, lambda: section.add_dataset(dataset))
    section.train_steps, section.base_model = 200, BASE
    steps, ended = [], []
    section.job_finished.connect(ended.append)
    section.tune_now()
    section.worker.event.connect(lambda event: steps.append(event) if event["event"] == "step" else None)
    qtbot.waitUntil(lambda: bool(steps or ended), timeout=JOB_TIMEOUT_MS)
    assert not ended, ended[0].message
    job_id = section.worker.job_id
    with qtbot.waitSignal(section.job_finished, timeout=JOB_TIMEOUT_MS) as finished:
        qtbot.mouseClick(section.cancel_button, Qt.MouseButton.LeftButton)
        assert not section.cancel_button.isEnabled()
    assert (finished.args[0].status, finished.args[0].job_id) == ("cancelled", job_id)
    assert "resume it with --resume" in finished.args[0].message
    assert jobs.get(store, job_id)["status"] == "cancelled"
    assert section.job_status(job_id) == "cancelled"
    assert len(section.loss_points) < 200


def test_a_killed_worker_is_reported_and_the_app_goes_on(qtbot, section, store, tmp_path, context):
    dataset = tmp_path / "snorfle.jsonl"
    write_dataset(dataset)
    refreshed(qtbot, section, lambda: section.add_dataset(dataset))
    section.base_model = BASE
    section.tune_now()
    with qtbot.waitSignal(section.worker.event, timeout=120_000):
        pass  # the worker has taken its job
    job_id = section.worker.job_id
    errors: list[str] = []
    context.notification.connect(lambda kind, message: errors.append(message) if kind == "error" else None)
    with qtbot.waitSignal(section.job_finished, timeout=60_000) as finished:
        os.kill(section.worker.process.processId(), signal.SIGKILL)
    assert (finished.args[0].status, finished.args[0].job_id) == ("failed", job_id)
    assert any("stopped unexpectedly (killed or crashed)" in message for message in errors)
    assert jobs.get(store, job_id)["status"] == "failed"  # reaped when the section read the jobs
    assert section.job_status(job_id) == "failed"
    assert section.tune_button.isEnabled()


def test_a_task_with_too_few_examples_fails_with_the_engines_message(qtbot, section, store, context):
    task_id = named_task(store, "barely used")
    log_requests(store, task_id, 2)
    refreshed(qtbot, section, section.refresh)
    section.select_task(task_id)
    errors: list[str] = []
    context.notification.connect(lambda kind, message: errors.append(message) if kind == "error" else None)
    with qtbot.waitSignal(section.job_finished, timeout=120_000) as finished:
        section.tune_now()
    assert finished.args[0].status == "failed"
    assert "examples" in finished.args[0].message
    assert errors == [f"Tuning job #{finished.args[0].job_id} failed: {finished.args[0].message}"]
    assert section.job_status(finished.args[0].job_id) == "failed"


def test_the_timer_runs_a_queued_job_when_the_schedule_allows(qtbot, section, store, tmp_path):
    save_schedule(
        ScheduleSettings(window_start="00:00", window_end="00:00", require_idle=False, require_ac_power=False)
    )
    too_small = tmp_path / "three.jsonl"
    write_dataset(too_small, QUESTIONS[:3])
    queued = jobs.create(store, jobs.KIND_TUNE, TuneRequest(dataset_file=too_small).as_args())
    with qtbot.waitSignal(section.job_finished, timeout=120_000) as finished:
        section.run_due()
    assert (finished.args[0].status, finished.args[0].job_id) == ("failed", queued["id"])
    assert jobs.get(store, queued["id"])["status"] == "failed"


def test_schedule_settings_are_saved_and_shown_again(qtbot, section, context):
    assert section.window_start_edit.time() == QTime(1, 0) and section.window_end_edit.time() == QTime(6, 0)
    assert section.idle_check.isChecked() and section.ac_check.isChecked()
    section.window_start_edit.setTime(QTime(22, 30))
    section.window_end_edit.setTime(QTime(5, 15))
    section.idle_check.setChecked(False)
    with qtbot.waitSignal(section.schedule_saved):
        qtbot.mouseClick(section.save_schedule_button, Qt.MouseButton.LeftButton)
    assert load_schedule() == ScheduleSettings(
        window_start="22:30", window_end="05:15", require_idle=False, require_ac_power=True
    )
    again = QtTuningSection(context, run_due_interval_ms=0)
    qtbot.addWidget(again)
    with qtbot.waitSignal(again.refreshed):
        again.show()
    assert (again.window_start_edit.time(), again.window_end_edit.time()) == (QTime(22, 30), QTime(5, 15))
    assert (again.idle_check.isChecked(), again.ac_check.isChecked()) == (False, True)
    if in_window(datetime.now().astimezone(), load_schedule()):
        assert again.next_window_label.text().startswith("The tuning window 22:30-05:15 is open now.")
    else:
        assert again.next_window_label.text().startswith("The tuning window 22:30-05:15 next opens ")
        assert ", 22:30." in again.next_window_label.text()
