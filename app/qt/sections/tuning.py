"""The Tuning section: tasks and their datasets, a tuning job with live progress, the evaluation of
every adapter with promote and roll back, the nightly schedule, and how long a job takes here.

What it shows is read by ``engine.tuning.overview`` in a background job, as is everything else that
reads or writes the database. A job runs in its own process (``app.qt.tuning_process``): its events
become the progress bar, the loss chart and the lines under them (in the words of
``engine.tuning.events.describe``) as they arrive. Cancel sends the worker SIGTERM (what ``understudy
tune cancel`` does): it stops between training steps and records the job as cancelled.

While the app is open it also runs queued jobs: every ``run_due_interval_ms`` (10 minutes by default)
it starts ``understudy tune run-due --json`` when a job is queued and none is running, and that command
applies the schedule's window, idle and AC-power rules itself. With the app closed, a system timer has
to call ``understudy tune run-due`` (see ``engine.tuning.scheduler``).

The Dataset tab offers what ``understudy datasets`` does: each example of the selected task with its
source and why it is in (or left out), and the user's say over them. In the morning a banner says once
what the night's jobs came to (``engine.tuning.overview.last_night``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, QTime, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidgetItem,
    QTabWidget,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext, window_state
from app.qt.tuning_process import JobOutcome, QtTuneProcess, WorkerCommand, worker_command
from app.qt.widgets.charts import QtTimeSeriesChart
from app.qt.widgets.formatting import percent
from app.qt.widgets.tables import read_only_table
from app.qt.workers import run_in_background, thread_store
from engine.tuning.adapters import Adapter
from engine.tuning.datasets import SOURCES, DatasetExample
from engine.tuning.events import (
    BaseChosen,
    BaseScored,
    CandidateRegistered,
    DatasetBuilt,
    Dequantised,
    Dequantising,
    Evaluated,
    EvaluationProgress,
    GateDecided,
    JobDone,
    JobEvent,
    JobFailed,
    JobWarning,
    RehearsalProgress,
    StageStarted,
    Trained,
    TrainingStarted,
    TrainingStep,
    describe,
    progress_of,
)
from engine.tuning.jobs import Job
from engine.tuning.overview import (
    LastNight,
    TaskOverview,
    TrainingHistory,
    TuningOverview,
    how_long,
    read_overview,
    training_history,
)
from engine.tuning.scheduler import ScheduleSettings

TASK_COLUMNS = ("Task", "Source", "Requests", "Dataset", "Active adapter", "Task score")
ADAPTER_COLUMNS = (
    "#", "Status", "Base model", "Created", "Measure", "Task: base", "Task: candidate", "Task: active",
    "General", "Gate", "Why",
)  # fmt: skip
JOB_COLUMNS = ("#", "Task", "Status", "Progress", "Created", "Outcome")
DATASET_COLUMNS = ("In", "Example", "Source", "Reason", "Question")
ALL_SOURCES = "All sources"
SHOWN_QUESTION_CHARACTERS = 120
# The night whose summary was shown last, in the window state, so a morning is told once.
NIGHT_SHOWN_KEY = "tuning/last_night_shown"
# The personal details scrubbing replaces, as the scrub line counts them (secrets are counted as one).
DETAIL_NAMES = {
    "NAME": ("name", "names"),
    "EMAIL": ("email", "emails"),
    "PHONE": ("phone number", "phone numbers"),
    "POSTCODE": ("postcode", "postcodes"),
    "DOB": ("date of birth", "dates of birth"),
    "IP": ("IP address", "IP addresses"),
}
# Where a running job's events are told, besides stages, steps and warnings: the line under the
# progress bar (what is happening now) or the one under the chart (what the job has found).
SPEED_LINE_EVENTS = (Dequantising, Dequantised, RehearsalProgress, TrainingStarted, EvaluationProgress)
DETAILS_LINE_EVENTS = (DatasetBuilt, BaseScored, BaseChosen, CandidateRegistered, Evaluated, GateDecided)
RUN_DUE_INTERVAL_MS = 10 * 60 * 1000
SHUTDOWN_WAIT_MS = 15_000
PROGRESS_STEPS = 1000


class QtTuningSection(QWidget):
    """Tune a specialist for a task, watch it train, read its evaluation, promote or roll back."""

    title = "Tuning"
    refreshed = Signal()
    job_finished = Signal(object)  # JobOutcome, once the section shows the state after the job
    adapters_changed = Signal(int)  # a task id whose active adapter changed: other task views refresh
    schedule_saved = Signal(object)  # ScheduleSettings
    dataset_shown = Signal()  # the Dataset tab lists the selected task's examples as they are now
    night_checked = Signal(object)  # the morning summary shown (a str), or None when there was none

    def __init__(
        self,
        context: AppContext,
        parent=None,
        run_due_interval_ms: int = RUN_DUE_INTERVAL_MS,
        worker_command: WorkerCommand = worker_command,
    ):
        super().__init__(parent)
        self.context = context
        self.worker_command = worker_command  # how a job's worker process is started
        self.state: TuningOverview | None = None
        self.worker: QtTuneProcess | None = None
        # Passed to `understudy tune` as --steps and --base when set (tests, and people in a hurry).
        self.train_steps: int | None = None
        self.base_model: str | None = None
        self.loss_points: list[tuple[float, float]] = []
        self._worker_task_id: int | None = None
        self._generation = 0
        self._after_refresh: list = []
        self._history_generation = 0
        self._shown_schedule: ScheduleSettings | None = None
        self.examples: list[DatasetExample] = []
        self._dataset_generation = 0
        self._worker_runs_due = False

        self.night_banner = QLabel()
        self.night_banner.setObjectName("banner")
        self.night_banner.setWordWrap(True)
        self.night_banner.setAccessibleName("What last night's tuning came to")
        self.night_banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss_night_button = QPushButton("Dismiss")
        self.dismiss_night_button.setAccessibleName("Hide last night's tuning summary")
        self.dismiss_night_button.clicked.connect(self._on_dismiss_night_clicked)
        self.night_panel = QWidget()
        night_layout = QHBoxLayout(self.night_panel)
        night_layout.setContentsMargins(0, 0, 0, 0)
        night_layout.addWidget(self.night_banner, 1)
        night_layout.addWidget(self.dismiss_night_button)
        self.night_panel.hide()

        self.summary = QLabel("Reading the tasks…")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Tuning summary")

        self.task_table = read_only_table(TASK_COLUMNS, "Tasks")
        self.task_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.task_table.itemSelectionChanged.connect(self._on_task_selected)
        self.tune_button = QPushButton("Tune now")
        self.tune_button.setProperty("primary", "true")
        self.tune_button.setAccessibleName("Tune the selected task now")
        self.tune_button.clicked.connect(self.tune_now)
        self.queue_button = QPushButton("Tune tonight")
        self.queue_button.setAccessibleName("Queue the selected task for the nightly window")
        self.queue_button.clicked.connect(self.queue_tonight)
        self.add_dataset_button = QPushButton("Add a dataset file…")
        self.add_dataset_button.setAccessibleName("Add a JSONL dataset file as a task")
        self.add_dataset_button.setToolTip(
            'A JSONL file with one {"messages": [...]} chat record per line (what exporting the log for '
            "fine-tuning writes); it becomes a task named after the file."
        )
        self.add_dataset_button.clicked.connect(self._on_add_dataset_clicked)
        self.how_long_label = QLabel()
        self.how_long_label.setWordWrap(True)
        self.how_long_label.setAccessibleName("How long tuning takes")
        task_buttons = QHBoxLayout()
        task_buttons.addWidget(self.tune_button)
        task_buttons.addWidget(self.queue_button)
        task_buttons.addStretch(1)
        task_buttons.addWidget(self.add_dataset_button)
        task_panel = QWidget()
        task_layout = QVBoxLayout(task_panel)
        task_layout.setContentsMargins(0, 0, 0, 0)
        task_layout.addWidget(self.task_table, 1)
        task_layout.addLayout(task_buttons)
        task_layout.addWidget(self.how_long_label)

        self.stage_label = QLabel("No tuning job running.")
        self.stage_label.setAccessibleName("Tuning stage")
        self.stage_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, PROGRESS_STEPS)
        self.progress_bar.setAccessibleName("Tuning progress")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel the tuning job")
        self.cancel_button.clicked.connect(self.cancel_job)
        self.speed_label = QLabel()
        self.speed_label.setAccessibleName("Training speed and time left")
        self.details_label = QLabel()
        self.details_label.setWordWrap(True)
        self.details_label.setAccessibleName("Tuning details")
        self.loss_chart = QtTimeSeriesChart(
            "Training loss", "line", "{:.3g}".format, x_format=lambda step: f"{step:g}",
            empty_text="The loss per training step appears here",
        )  # fmt: skip
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)
        job_panel = QWidget()
        job_layout = QVBoxLayout(job_panel)
        job_layout.setContentsMargins(8, 0, 0, 0)
        job_layout.addWidget(self.stage_label)
        job_layout.addLayout(progress_row)
        job_layout.addWidget(self.speed_label)
        job_layout.addWidget(self.loss_chart, 1)
        job_layout.addWidget(self.details_label)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(task_panel)
        top.addWidget(job_panel)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Evaluations, dataset, jobs and schedule")
        self.tabs.addTab(self._evaluations_tab(), "Evaluations")
        self.tabs.addTab(self._dataset_tab(), "Dataset")
        self.tabs.addTab(self._jobs_tab(), "Jobs")
        self.tabs.addTab(self._schedule_tab(), "Schedule")

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.night_panel)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)

        self.run_due_timer = QTimer(self)
        self.run_due_timer.timeout.connect(self.run_due)
        if run_due_interval_ms > 0:
            self.run_due_timer.start(run_due_interval_ms)
        self._update_controls()

    def _evaluations_tab(self) -> QWidget:
        self.adapter_table = read_only_table(ADAPTER_COLUMNS, "Adapters of the selected task")
        self.adapter_table.horizontalHeader().setSectionResizeMode(
            ADAPTER_COLUMNS.index("Why"), QHeaderView.ResizeMode.Stretch
        )
        for column, tip in (
            ("Measure", "How the task's held-out answers were scored against their references."),
            ("Task: base", "The base model's score on the task's held-out examples."),
            ("Task: candidate", "This adapter's score on the same examples."),
            ("Task: active", "The score of the adapter that was active when this one was evaluated."),
            ("General", "The general regression set: the base's score → with this adapter."),
        ):
            self.adapter_table.horizontalHeaderItem(ADAPTER_COLUMNS.index(column)).setToolTip(tip)
        self.adapter_table.itemSelectionChanged.connect(self._update_controls)
        self.promote_button = QPushButton("Promote")
        self.promote_button.setAccessibleName("Make the selected adapter serve its task")
        self.promote_button.clicked.connect(self._on_promote_clicked)
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.setAccessibleName("Go back to the task's previous adapter or its base model")
        self.rollback_button.clicked.connect(self._on_rollback_clicked)
        self.verdict_label = QLabel()
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setAccessibleName("The selected adapter's gate verdict")
        self.verdict_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.verdict_label, 1)
        buttons.addWidget(self.promote_button)
        buttons.addWidget(self.rollback_button)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addWidget(self.adapter_table, 1)
        layout.addLayout(buttons)
        return tab

    def _dataset_tab(self) -> QWidget:
        self.scrub_label = QLabel()
        self.scrub_label.setWordWrap(True)
        self.scrub_label.setAccessibleName("What scrubbing changed in the dataset")
        self.show_left_out_check = QCheckBox("Show left-out turns")
        self.show_left_out_check.setAccessibleName("Also list the turns left out of the dataset, and why")
        self.show_left_out_check.toggled.connect(self._show_examples)
        self.source_filter = QComboBox()
        self.source_filter.setAccessibleName("Show the examples of one source")
        self.source_filter.addItems([ALL_SOURCES, *SOURCES])
        self.source_filter.currentTextChanged.connect(self._show_examples)
        self.example_table = read_only_table(DATASET_COLUMNS, "Examples of the selected task's dataset")
        self.example_table.horizontalHeader().setSectionResizeMode(
            DATASET_COLUMNS.index("Question"), QHeaderView.ResizeMode.Stretch
        )
        self.example_table.itemSelectionChanged.connect(self._update_controls)
        self.leave_out_button = QPushButton("Leave out")
        self.leave_out_button.setAccessibleName("Leave the selected example out of the next dataset")
        self.leave_out_button.clicked.connect(lambda: self._on_choose_example_clicked(False))
        self.put_back_button = QPushButton("Put back")
        self.put_back_button.setAccessibleName("Keep the selected example in the next dataset")
        self.put_back_button.clicked.connect(lambda: self._on_choose_example_clicked(True))
        self.leave_out_source_button = QPushButton("Leave out all from this source")
        self.leave_out_source_button.setAccessibleName("Leave every example of the chosen source out")
        self.leave_out_source_button.clicked.connect(lambda: self._on_choose_source_clicked(False))
        self.put_back_source_button = QPushButton("Put back this source")
        self.put_back_source_button.setAccessibleName("Take back leaving the chosen source out")
        self.put_back_source_button.clicked.connect(lambda: self._on_choose_source_clicked(True))
        filters = QHBoxLayout()
        filters.addWidget(self.show_left_out_check)
        filters.addStretch(1)
        filters.addWidget(QLabel("Source"))
        filters.addWidget(self.source_filter)
        filters.addWidget(self.leave_out_source_button)
        filters.addWidget(self.put_back_source_button)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.leave_out_button)
        buttons.addWidget(self.put_back_button)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addWidget(self.scrub_label)
        layout.addLayout(filters)
        layout.addWidget(self.example_table, 1)
        layout.addLayout(buttons)
        return tab

    def _jobs_tab(self) -> QWidget:
        self.job_table = read_only_table(JOB_COLUMNS, "Tuning jobs")
        self.job_table.horizontalHeader().setSectionResizeMode(
            JOB_COLUMNS.index("Outcome"), QHeaderView.ResizeMode.Stretch
        )
        self.job_table.itemSelectionChanged.connect(self._update_controls)
        self.cancel_selected_button = QPushButton("Cancel job")
        self.cancel_selected_button.setAccessibleName("Cancel the selected queued or running job")
        self.cancel_selected_button.clicked.connect(self._on_cancel_selected_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_selected_button)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addWidget(self.job_table, 1)
        layout.addLayout(buttons)
        return tab

    def _schedule_tab(self) -> QWidget:
        self.window_start_edit = QTimeEdit()
        self.window_start_edit.setDisplayFormat("HH:mm")
        self.window_start_edit.setAccessibleName("Tuning window starts")
        self.window_end_edit = QTimeEdit()
        self.window_end_edit.setDisplayFormat("HH:mm")
        self.window_end_edit.setAccessibleName("Tuning window ends")
        self.idle_check = QCheckBox("Only when the machine is idle")
        self.idle_check.setAccessibleName("Wait until the machine is idle")
        self.ac_check = QCheckBox("Only on AC power")
        self.ac_check.setAccessibleName("Wait for AC power")
        self.save_schedule_button = QPushButton("Save schedule")
        self.save_schedule_button.setAccessibleName("Save the tuning schedule")
        self.save_schedule_button.clicked.connect(self.save_schedule)
        self.next_window_label = QLabel()
        self.next_window_label.setAccessibleName("Next tuning window")
        self.next_window_label.setWordWrap(True)
        window = QHBoxLayout()
        window.addWidget(self.window_start_edit)
        window.addWidget(QLabel("to"))
        window.addWidget(self.window_end_edit)
        window.addStretch(1)
        form = QFormLayout()
        form.addRow("Nightly window (local time)", window)
        form.addRow("", self.idle_check)
        form.addRow("", self.ac_check)
        save_row = QHBoxLayout()
        save_row.addWidget(self.save_schedule_button)
        save_row.addStretch(1)
        form.addRow("", save_row)
        note = QLabel(
            "Tune tonight queues a job for this window. While the app is open it checks every "
            f"{RUN_DUE_INTERVAL_MS // 60_000} minutes and starts a queued job when the window, idle and "
            f"power rules allow, so leave it open (minimised is fine) for the night."
        )
        note.setWordWrap(True)
        note.setObjectName("messageFooter")
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addLayout(form)
        layout.addWidget(self.next_window_label)
        layout.addWidget(note)
        layout.addStretch(1)
        return tab

    # Reading ------------------------------------------------------------------------------------------

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()
        self.check_last_night()

    def refresh(self, then=None) -> None:
        """Read everything again in the background; ``then()`` runs once it is shown."""
        self._generation += 1
        generation = self._generation
        if then is not None:
            self._after_refresh.append(then)

        def shown(state: TuningOverview) -> None:
            if generation == self._generation:
                self._show(state)

        def failed(message: str) -> None:
            self.context.notify_error(message)
            if generation == self._generation:
                self._run_after_refresh()

        run_in_background(lambda: read_overview(thread_store()), shown, failed)

    def _run_after_refresh(self) -> None:
        waiting, self._after_refresh = self._after_refresh, []
        for then in waiting:
            then()

    def _show(self, state: TuningOverview) -> None:
        selected = self.selected_task_id()
        self.state = state
        self.task_table.setRowCount(len(state.tasks))
        for row, task in enumerate(state.tasks):
            self._fill_task_row(row, task)
        rows = [row for row, task in enumerate(state.tasks) if task.id == selected]
        if rows:
            self.task_table.selectRow(rows[0])
        elif state.tasks and selected is None:
            self.task_table.selectRow(0)
        self._show_jobs(state.jobs)
        self._show_schedule(state)
        self._on_task_selected()
        self._show_summary(state)
        self.refreshed.emit()
        self._run_after_refresh()

    def _show_summary(self, state: TuningOverview) -> None:
        specialists = sum(task.active_adapter_id is not None for task in state.tasks)
        running = self._external_running_job()
        parts = [f"{len(state.tasks)} tasks, {specialists} served by a specialist"]
        if state.queued:
            parts.append(
                f"{state.queued} job{'s' if state.queued != 1 else ''} queued for the nightly window"
            )
        if running is not None:
            parts.append(
                f"job #{running['id']} is running in another process ({running['progress'] * 100:.0f}%)"
            )
        if not state.tasks:
            parts = ["No tasks yet: Discover tasks in Insights, or add a dataset file"]
        self.summary.setText(" · ".join(parts) + ".")

    def _fill_task_row(self, row: int, task: TaskOverview) -> None:
        dataset = "not built" if task.n_train is None else f"{task.n_train} train / {task.n_val} val"
        cells = (
            f"#{task.id} {task.label}",
            task.source,
            str(task.requests),
            dataset,
            "base model" if task.active_adapter_id is None else f"#{task.active_adapter_id}",
            percent(task.active_score) if task.active_adapter_id is not None else "",
        )
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, task.id)
            if column >= 2:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.task_table.setItem(row, column, item)
        if task.dataset_file:
            self.task_table.item(row, TASK_COLUMNS.index("Dataset")).setToolTip(f"From {task.dataset_file}")

    def selected_task_id(self) -> int | None:
        items = self.task_table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def selected_task(self) -> TaskOverview | None:
        return None if self.state is None else self.state.task(self.selected_task_id())

    def select_task(self, task_id: int) -> None:
        for row in range(self.task_table.rowCount()):
            if self.task_table.item(row, 0).data(Qt.ItemDataRole.UserRole) == task_id:
                self.task_table.selectRow(row)

    def _on_task_selected(self) -> None:
        task = self.selected_task()
        self._show_adapters(
            [] if task is None or self.state is None else self.state.adapters.get(task.id, [])
        )
        if task is None:
            self.how_long_label.setText("Select a task to see how long tuning it takes here.")
        else:
            self.how_long_label.setText(how_long(task, self.state.speed))
        if self.worker is None:
            self._show_last_job(task)
        self.scrub_label.setText(scrub_line(None if task is None else task.redaction))
        self.load_examples()
        self._update_controls()

    def _show_adapters(self, listed: list[Adapter]) -> None:
        selected = self.selected_adapter()
        self.adapter_table.setRowCount(len(listed))
        for row, adapter in enumerate(listed):
            evaluation = adapter.evaluation
            cells = (
                f"#{adapter.id}",
                adapter.status,
                adapter.base_model_id,
                _local_time(adapter.created_utc),
            )
            cells += ("" if evaluation.measure is None else f"Task ({evaluation.measure})",)
            if evaluation.gate is None:
                cells += ("", "", "", "")
            else:
                task, general = evaluation.gate.figures.task, evaluation.gate.figures.general
                cells += (
                    percent(task.base),
                    percent(task.candidate),
                    "" if task.active is None else percent(task.active),
                    f"{percent(general.base)} → {percent(general.candidate)}",
                )
            reasons = evaluation.reasons
            cells += (evaluation.verdict, reasons)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, adapter.id)
                if column == ADAPTER_COLUMNS.index("Why"):
                    item.setToolTip(reasons)
                self.adapter_table.setItem(row, column, item)
            if selected is not None and adapter.id == selected.id:
                self.adapter_table.selectRow(row)
        if listed and self.selected_adapter() is None:
            self.adapter_table.selectRow(0)  # the newest: what the last job made

    def selected_adapter(self) -> Adapter | None:
        items = self.adapter_table.selectedItems()
        task = self.selected_task()
        if not items or task is None or self.state is None:
            return None
        adapter_id = items[0].data(Qt.ItemDataRole.UserRole)
        return next((a for a in self.state.adapters.get(task.id, []) if a.id == adapter_id), None)

    def select_adapter(self, adapter_id: int) -> None:
        for row in range(self.adapter_table.rowCount()):
            if self.adapter_table.item(row, 0).data(Qt.ItemDataRole.UserRole) == adapter_id:
                self.adapter_table.selectRow(row)

    def _show_jobs(self, listed: list[Job]) -> None:
        labels = {task.id: task.label for task in self.state.tasks} if self.state else {}
        self.job_table.setRowCount(len(listed))
        for row, job in enumerate(listed):
            cells = (
                f"#{job.id}",
                f"#{job.task_id} {labels.get(job.task_id) or job.subject}" if job.task_id else job.subject,
                job.status,
                f"{job.progress * 100:.0f}%",
                _local_time(job.created_utc),
                job.outcome,
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, job.id)
                if column == JOB_COLUMNS.index("Outcome"):
                    item.setToolTip(job.outcome)
                self.job_table.setItem(row, column, item)

    def selected_job(self) -> Job | None:
        items = self.job_table.selectedItems()
        if not items or self.state is None:
            return None
        job_id = items[0].data(Qt.ItemDataRole.UserRole)
        return next((job for job in self.state.jobs if job.id == job_id), None)

    def job_status(self, job_id: int) -> str | None:
        """The status shown for ``job_id`` in the Jobs tab."""
        for row in range(self.job_table.rowCount()):
            if self.job_table.item(row, 0).data(Qt.ItemDataRole.UserRole) == job_id:
                return self.job_table.item(row, JOB_COLUMNS.index("Status")).text()
        return None

    def _external_running_job(self) -> Job | None:
        """A job running in a process this section did not start (the command line, a timer)."""
        if self.state is None:
            return None
        return self.state.running_job(besides=self.worker.job_id if self.worker is not None else None)

    def _show_last_job(self, task: TaskOverview | None) -> None:
        """With no job running here, show the selected task's last job and its loss curve."""
        job = None if task is None else task.last_job
        if job is None:
            self.stage_label.setText("No tuning job running.")
            self.progress_bar.setValue(0)
            self.speed_label.setText("")
            self.details_label.setText("")
            self.loss_chart.set_series([])
            return
        outcome = job.status
        if job.result is not None:
            verdict = "promoted" if job.result.promoted else "rejected by the gate"
            outcome = f"{outcome}: adapter #{job.result.adapter_id} {verdict}"
        self.stage_label.setText(f"Last job for this task: #{job.id}, {outcome}.")
        self.progress_bar.setValue(round(job.progress * PROGRESS_STEPS))
        if job.status == "cancelled":
            self.details_label.setText("Stopped on request; Tune now continues from its last checkpoint.")
        else:
            self.details_label.setText(job.error or "")
        self._history_generation += 1
        generation = self._history_generation

        def shown(history: TrainingHistory) -> None:
            if generation != self._history_generation or self.worker is not None:
                return
            self.loss_points = history.loss_points
            self.loss_chart.set_series(self.loss_points)
            self.speed_label.setText(history.summary())

        run_in_background(lambda: training_history(job), shown, self.context.notify_error)

    def _show_schedule(self, state: TuningOverview) -> None:
        schedule = state.schedule
        if schedule != self._shown_schedule:  # a refresh keeps edits not saved yet
            self._shown_schedule = schedule
            self.window_start_edit.setTime(QTime.fromString(schedule.window_start, "HH:mm"))
            self.window_end_edit.setTime(QTime.fromString(schedule.window_end, "HH:mm"))
            self.idle_check.setChecked(schedule.require_idle)
            self.ac_check.setChecked(schedule.require_ac_power)
        queued = f" {state.queued} job{'s' if state.queued != 1 else ''} queued." if state.queued else ""
        problem = f" {state.schedule_problem}" if state.schedule_problem else ""
        window = f"{schedule.window_start}-{schedule.window_end}"
        if state.window_open:
            opens = f"The tuning window {window} is open now."
        else:
            opens = f"The tuning window {window} next opens {state.next_window:%A %d %B, %H:%M}."
        self.next_window_label.setText(f"{opens}{queued}{problem}")

    def _update_controls(self) -> None:
        task = self.selected_task()
        busy = self.worker is not None or self._external_running_job() is not None
        self.tune_button.setEnabled(task is not None and not busy)
        self.tune_button.setToolTip(
            "A tuning job is running; one runs at a time." if busy else "Start tuning the selected task now."
        )
        self.queue_button.setEnabled(task is not None)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(busy and not (self.worker is not None and self.worker.stop_requested))
        adapter = self.selected_adapter()
        if adapter is None and not self.adapter_table.rowCount():
            self.verdict_label.setText("No adapter for this task yet: Tune now trains one.")
        elif adapter is None:
            self.verdict_label.setText("Select an adapter to read why the gate passed or rejected it.")
        else:
            reasons = adapter.evaluation.reasons
            measure = adapter.evaluation.measure
            scored = f" (task scored by {measure})" if measure is not None else ""
            self.verdict_label.setText(
                f"Adapter #{adapter.id} {adapter.evaluation.verdict}{scored}"
                + (f": {reasons}." if reasons else ".")
            )
        self.promote_button.setEnabled(adapter is not None and adapter.status != "active")
        self.rollback_button.setEnabled(task is not None and task.active_adapter_id is not None)
        job = self.selected_job()
        self.cancel_selected_button.setEnabled(job is not None and job.status in ("queued", "running"))
        example = self.selected_example()
        self.leave_out_button.setEnabled(example is not None and example.included)
        self.put_back_button.setEnabled(example is not None and not example.included)
        source_chosen = task is not None and self.source_filter.currentText() != ALL_SOURCES
        self.leave_out_source_button.setEnabled(source_chosen)
        self.put_back_source_button.setEnabled(source_chosen)

    # Dataset ------------------------------------------------------------------------------------------

    def load_examples(self) -> None:
        """Read the selected task's examples as its next build would take them (``datasets show``)."""
        self._dataset_generation += 1
        generation = self._dataset_generation
        task = self.selected_task()
        if task is None:
            self.examples = []
            self._show_examples()
            self.dataset_shown.emit()
            return

        def read() -> list[DatasetExample]:
            from engine.tuning.datasets import dataset_examples

            return dataset_examples(thread_store(), task.id)

        def shown(examples: list[DatasetExample]) -> None:
            if generation == self._dataset_generation:
                self.examples = examples
                self._show_examples()
                self.dataset_shown.emit()

        run_in_background(read, shown, self.context.notify_error)

    def shown_examples(self) -> list[DatasetExample]:
        """The examples the tab lists now: all or only the kept ones, of every source or the chosen one."""
        source = self.source_filter.currentText()
        return [
            example
            for example in self.examples
            if (example.included or self.show_left_out_check.isChecked())
            and source in (ALL_SOURCES, example.source)
        ]

    def _show_examples(self) -> None:
        selected = self.selected_example()
        listed = self.shown_examples()
        self.example_table.setRowCount(len(listed))
        for row, example in enumerate(listed):
            cells = (
                "in" if example.included else "out",
                _example_name(example),
                example.source,
                example.reason,
                " ".join(example.question.split())[:SHOWN_QUESTION_CHARACTERS],
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, (example.turn_id, example.escalation_id))
                if column == DATASET_COLUMNS.index("Reason"):
                    item.setToolTip(example.reason)
                elif column == DATASET_COLUMNS.index("Question"):
                    item.setToolTip(example.question)
                self.example_table.setItem(row, column, item)
            if selected is not None and _same_example(selected, example):
                self.example_table.selectRow(row)
        self._update_controls()

    def selected_example(self) -> DatasetExample | None:
        items = self.example_table.selectedItems()
        if not items:
            return None
        turn_id, escalation_id = items[0].data(Qt.ItemDataRole.UserRole)
        return next(
            (e for e in self.examples if (e.turn_id, e.escalation_id) == (turn_id, escalation_id)), None
        )

    def select_example(self, turn_id: int | None, escalation_id: int | None = None) -> None:
        for row in range(self.example_table.rowCount()):
            if self.example_table.item(row, 0).data(Qt.ItemDataRole.UserRole) == (turn_id, escalation_id):
                self.example_table.selectRow(row)

    def _on_choose_example_clicked(self, included: bool) -> None:
        example, task = self.selected_example(), self.selected_task()
        if example is None or task is None:
            return
        if example.escalation_id is not None:
            self.choose(task.id, included, escalation_id=example.escalation_id)
        else:
            self.choose(task.id, included, turn_id=example.turn_id)

    def _on_choose_source_clicked(self, included: bool) -> None:
        task, source = self.selected_task(), self.source_filter.currentText()
        if task is not None and source != ALL_SOURCES:
            self.choose(task.id, included, source=source)

    def choose(
        self,
        task_id: int,
        included: bool,
        turn_id: int | None = None,
        escalation_id: int | None = None,
        source: str | None = None,
    ) -> None:
        """Keep or leave out examples in every later build of the task's dataset, as ``understudy
        datasets include/exclude`` does, then list the examples again."""

        def run() -> None:
            from engine.tuning.datasets import choose_examples

            choose_examples(
                thread_store(), task_id, included, turn_id=turn_id, escalation_id=escalation_id, source=source
            )

        def done(_nothing) -> None:
            which = (
                f"Turn {turn_id}" if turn_id is not None
                else f"Escalation #{escalation_id}" if escalation_id is not None
                else f"The examples from source '{source}'"
            )  # fmt: skip
            if included and source is not None:
                news = f"{which} go back to the dataset's rules for the next build."
            elif included:
                news = f"{which} will be kept in the next build; Leave out takes it back out."
            else:
                undo = "Put back this source" if source is not None else "Put back"
                news = f"{which} will be left out of the next build; {undo} returns it."
            self.context.notify_info(news)
            self.load_examples()

        run_in_background(run, done, self.context.notify_error)

    # Last night ---------------------------------------------------------------------------------------

    def check_last_night(self) -> None:
        """Tell once what the jobs that ended since the tuning window last opened came to."""

        def read() -> LastNight:
            from engine.errors import TuningError
            from engine.tuning.overview import last_night
            from engine.tuning.scheduler import load_schedule

            try:
                schedule = load_schedule()
            except TuningError:
                schedule = ScheduleSettings()  # the Schedule tab says what is wrong with the file
            return last_night(thread_store(), datetime.now().astimezone(), schedule)

        def shown(night: LastNight) -> None:
            outcomes = night.served + night.rejected + night.failed
            if not outcomes:
                self.night_checked.emit(None)
                return
            key = f"{night.since.isoformat()} #{max(outcome.job_id for outcome in outcomes)}"
            state = window_state()
            if state.value(NIGHT_SHOWN_KEY) == key:
                self.night_checked.emit(None)
                return
            state.setValue(NIGHT_SHOWN_KEY, key)
            message = night_summary(night)
            self.night_banner.setText(message)
            self.night_panel.show()
            self.context.notify_info(message)
            self.night_checked.emit(message)

        run_in_background(read, shown, self.context.notify_error)

    def _on_dismiss_night_clicked(self) -> None:
        self.night_panel.hide()

    # Tuning ---------------------------------------------------------------------------------------------

    def tune_now(self) -> None:
        """Start ``understudy tune --task ID --now --json`` for the selected task in a worker process."""
        task = self.selected_task()
        if task is None or self.worker is not None:
            return
        arguments = ["tune", "--task", str(task.id)]
        if task.dataset_file and Path(task.dataset_file).exists():
            arguments += ["--dataset", task.dataset_file]
        # After a cancel, training continues from its last checkpoint (a fresh start if there is none).
        resume = task.last_job is not None and task.last_job.status == "cancelled"
        if resume:
            arguments.append("--resume")
        arguments += [*self._training_options(), "--now", "--json"]
        self._start_worker(arguments, task.id)
        doing = "Resuming" if resume else "Starting"
        self.stage_label.setText(f"{doing} tuning #{task.id} {task.label}…")

    def _training_options(self) -> list[str]:
        options = []
        if self.train_steps is not None:
            options += ["--steps", str(self.train_steps)]
        if self.base_model is not None:
            options += ["--base", self.base_model]
        return options

    def run_due(self) -> None:
        """The timer's tick: start the tuning worker (``tune run-due``) when nothing runs and either a job
        is queued or, inside the nightly window, a task has enough new examples to be queued."""
        if self.worker is not None:
            return

        def queued() -> bool:
            from datetime import datetime

            from engine.tuning import jobs
            from engine.tuning.planner import plan_due_jobs
            from engine.tuning.scheduler import load_schedule

            store = thread_store()
            if jobs.running(store):
                return False
            if jobs.next_queued(store) is not None:
                return True
            plan = plan_due_jobs(store, datetime.now().astimezone(), load_schedule())
            return any(planned.queued for planned in plan)

        def start(any_queued: bool) -> None:
            if any_queued and self.worker is None:
                self._start_worker(["tune", "run-due", "--json"], None)

        run_in_background(queued, start, self.context.notify_error)

    def _start_worker(self, arguments: list[str], task_id: int | None) -> None:
        self.worker = QtTuneProcess(arguments, self.worker_command, self)
        self._worker_runs_due = "run-due" in arguments
        self.worker.event.connect(self._on_event)
        self.worker.ended.connect(self._on_ended)
        self._worker_task_id = task_id
        self.loss_points = []
        self._history_generation += 1  # a history being read is now out of date
        if task_id is not None:
            self.loss_chart.set_series([])
            self.progress_bar.setValue(0)
            self.speed_label.setText("")
            self.details_label.setText("")
        self.worker.start()
        self._update_controls()

    def cancel_job(self) -> None:
        """Stop the running job between two training steps (it is recorded as cancelled)."""
        if self.worker is not None:
            self.worker.stop()
            self.stage_label.setText("Stopping after the current step…")
            self._update_controls()
            return
        running = self._external_running_job()
        if running is not None:
            self._cancel_in_background(running.id)

    def _on_cancel_selected_clicked(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        if self.worker is not None and job.id == self.worker.job_id:
            self.cancel_job()
        else:
            self._cancel_in_background(job.id)

    def _cancel_in_background(self, job_id: int) -> None:
        def cancel() -> Job:
            from engine.tuning import jobs

            return jobs.cancel(thread_store(), job_id)

        def done(job: Job) -> None:
            if job.status == "running":
                self.context.notify_info(f"Asked job #{job_id} to stop; it stops after the current step.")
            else:
                self.context.notify_info(f"Job #{job_id} is {job.status}.")
            self.refresh()

        run_in_background(cancel, done, self.context.notify_error)

    def _on_event(self, event: JobEvent) -> None:
        """Route the worker's event to its widget; the words are the renderer's."""
        if isinstance(event, DatasetBuilt) and self._worker_task_id is None:
            self._worker_task_id = event.task_id  # a queued job run by the timer
            self.loss_chart.set_series([])
        progress = progress_of(event)
        if progress is not None:
            self.progress_bar.setValue(round(progress * PROGRESS_STEPS))
        line = describe(event)
        match event:
            case StageStarted():
                if not (self.worker is not None and self.worker.stop_requested):
                    self.stage_label.setText(f"Job #{event.job_id}{self._worker_task_name()}: {line}")
            case TrainingStep():
                self.loss_points.append((event.step, event.loss))
                self.loss_chart.set_series(self.loss_points)
                self.progress_bar.setFormat(f"%p% · step {event.step} of {event.total_steps}")
                self.speed_label.setText(line)
            case Trained():
                self.progress_bar.resetFormat()
                self.speed_label.setText(line)
            case JobWarning():
                self.context.notify_info(line)
            case _ if isinstance(event, SPEED_LINE_EVENTS):
                self.speed_label.setText(line)
            case _ if isinstance(event, DETAILS_LINE_EVENTS):
                self.details_label.setText(line)

    def _worker_task_name(self) -> str:
        task = None if self.state is None else self.state.task(self._worker_task_id)
        return "" if task is None else f" (#{task.id} {task.label})"

    def _on_ended(self, outcome: JobOutcome) -> None:
        worker, self.worker = self.worker, None
        self._worker_task_id = None
        if self._worker_runs_due and outcome.status != "waiting":
            self.check_last_night()
        self._worker_runs_due = False
        if worker is not None:
            worker.deleteLater()
        self.progress_bar.resetFormat()
        if outcome.status == "waiting":
            self.refresh()
            return
        job = f"Tuning job #{outcome.job_id}" if outcome.job_id is not None else "The tuning job"
        if outcome.status == "succeeded":
            message = describe(outcome.ending) if isinstance(outcome.ending, JobDone) else f"{job} finished."
            self.stage_label.setText(message)
            self.context.notify_info(message)
            if outcome.result is not None and outcome.result.promoted:
                self.adapters_changed.emit(outcome.result.task_id)
        elif outcome.status == "cancelled":
            message = f"{job} was cancelled; Tune now continues its training from the last checkpoint."
            self.stage_label.setText(message)
            self.context.notify_info(message)
        else:
            self.stage_label.setText(f"{job} failed.")
            self.details_label.setText(outcome.message)
            self.context.notify_error(describe(JobFailed(outcome.message, job_id=outcome.job_id)))
        self.refresh(then=lambda: self.job_finished.emit(outcome))

    def queue_tonight(self) -> None:
        """Queue the selected task for the nightly window (what ``understudy tune --task ID`` does)."""
        task = self.selected_task()
        if task is None:
            return
        dataset_file = task.dataset_file if task.dataset_file and Path(task.dataset_file).exists() else None
        train = {"max_steps": self.train_steps} if self.train_steps is not None else {}

        def queue() -> Job:
            from engine.tuning import jobs
            from engine.tuning.pipeline import TuneRequest

            request = TuneRequest(
                task=task.id,
                dataset_file=dataset_file and Path(dataset_file),
                base=self.base_model,
                train=train,
            )
            request.check()
            return jobs.create(thread_store(), jobs.KIND_TUNE, request.as_args())

        def queued(job: Job) -> None:
            if self.state is not None and self.state.window_open and self.run_due_timer.isActive():
                minutes = max(1, self.run_due_timer.interval() // 60_000)
                when = f"the window is open, so it starts at the app's next check (within {minutes} minutes)"
            elif self.state is not None:
                when = f"it runs when the window opens, {self.state.next_window:%A %H:%M}"
            else:
                when = "it runs in the nightly window"
            self.context.notify_info(f"Job #{job.id} for task #{task.id} is queued; {when}.")
            self.refresh()

        run_in_background(queue, queued, self.context.notify_error)

    def _on_add_dataset_clicked(self) -> None:
        path, _chosen = QFileDialog.getOpenFileName(
            self, "Add a dataset file", str(Path.home()), "Chat records (*.jsonl);;All files (*)"
        )
        if path:
            self.add_dataset(Path(path))

    def add_dataset(self, path: Path) -> None:
        """Make a task of a JSONL file of chat records (named after the file) and build its dataset."""
        path = Path(path)

        def build() -> tuple[int, int, int]:
            from engine.tuning.datasets import build_from_jsonl, named_task

            store = thread_store()
            task_id = named_task(store, path.stem.replace("_", " "), source="dataset")
            dataset = build_from_jsonl(store, path, task_id=task_id)
            return task_id, dataset.n_train, dataset.n_val

        def built(result: tuple[int, int, int]) -> None:
            task_id, n_train, n_val = result
            self.context.notify_info(
                f"{path.name} is task #{task_id}: {n_train} training and {n_val} validation examples. "
                "Press Tune now to train it."
            )
            self.refresh(then=lambda: self.select_task(task_id))

        run_in_background(build, built, self.context.notify_error)

    # Promote and roll back ----------------------------------------------------------------------------

    def _on_promote_clicked(self) -> None:
        adapter = self.selected_adapter()
        if adapter is None:
            return
        force = False
        if not adapter.gate_passed:
            reasons = adapter.evaluation.reasons
            answer = QMessageBox.question(
                self,
                f"Promote adapter #{adapter.id} anyway?",
                f"Adapter #{adapter.id} did not pass the evaluation gate"
                + (f":\n\n{reasons}" if reasons else " (it was never evaluated).")
                + "\n\nServe its task with it anyway?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
            force = True
        self.promote(adapter.id, force=force)

    def promote(self, adapter_id: int, force: bool = False) -> None:
        """Make ``adapter_id`` serve its task (``force``: even though it failed the gate)."""

        def run() -> Adapter:
            from engine.tuning import adapters

            return adapters.promote(thread_store(), adapter_id, force=force)

        def done(adapter: Adapter) -> None:
            self.context.notify_info(f"Adapter #{adapter.id} now serves task #{adapter.task_id}.")
            self.adapters_changed.emit(adapter.task_id)
            self.refresh()

        run_in_background(run, done, self.context.notify_error)

    def _on_rollback_clicked(self) -> None:
        task = self.selected_task()
        if task is not None:
            self.rollback(task.id)

    def rollback(self, task_id: int) -> None:
        """Retire the task's active adapter; the one before it (or the base model) serves again."""

        def run() -> Adapter | None:
            from engine.tuning import adapters

            return adapters.rollback(thread_store(), task_id)

        def done(now_active: Adapter | None) -> None:
            if now_active is None:
                self.context.notify_info(f"Task #{task_id} is back on its base model.")
            else:
                self.context.notify_info(f"Task #{task_id} is back on adapter #{now_active.id}.")
            self.adapters_changed.emit(task_id)
            self.refresh()

        run_in_background(run, done, self.context.notify_error)

    # Schedule -----------------------------------------------------------------------------------------

    def save_schedule(self) -> None:
        """Save the window and the conditions shown (validated by the engine) in the background."""
        changes = {
            "window_start": self.window_start_edit.time().toString("HH:mm"),
            "window_end": self.window_end_edit.time().toString("HH:mm"),
            "require_idle": self.idle_check.isChecked(),
            "require_ac_power": self.ac_check.isChecked(),
        }

        def save() -> ScheduleSettings:
            from engine.tuning.scheduler import update_schedule

            # A broken file is replaced by what the user chose.
            return update_schedule(**changes)

        def saved(schedule: ScheduleSettings) -> None:
            self.context.notify_info(
                f"Tuning window {schedule.window_start}-{schedule.window_end} saved"
                f"{', waits for idle' if schedule.require_idle else ''}"
                f"{', waits for AC power' if schedule.require_ac_power else ''}."
            )
            self.refresh(then=lambda: self.schedule_saved.emit(schedule))

        run_in_background(save, saved, self.context.notify_error)

    # Closing --------------------------------------------------------------------------------------------

    def shut_down(self) -> None:
        """The window is closing: stop a running job (recorded as cancelled; Tune now continues it)."""
        self.run_due_timer.stop()
        if self.worker is not None:
            self.worker.stop_and_wait(SHUTDOWN_WAIT_MS)


def _local_time(utc_text: str) -> str:
    """A stored UTC time as the user's clock shows it."""
    return f"{datetime.fromisoformat(utc_text).astimezone():%Y-%m-%d %H:%M}"


def _example_name(example: DatasetExample) -> str:
    if example.escalation_id is not None:
        return f"escalation #{example.escalation_id}"
    return f"turn {example.turn_id}"


def _same_example(first: DatasetExample, second: DatasetExample) -> bool:
    return (first.turn_id, first.escalation_id) == (second.turn_id, second.escalation_id)


def scrub_line(redaction: dict | None) -> str:
    """What scrubbing did to the newest dataset, so the user knows no real person is trained on."""
    if redaction is None:
        return (
            "What scrubbing replaces (names, emails, secrets) is summarised here after the dataset's "
            "first build: Tune now or Tune tonight builds it."
        )
    examples, changed = redaction.get("examples", 0), redaction.get("examples_changed", 0)
    details = [
        f"{count} {DETAIL_NAMES.get(kind, (kind.lower(), kind.lower()))[count != 1]}"
        for kind, count in (redaction.get("surrogates") or {}).items()
        if count
    ]
    secrets = sum((redaction.get("secrets_removed") or {}).values())
    if details:
        line = (
            f"Personal details replaced with realistic stand-ins: {', '.join(details)} in {changed} of "
            f"{examples} examples"
        )
    else:
        line = f"No personal details to replace in the {examples} examples"
    line += f"; {secrets} secret{'s' if secrets != 1 else ''} removed" if secrets else ""
    dropped = redaction.get("dropped", 0)
    if dropped:
        line += f"; {dropped} left out because they could not be checked"
    return line + "."


def night_summary(night: LastNight) -> str:
    """The morning's one line: which tasks are now answered here, which were not and why."""
    parts = [f"'{outcome.label}' is now answered on this computer" for outcome in night.served]
    parts += [f"'{outcome.label}' was not promoted: {outcome.why}" for outcome in night.rejected]
    parts += [f"'{outcome.label}' did not finish ({outcome.why})" for outcome in night.failed]
    line = "Overnight: " + "; ".join(parts) + "."
    if night.rejected:
        line += " The Evaluations tab shows each adapter's figures; Promote serves one anyway."
    if night.failed:
        line += " Tune now tries again."
    return line
