"""The Tuning section on a real database, real adapter files and `understudy tune` worker processes.

Most jobs here are replayed: the real worker command with its model work replaced by the events of a
job recorded once (tests/support/recorded_tuning_job.jsonl, through replay_tuning_worker.py), so the
progress bar, the loss chart, the lines under them, cancelling and a killed worker are tested in
seconds. Jobs that fail before training run the real worker. The one slow test is the whole user story
for real: add a dataset file, press Tune now, watch the job train, read the evaluation, and find the new
adapter serving the task.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTime
from tuning_records import gated

from app.qt.context import AppContext
from app.qt.sections.tuning import ADAPTER_COLUMNS, PROGRESS_STEPS, TASK_COLUMNS, QtTuningSection
from app.qt.tuning_process import worker_command
from engine import catalog, paths
from engine.bench.swap import write_random_adapter
from engine.settings import Settings
from engine.store import Store, TurnRecord, utc_now
from engine.tuning import adapters, jobs
from engine.tuning.datasets import named_task
from engine.tuning.evaluation import GateFigures, GeneralFigures, TaskFigures
from engine.tuning.events import (
    Evaluated,
    GateDecided,
    JobDone,
    RehearsalProgress,
    StageStarted,
    TrainingStep,
    describe,
    parse_event,
)
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
SUPPORT = Path(__file__).resolve().parents[2] / "support"
RECORDED_JOB = SUPPORT / "recorded_tuning_job.jsonl"
RECORDED = [parse_event(json.loads(line)) for line in RECORDED_JOB.read_text(encoding="utf-8").splitlines()]
REPLAY_TIMEOUT_MS = 120_000  # the replay takes seconds; starting Python on a loaded machine may not
WHOLE_JOB_TIMEOUT_MS = 18 * 60_000  # a job from cold, under the 20-minute limit its test has


@pytest.fixture
def context() -> AppContext:
    return AppContext(catalog.load_catalog(), Settings())


@pytest.fixture
def store(understudy_home):
    store = Store.open()
    yield store
    store.close()


def replay(hold_at_step: int | None = None):
    """The command of a worker that replays the recorded job (waiting at ``hold_at_step`` to be stopped)."""
    hold = [] if hold_at_step is None else ["--hold-at-step", str(hold_at_step)]

    def command(arguments: list[str]) -> tuple[str, list[str]]:
        script = [str(SUPPORT / "replay_tuning_worker.py"), str(RECORDED_JOB), *hold, "--", *arguments]
        return sys.executable, script

    return command


@pytest.fixture
def section(qtbot, context, store) -> QtTuningSection:
    section = QtTuningSection(context, run_due_interval_ms=0, worker_command=replay())
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
    figures = GateFigures(
        TaskFigures(base=0.2, candidate=candidate, active=None, examples=2),
        GeneralFigures(base=0.7, candidate=0.65, tolerance=0.1, items=20),
    )
    adapters.record_evaluation(store, adapter.id, gated(promote, reasons, figures))
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


def add_snorfle_task(qtbot, section, tmp_path, questions=QUESTIONS) -> int:
    dataset = tmp_path / "snorfle_facts.jsonl"
    write_dataset(dataset, questions)
    refreshed(qtbot, section, lambda: section.add_dataset(dataset))
    return section.selected_task_id()


def test_tune_now_shows_the_jobs_progress_in_the_renderers_words(qtbot, section, store, tmp_path, context):
    task_id = add_snorfle_task(qtbot, section, tmp_path)
    bar_values: list[int] = []
    section.progress_bar.valueChanged.connect(bar_values.append)
    # Labels have no signal of their own: what they say is read as each event arrives.
    stage_lines, speed_lines, details_lines, events = [], [], [], []
    notified: list[tuple[str, str]] = []
    context.notification.connect(lambda kind, message: notified.append((kind, message)))

    def record(event) -> None:  # what the labels say once the section has taken each event
        events.append(event)
        stage_lines.append(section.stage_label.text())
        speed_lines.append(section.speed_label.text())
        details_lines.append(section.details_label.text())

    with qtbot.waitSignal(section.job_finished, timeout=REPLAY_TIMEOUT_MS) as finished:
        qtbot.mouseClick(section.tune_button, Qt.MouseButton.LeftButton)
        assert not section.tune_button.isEnabled() and section.cancel_button.isVisible()
        assert section.stage_label.text() == f"Starting tuning #{task_id} snorfle facts…"
        section.worker.event.connect(record)
    outcome = finished.args[0]
    assert outcome.status == "succeeded", outcome.message

    # Every recorded event arrived, typed, in order, from the worker that took the job.
    job_id = outcome.job_id
    assert [type(event) for event in events] == [type(event) for event in RECORDED[: len(events)]]
    assert len(events) == len(RECORDED) and {event.job_id for event in events} == {job_id}
    stages = [event.stage for event in events if isinstance(event, StageStarted)]
    assert stages == ["dataset", "base", "rehearse", "train", "export", "register", "evaluate", "gate"]

    # The labels said what the renderer says, each in its place.
    for event, stage, speed, details in zip(events, stage_lines, speed_lines, details_lines, strict=True):
        if isinstance(event, StageStarted):
            assert stage == f"Job #{job_id} (#{task_id} snorfle facts): {describe(event)}"
        elif isinstance(event, RehearsalProgress | TrainingStep):
            assert speed == describe(event)
        elif isinstance(event, Evaluated | GateDecided):
            assert details == describe(event)
    assert any(line.startswith("Step 20 of 20 · loss ") for line in speed_lines)
    assert details_lines[-2].startswith("Adapter #") and " promoted: task: " in details_lines[-2]

    # The bar moved through the stages, the chart has a loss per step, and the end is told in words.
    steps = [event for event in RECORDED if isinstance(event, TrainingStep)]
    assert any(0 < value < PROGRESS_STEPS * 0.8 for value in bar_values)
    assert max(bar_values) >= PROGRESS_STEPS * 0.99
    assert section.loss_points == [(step.step, step.loss) for step in steps]
    done = describe(JobDone(outcome.result, job_id=job_id))
    assert (
        done == f"Tuning job #{job_id} finished: adapter #{outcome.result.adapter_id} serves task #{task_id}."
    )
    assert ("info", done) in notified
    assert section.stage_label.text() == (
        f"Last job for this task: #{job_id}, succeeded: adapter #{outcome.result.adapter_id} promoted."
    )
    assert not any("understudy" in message or "--" in message for _kind, message in notified)

    # The real worker command recorded the job, which the Jobs tab and the task's row now show.
    assert jobs.get(store, job_id).status == "succeeded" and section.job_status(job_id) == "succeeded"
    assert jobs.get(store, job_id).result == outcome.result
    assert section.tune_button.isEnabled() and not section.cancel_button.isVisible()


def test_a_finished_jobs_training_is_shown_again_from_its_log(qtbot, section, tmp_path):
    add_snorfle_task(qtbot, section, tmp_path)
    with qtbot.waitSignal(section.job_finished, timeout=REPLAY_TIMEOUT_MS) as finished:
        section.tune_now()
    qtbot.waitUntil(
        lambda: section.speed_label.text().startswith("Trained 20 of 20 steps at "), timeout=30_000
    )
    steps = [event for event in RECORDED if isinstance(event, TrainingStep)]
    assert section.loss_points == [(step.step, step.loss) for step in steps]
    assert section.stage_label.text().startswith(
        f"Last job for this task: #{finished.args[0].job_id}, succeeded"
    )


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a whole job, cold: dequantise, rehearsal answers, 20 steps, evaluation
def test_tune_now_trains_for_real_and_the_new_adapter_serves_the_task(qtbot, section, store, tmp_path):
    task_id = add_snorfle_task(qtbot, section, tmp_path)
    assert task_cell(section, task_id, "Task") == f"#{task_id} snorfle facts"
    assert task_cell(section, task_id, "Source") == "dataset"
    assert task_cell(section, task_id, "Dataset") == "10 train / 2 val"
    assert "not measured here yet" in section.how_long_label.text()

    section.worker_command = worker_command  # the real worker: this test trains
    section.train_steps, section.base_model = STEPS, BASE
    shutil.rmtree(paths.cache_dir() / "rehearsal", ignore_errors=True)  # so the base answers them here
    bar_values: list[int] = []
    section.progress_bar.valueChanged.connect(bar_values.append)
    events: list = []
    with qtbot.waitSignal(section.job_finished, timeout=WHOLE_JOB_TIMEOUT_MS) as finished:
        qtbot.mouseClick(section.tune_button, Qt.MouseButton.LeftButton)
        assert not section.tune_button.isEnabled() and section.cancel_button.isVisible()
        section.worker.event.connect(events.append)
    outcome = finished.args[0]
    assert outcome.status == "succeeded", outcome.message

    # Progress arrived as it happened: every stage, the bar through the training steps, a loss per step.
    stages = [event.stage for event in events if isinstance(event, StageStarted)]
    assert stages == ["dataset", "base", "rehearse", "train", "export", "register", "evaluate", "gate"]
    rehearsed = [event.done for event in events if isinstance(event, RehearsalProgress)]
    assert rehearsed == list(range(1, rehearsed[-1] + 1)) and rehearsed[-1] >= 60
    assert [event.step for event in events if isinstance(event, TrainingStep)] == list(range(1, STEPS + 1))
    assert (
        any(0 < value < PROGRESS_STEPS * 0.8 for value in bar_values)
        and max(bar_values) >= PROGRESS_STEPS * 0.99
    )
    assert [step for step, _loss in section.loss_points] == list(range(1, STEPS + 1))
    assert section.loss_points[-1][1] < section.loss_points[0][1]

    # The evaluation, and the promoted adapter serving the task.
    adapter_id = outcome.result.adapter_id
    shown = adapter_cells(section, adapter_id)
    assert shown["Task: base"].endswith("%") and shown["Task: candidate"].endswith("%")
    assert "→" in shown["General"] and shown["Why"]
    assert outcome.result.promoted, outcome.result.reasons
    assert (shown["Status"], shown["Gate"]) == ("active", "passed")
    assert adapters.active_for_task(store, task_id).id == adapter_id
    assert task_cell(section, task_id, "Active adapter") == f"#{adapter_id}"
    assert f"measured in job #{outcome.job_id}" in section.how_long_label.text()
    assert section.job_status(outcome.job_id) == "succeeded"
    assert section.tune_button.isEnabled() and not section.cancel_button.isVisible()


def tune_until_step(qtbot, section, step: int) -> None:
    """Tune the selected task on a replayed job that waits at training step ``step`` to be stopped."""
    section.worker_command = replay(hold_at_step=step)
    steps, ended = [], []
    section.job_finished.connect(ended.append)
    section.tune_now()
    section.worker.event.connect(
        lambda event: steps.append(event) if isinstance(event, TrainingStep) else None
    )
    qtbot.waitUntil(lambda: len(steps) >= step or bool(ended), timeout=REPLAY_TIMEOUT_MS)
    section.job_finished.disconnect(ended.append)
    assert not ended, ended[0].message


def test_cancel_stops_the_job_between_steps_and_it_is_recorded_cancelled(
    qtbot, section, store, tmp_path, context
):
    add_snorfle_task(qtbot, section, tmp_path)
    tune_until_step(qtbot, section, 3)
    job_id = section.worker.job_id
    told: list[tuple[str, str]] = []
    context.notification.connect(lambda kind, message: told.append((kind, message)))
    with qtbot.waitSignal(section.job_finished, timeout=REPLAY_TIMEOUT_MS) as finished:
        qtbot.mouseClick(section.cancel_button, Qt.MouseButton.LeftButton)
        assert not section.cancel_button.isEnabled()
        assert section.stage_label.text() == "Stopping after the current step…"
    outcome = finished.args[0]
    assert (outcome.status, outcome.job_id) == ("cancelled", job_id)
    assert outcome.message == "Training stopped at step 3 of 20; resume it with --resume."
    assert told == [
        (
            "info",
            f"Tuning job #{job_id} was cancelled; Tune now continues its training from the last checkpoint.",
        )
    ]
    assert section.stage_label.text() == f"Last job for this task: #{job_id}, cancelled."
    assert section.details_label.text() == "Stopped on request; Tune now continues from its last checkpoint."
    assert jobs.get(store, job_id).status == "cancelled"
    assert section.job_status(job_id) == "cancelled"
    assert [step for step, _loss in section.loss_points] == [1, 2, 3]
    # Tune now continues it: the next run asks the worker to resume.
    arguments: list[list[str]] = []
    section.worker_command = lambda given: (arguments.append(given), replay()(given))[1]
    with qtbot.waitSignal(section.job_finished, timeout=REPLAY_TIMEOUT_MS):
        section.tune_now()
    assert "--resume" in arguments[0]


def test_a_killed_worker_is_reported_and_the_app_goes_on(qtbot, section, store, tmp_path, context):
    add_snorfle_task(qtbot, section, tmp_path)
    tune_until_step(qtbot, section, 1)
    job_id = section.worker.job_id
    errors: list[str] = []
    context.notification.connect(lambda kind, message: errors.append(message) if kind == "error" else None)
    with qtbot.waitSignal(section.job_finished, timeout=60_000) as finished:
        os.kill(section.worker.process.processId(), signal.SIGKILL)
    assert (finished.args[0].status, finished.args[0].job_id) == ("failed", job_id)
    assert errors == [
        f"Tuning job #{job_id} failed: The tuning process stopped unexpectedly (killed or crashed)."
    ]
    assert jobs.get(store, job_id).status == "failed"  # reaped when the section read the jobs
    assert section.job_status(job_id) == "failed"
    assert section.tune_button.isEnabled()


def test_a_task_with_too_few_examples_fails_with_the_engines_message(qtbot, section, store, context):
    section.worker_command = worker_command  # the real worker: it fails before any training
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
    section.worker_command = worker_command  # the real `tune run-due`: it applies the schedule itself
    save_schedule(
        ScheduleSettings(window_start="00:00", window_end="00:00", require_idle=False, require_ac_power=False)
    )
    too_small = tmp_path / "three.jsonl"
    write_dataset(too_small, QUESTIONS[:3])
    queued = jobs.create(store, jobs.KIND_TUNE, TuneRequest(dataset_file=too_small).as_args())
    with qtbot.waitSignal(section.job_finished, timeout=120_000) as finished:
        section.run_due()
    assert (finished.args[0].status, finished.args[0].job_id) == ("failed", queued.id)
    assert jobs.get(store, queued.id).status == "failed"


def test_in_the_window_the_timer_queues_a_task_with_enough_new_examples_and_runs_it(qtbot, section, store):
    save_schedule(
        ScheduleSettings(window_start="00:00", window_end="00:00", require_idle=False, require_ac_power=False)
    )
    task_id = named_task(store, "snorfle")
    for question in QUESTIONS:
        turn_id = store.log_turn(
            TurnRecord(
                conversation_id=None, user_text=question, model_id=BASE, answer_text="Laughing while eating."
            )
        )
        with store.transaction():
            store.db.execute("UPDATE turns SET cluster_id = ? WHERE id = ?", [task_id, turn_id])
    assert jobs.next_queued(store) is None
    with qtbot.waitSignal(section.job_finished, timeout=REPLAY_TIMEOUT_MS) as finished:
        section.run_due()
    job = jobs.get(store, finished.args[0].job_id)
    assert (job.task_id, job.status) == (task_id, "succeeded")


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


# The Dataset tab, the measure's name and the morning summary ------------------------------------------


PEOPLE = ["Alice Johnson", "Bruno Keller", "Chiara Rossi", "Dmitri Volkov", "Elena Garcia", "Farid Haddad"]
TOPICS = [
    "budget",
    "holiday",
    "roadmap",
    "invoice",
    "hiring",
    "launch",
    "offsite",
    "audit",
    "release",
    "report",
]


def log_rated_turns(store, task_id: int, count: int = 12) -> list[int]:
    """Rated-up local answers of a task, each naming a person and an email address to be scrubbed."""
    with store.transaction():
        conversation_id = store.insert("conversations", {"title": "notes", "created_utc": utc_now()})
    turn_ids = []
    for index in range(count):
        person = PEOPLE[index % len(PEOPLE)]
        topic = TOPICS[index % len(TOPICS)]
        email = f"{person.split()[0].lower()}{index}@example.org"
        turn_id = store.log_turn(
            TurnRecord(
                conversation_id=conversation_id,
                user_text=f"Draft a note number {index} to {person} ({email}) about the {topic} plans.",
                model_id=BASE,
                answer_text=f"Dear {person}, here is note {index} on the {topic} plans for week {index + 3}.",
            )
        )
        with store.transaction():
            store.db.execute("UPDATE turns SET cluster_id = ? WHERE id = ?", [task_id, turn_id])
        store.set_feedback(turn_id, 1)
        turn_ids.append(turn_id)
    return turn_ids


def examples_shown(qtbot, section, action) -> None:
    with qtbot.waitSignal(section.dataset_shown, timeout=30_000):
        action()


def example_rows(section) -> list[dict[str, str]]:
    return [
        {
            name: section.example_table.item(row, column).text()
            for column, name in enumerate(("In", "Example", "Source", "Reason", "Question"))
        }
        for row in range(section.example_table.rowCount())
    ]


def next_build_turns(store, task_id: int) -> set[int]:
    from engine.tuning.datasets import dataset_examples

    return {example.turn_id for example in dataset_examples(store, task_id) if example.included}


def test_the_dataset_tab_lists_examples_and_leave_out_and_put_back_change_the_next_build(
    qtbot, section, store, context
):
    task_id = named_task(store, "meeting notes")
    turn_ids = log_rated_turns(store, task_id)
    examples_shown(qtbot, section, lambda: refreshed(qtbot, section, section.refresh))
    section.select_task(task_id)
    qtbot.waitUntil(lambda: section.example_table.rowCount() == len(turn_ids), timeout=30_000)

    rows = example_rows(section)
    assert {row["Example"] for row in rows} == {f"turn {turn_id}" for turn_id in turn_ids}
    assert {row["Source"] for row in rows} == {"local"}
    assert all(row["In"] == "in" and row["Reason"] for row in rows)
    assert "first build" in section.scrub_label.text()

    left_out = turn_ids[3]
    section.select_example(left_out)
    assert section.leave_out_button.isEnabled() and not section.put_back_button.isEnabled()
    examples_shown(qtbot, section, section.leave_out_button.click)
    assert next_build_turns(store, task_id) == set(turn_ids) - {left_out}
    assert f"turn {left_out}" not in {row["Example"] for row in example_rows(section)}

    section.show_left_out_check.setChecked(True)
    out_rows = [row for row in example_rows(section) if row["In"] == "out"]
    assert [(row["Example"], row["Reason"]) for row in out_rows] == [(f"turn {left_out}", "excluded by you")]
    section.select_example(left_out)
    examples_shown(qtbot, section, section.put_back_button.click)
    assert next_build_turns(store, task_id) == set(turn_ids)

    section.source_filter.setCurrentText("local")
    examples_shown(qtbot, section, section.leave_out_source_button.click)
    # The turn put back by hand stays: one example's choice beats its source's.
    assert next_build_turns(store, task_id) == {left_out}
    assert {row["Reason"] for row in example_rows(section) if row["In"] == "out"} == {
        "excluded by you (all of source 'local')"
    }
    examples_shown(qtbot, section, section.put_back_source_button.click)
    assert next_build_turns(store, task_id) == set(turn_ids)


def test_the_scrub_line_counts_what_the_last_build_replaced(qtbot, section, store):
    from engine.tuning.datasets import build_from_log

    task_id = named_task(store, "meeting notes")
    log_rated_turns(store, task_id)
    build_from_log(store, task_id)
    refreshed(qtbot, section, section.refresh)
    section.select_task(task_id)

    line = section.scrub_label.text()
    assert line.startswith("Personal details replaced with realistic stand-ins: ")
    assert re.search(r"\d+ emails", line) and re.search(r"\d+ names", line)
    assert line.endswith(" in 12 of 12 examples.")


def test_scrub_line_words():
    from app.qt.sections.tuning import scrub_line

    redaction = {
        "examples": 40,
        "examples_changed": 12,
        "surrogates": {"EMAIL": 3, "NAME": 14},
        "secrets_removed": {"SECRET": 1, "CARD": 1},
        "dropped": 0,
    }
    assert scrub_line(redaction) == (
        "Personal details replaced with realistic stand-ins: 3 emails, 14 names in 12 of 40 examples; "
        "2 secrets removed."
    )


def test_the_evaluation_names_the_task_measure(qtbot, section, store, adapter_files):
    task_id = named_task(store, "ticket triage")
    adapter = adapters.register_candidate(store, adapter_files[0], BASE, task_id, training={"steps": 6})
    figures = GateFigures(
        TaskFigures(base=0.2, candidate=0.9, active=None, examples=4, measure="exact"),
        GeneralFigures(base=0.7, candidate=0.69, tolerance=0.1, items=20),
    )
    adapters.record_evaluation(
        store, adapter.id, gated(True, ["task (exact match): 90.0% beats 20.0%"], figures)
    )
    refreshed(qtbot, section, section.refresh)
    section.select_task(task_id)
    section.select_adapter(adapter.id)

    assert adapter_cells(section, adapter.id)["Measure"] == "Task (exact match)"
    assert "task scored by exact match" in section.verdict_label.text()


def test_the_morning_banner_tells_last_nights_outcome_once(qtbot, section, store, context):
    from tuning_records import tune_result

    served_id = named_task(store, "ticket triage")
    rejected_id = named_task(store, "meeting notes")
    served_job = jobs.create(store, jobs.KIND_TUNE, {"task": served_id}, task_id=served_id)
    jobs.finish(store, served_job.id, "succeeded", tune_result(4, "active", served_id))
    rejected_job = jobs.create(store, jobs.KIND_TUNE, {"task": rejected_id}, task_id=rejected_id)
    rejected = tune_result(5, "rejected", rejected_id)
    jobs.finish(store, rejected_job.id, "succeeded", rejected)
    notifications = []
    context.notification.connect(lambda kind, message: notifications.append((kind, message)))
    from app.qt.workers import job_pool

    job_pool().waitForDone(30_000)  # the check the section made when it was shown, before any job
    qtbot.wait(50)

    with qtbot.waitSignal(section.night_checked, timeout=30_000) as shown:
        section.check_last_night()
    expected = (
        "Overnight: 'ticket triage' is now answered on this computer; 'meeting notes' was not promoted: "
        f"{'; '.join(rejected.reasons)}."
    )
    assert shown.args[0].startswith(expected)
    assert section.night_banner.text() == shown.args[0]
    assert not section.night_panel.isHidden()
    assert ("info", shown.args[0]) in notifications

    with qtbot.waitSignal(section.night_checked, timeout=30_000) as again:
        section.check_last_night()
    assert again.args[0] is None
    assert [message for _kind, message in notifications].count(shown.args[0]) == 1


def test_the_worker_process_is_told_to_let_openmp_wait_passively(monkeypatch):
    """Only the child gets the setting; the app's own environment is left as it was."""
    from app.qt.tuning_process import worker_environment

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert worker_environment().value("OMP_WAIT_POLICY") == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert worker_environment().value("OMP_WAIT_POLICY") == "ACTIVE"
