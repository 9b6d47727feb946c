"""The Insights section: the user's own tasks, where their requests went, what answering locally saved,
and how much of each task a local model can take over (the replaceability report of ``engine.report``).

Every figure comes from ``build_report`` in a worker, so the section shows exactly what `understudy
report` prints. Discovery and pins also run in workers; ``tasks_changed`` tells the other views of the
tasks (Tuning) to refresh.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext
from app.qt.widgets.charts import QtTimeSeriesChart
from app.qt.widgets.formatting import money, percent
from app.qt.widgets.tables import read_only_table
from app.qt.workers import run_in_background, thread_store

COLUMNS = (
    "Task", "Requests", "Specialist", "Generalist", "Cloud", "Satisfied", "Saved", "Spent", "Replaceable",
    "Pin",
)  # fmt: skip
PIN_COLUMN = COLUMNS.index("Pin")
TASK_COLUMN_MIN_WIDTH = 150  # labels wrap down to this width; below it the table scrolls instead
CELL_PADDING = 20  # the themes pad a cell 8 px on each side, which Qt's row heights leave out
PIN_CHOICES = (
    ("auto", "Auto", "The router decides where each request goes."),
    ("always_local", "Always local", "Never proposes the cloud; you can still ask for it by hand."),
    (
        "always_ask_cloud",
        "Always ask cloud",
        "Always asks for the cloud: proposes it for every request, each one waiting for your approval.",
    ),
    ("never_cloud", "Never cloud", "Nothing of this task may go to the cloud, not even when you ask."),
)
EXPORT_KINDS = {"markdown": ("Markdown (*.md)", ".md"), "html": ("HTML (*.html)", ".html")}


class QtInsightsSection(QWidget):
    """Tasks found in the log with their figures and pins, two charts by day, discovery and export."""

    title = "Insights"
    refreshed = Signal()
    discovered = Signal(object)  # engine.discovery.DiscoveryResult
    exported = Signal(str)  # the path written
    tasks_changed = Signal()  # after a discovery or a pin: other views of the tasks refresh

    def __init__(self, context: AppContext, parent=None):
        super().__init__(parent)
        self.context = context
        self.tasks: dict[int | None, object] = {}  # task id -> TaskReport, as shown
        self._generation = 0  # the latest refresh; older answers are dropped
        self._wanted_id: int | None = None

        self.summary = QLabel("Reading the log…")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Summary")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.discover_button = QPushButton("Discover tasks")
        self.discover_button.setProperty("primary", "true")
        self.discover_button.setAccessibleName("Discover tasks in the log")
        self.discover_button.setToolTip("Group your requests into tasks (re-run any time; task ids stay).")
        self.discover_button.clicked.connect(self.discover)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumWidth(120)
        self.busy.setAccessibleName("Discovering tasks")
        self.busy.hide()
        self.busy_label = QLabel()
        self.busy_label.setObjectName("messageFooter")
        self.busy_label.hide()
        self.markdown_button = QPushButton("Export Markdown…")
        self.markdown_button.setAccessibleName("Export the report as Markdown")
        self.markdown_button.clicked.connect(lambda: self._on_export("markdown"))
        self.html_button = QPushButton("Export HTML…")
        self.html_button.setAccessibleName("Export the report as HTML")
        self.html_button.clicked.connect(lambda: self._on_export("html"))
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.discover_button)
        buttons.addWidget(self.busy)
        buttons.addWidget(self.busy_label)
        buttons.addStretch(1)
        buttons.addWidget(self.markdown_button)
        buttons.addWidget(self.html_button)

        self.table = read_only_table(COLUMNS, "Tasks", fit_columns=False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        for column, tip in (
            (COLUMNS.index("Requests"), "Requests of this task, and its share of all requests."),
            (COLUMNS.index("Specialist"), "Answered by this task's local specialist."),
            (COLUMNS.index("Generalist"), "Answered by the local generalist model."),
            (COLUMNS.index("Cloud"), "Answered by the cloud model, with your consent."),
            (COLUMNS.index("Satisfied"), "Satisfaction: thumbs up / all thumbs given."),
            (
                COLUMNS.index("Saved"),
                "What the locally answered requests would have cost on the cloud model.",
            ),
            (COLUMNS.index("Spent"), "What this task's approved cloud requests cost."),
            (
                COLUMNS.index("Replaceable"),
                "Of the requests Understudy served, the share a local model answered with no thumbs "
                "down, no escalation and no switch to the cloud.",
            ),
        ):
            self.table.horizontalHeaderItem(column).setToolTip(tip)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.table.viewport().installEventFilter(self)
        header.sectionResized.connect(lambda column, _old, _new: column and self._fit_task_column())

        self.examples = QTextBrowser()
        self.examples.setAccessibleName("Selected task's examples")
        self.examples.setMinimumWidth(200)
        self.share_chart = QtTimeSeriesChart(
            "Answered locally, by day", "line", percent, x_format=lambda day: str(day)[5:], y_max=1.0,
            empty_text="No requests answered yet",
        )  # fmt: skip
        self.spend_chart = QtTimeSeriesChart(
            "Cloud spend by day", "bars", lambda value: f"${value:.2g}", x_format=lambda day: str(day)[5:],
            empty_text="Nothing spent on the cloud",
        )  # fmt: skip
        lower = QWidget()
        lower_layout = QHBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.examples, 1)
        lower_layout.addWidget(self.share_chart, 1)
        lower_layout.addWidget(self.spend_chart, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(lower)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)

    # Loading ----------------------------------------------------------------------------------

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def eventFilter(self, watched, event) -> bool:
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_task_column()
        return super().eventFilter(watched, event)

    def _fit_task_column(self) -> None:
        """The task column takes the width the figures leave (never less than its minimum), and a
        label too long for it wraps onto a second line."""
        header = self.table.horizontalHeader()
        figures = sum(header.sectionSize(column) for column in range(1, len(COLUMNS)))
        header.resizeSection(0, max(TASK_COLUMN_MIN_WIDTH, self.table.viewport().width() - figures))
        self.table.resizeRowsToContents()
        metrics = self.table.fontMetrics()
        room = header.sectionSize(0) - CELL_PADDING
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and metrics.horizontalAdvance(item.text()) > room:
                two_lines = 2 * metrics.lineSpacing() + CELL_PADDING // 2
                self.table.setRowHeight(row, max(self.table.rowHeight(row), two_lines))

    def refresh(self) -> None:
        self._generation += 1
        generation = self._generation

        def read():
            from engine.report import build_report

            return build_report(thread_store())

        def shown(report) -> None:
            if generation == self._generation:
                self._show(report)

        run_in_background(read, shown, self.context.notify_error)

    def _show(self, report) -> None:
        self._show_summary(report)
        had_selection = self._wanted_id is not None or bool(self.table.selectedItems())
        selected = self._wanted_id if self._wanted_id is not None else self.selected_id()
        self._wanted_id = None
        self.tasks = {task.task_id: task for task in report.tasks}
        self.table.clearSelection()
        self.table.setRowCount(len(report.tasks))
        for row, task in enumerate(report.tasks):
            self._fill_row(row, task)
        rows = [row for row, task in enumerate(report.tasks) if had_selection and task.task_id == selected]
        if rows or report.tasks:
            self.table.selectRow(rows[0] if rows else 0)
        self._on_selection_changed()
        self.share_chart.set_series(
            [(day.day, day.local_share) for day in report.days if day.local_share is not None]
        )
        self.spend_chart.set_series([(day.day, day.spend_usd) for day in report.days])
        self.refreshed.emit()

    def _show_summary(self, report) -> None:
        totals = report.totals
        if totals["requests"] == 0:
            self.summary.setText("Nothing logged yet. Chat for a while, then Discover tasks.")
            return
        provider = report.provider
        tasks = (
            f"in {totals['tasks']} tasks"
            if totals["tasks"]
            else "not grouped into tasks yet (Discover tasks)"
        )
        imported = f" ({totals['imported']} imported)" if totals["imported"] else ""
        if provider is None:
            saved = "savings not priced: give the cloud provider its prices in Escalations → Provider…"
        else:
            saved = f"local answers saved {money(totals['saved_usd'])} vs {provider['model']}"
        self.summary.setText(
            f"<b>{totals['requests']}</b> requests{imported} {tasks} · <b>{percent(totals['local_share'])}"
            f"</b> answered locally · {html.escape(saved)} · cloud spend <b>{money(totals['spend_usd'])}</b>"
            f" · <b>{percent(totals['replaceability'])}</b> replaceable by a local model"
        )

    def _fill_row(self, row: int, task) -> None:
        label = task.label if task.task_id is None else f"#{task.task_id} {task.label}"
        cells = (
            label,
            f"{task.requests} ({percent(task.share)})",
            str(task.specialist),
            str(task.generalist),
            str(task.cloud),
            percent(task.satisfaction),
            money(task.saved_usd),
            money(task.spend_usd),
            percent(task.replaceability),
        )
        tips = (
            f"Keywords: {', '.join(task.keywords)}" if task.keywords else "Requests no task holds (yet).",
            f"{task.imported} imported from earlier history" if task.imported else "",
            f"Specialist adapter #{task.adapter_id} is active" if task.adapter_id else "No specialist yet",
            "",
            f"{task.proposed_cloud} proposed for the cloud",
            f"{task.thumbs_up} thumbs up, {task.thumbs_down} thumbs down",
            f"{task.local_prompt_tokens} + {task.local_completion_tokens} tokens answered locally",
            "",
            f"{task.replaceable} of {task.served} served requests",
        )
        for column, (text, tip) in enumerate(zip(cells, tips, strict=True)):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, task.task_id)
            if tip:
                item.setToolTip(tip)
            if column:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, item)
        self.table.setItem(row, PIN_COLUMN, QTableWidgetItem())
        if task.task_id is None:
            self.table.setCellWidget(row, PIN_COLUMN, None)
            return
        pin = QComboBox()
        pin.setAccessibleName(f"Pin for task {task.task_id} {task.label}")
        for index, (value, text, tip) in enumerate(PIN_CHOICES):
            pin.addItem(text, value)
            pin.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        pin.setCurrentIndex(max(0, pin.findData(task.pin)))
        pin.setToolTip(dict((value, tip) for value, _, tip in PIN_CHOICES).get(task.pin, ""))
        pin.currentIndexChanged.connect(
            lambda _index, task_id=task.task_id, combo=pin: self.set_pin(task_id, combo.currentData())
        )
        self.table.setCellWidget(row, PIN_COLUMN, pin)

    def selected_id(self) -> int | None:
        items = self.table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def pin_box(self, task_id: int) -> QComboBox | None:
        """The pin chooser of ``task_id``'s row (for tests and accessibility tools)."""
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == task_id:
                return self.table.cellWidget(row, PIN_COLUMN)
        return None

    def _on_selection_changed(self) -> None:
        items = self.table.selectedItems()
        task = self.tasks.get(self.selected_id()) if items else None
        if task is None:
            self.examples.setHtml(
                "<p>Select a task to see its examples.</p>"
                if self.tasks
                else "<p>No tasks yet: once there are a few dozen requests, Discover tasks groups them.</p>"
            )
            return
        title = html.escape(task.label if task.task_id is None else f"#{task.task_id} {task.label}")
        keywords = html.escape(", ".join(task.keywords)) or "none"
        examples = "".join(f"<li>{html.escape(example)}</li>" for example in task.examples)
        if task.task_id is None:
            about = "Requests no task holds: Discover tasks again once there are more of them."
        elif task.adapter_id:
            about = f"A local specialist (adapter #{task.adapter_id}) answers this task."
        else:
            about = "No specialist yet: the generalist answers this task."
        self.examples.setHtml(
            f"<p><b>{title}</b></p><p>Keywords: {keywords}</p><p>{html.escape(about)}</p>"
            + (f"<p>Examples:</p><ul>{examples}</ul>" if examples else "<p>No examples kept.</p>")
        )

    # Pins and discovery -----------------------------------------------------------------------

    def set_pin(self, task_id: int, pin: str) -> None:
        """Save ``pin`` for ``task_id`` in the background, then show the tasks again."""
        label = dict((value, text) for value, text, _ in PIN_CHOICES)[pin]

        def save() -> None:
            from engine.router import set_pin

            set_pin(thread_store(), task_id, pin)

        def saved(_result: object) -> None:
            self.context.notify_info(f"Task {task_id}: {label.lower()}.")
            self._wanted_id = task_id
            self.refresh()
            self.tasks_changed.emit()

        def failed(message: str) -> None:
            self.context.notify_error(message)
            self.refresh()

        run_in_background(save, saved, failed)

    def discover(self) -> None:
        """Cluster the log into tasks in the background (the first run builds the encoder, ~2 min)."""
        self.discover_button.setEnabled(False)
        self.busy.show()
        self.busy_label.setText("Discovering tasks…")
        self.busy_label.show()

        def run(report_progress):
            from engine import embeddings
            from engine.discovery import ModelNamer, discover

            if not embeddings.is_built():
                report_progress("Building the encoder (once, about two minutes)…")
            encoder = embeddings.load_encoder()
            report_progress("Discovering tasks…")
            return discover(thread_store(), encoder=encoder, namer=ModelNamer())

        def done(result) -> None:
            self._idle()
            self.context.notify_info(
                f"{result.n_clusters} tasks from {result.n_requests} requests, outliers "
                f"{result.outlier_share_after:.0%}."
            )
            self.refresh()
            self.tasks_changed.emit()
            self.discovered.emit(result)

        def failed(message: str) -> None:
            self._idle()
            self.context.notify_error(message)

        run_in_background(run, done, failed, self.busy_label.setText, with_progress=True)

    def _idle(self) -> None:
        self.discover_button.setEnabled(True)
        self.busy.hide()
        self.busy_label.hide()

    # Export -----------------------------------------------------------------------------------

    def _on_export(self, kind: str) -> None:
        name_filter, suffix = EXPORT_KINDS[kind]
        path, _chosen = QFileDialog.getSaveFileName(
            self, "Export the report", str(Path.home() / f"understudy-report{suffix}"), name_filter
        )
        if path:
            self.export(Path(path), kind)

    def export(self, path: Path, kind: str) -> None:
        """Write the report as ``kind`` ("markdown" or "html") to ``path`` in the background."""
        if kind not in EXPORT_KINDS:
            raise ValueError(f"export kind is markdown or html, not {kind!r}")
        path = Path(path)

        def write() -> None:
            from engine import files
            from engine.errors import UnderstudyError
            from engine.report import build_report, to_html, to_markdown

            render = to_markdown if kind == "markdown" else to_html
            try:
                files.write_text(path, render(build_report(thread_store())))
            except OSError as error:
                raise UnderstudyError(f"could not write {path}: {error.strerror or error}") from error

        def written(_result: object) -> None:
            self.context.notify_info(f"Report written to {path}.")
            self.exported.emit(str(path))

        run_in_background(write, written, self.context.notify_error)
