"""The window shell: a sidebar of sections, the current section, notifications and a status bar.

Sections are plain widgets with a ``title``; later issues add Tasks, Escalations and Tuning with
``add_section`` without touching the others.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext, window_state
from app.qt.widgets.notifications import QtNotificationBar
from app.qt.workers import job_pool
from engine import paths

CLOSE_WAIT_MS = 10_000


class QtMainWindow(QMainWindow):
    def __init__(self, context: AppContext):
        super().__init__()
        self.context = context
        self.setWindowTitle("Understudy")
        icon = paths.shipped_file("resources/understudy.svg")
        if icon.exists():
            self.setWindowIcon(QIcon(str(icon)))

        self.section_nav = QListWidget()
        self.section_nav.setObjectName("sectionNav")
        self.section_nav.setAccessibleName("Sections")
        self.section_nav.setFixedWidth(140)
        self.sections = QStackedWidget()
        self.section_nav.currentRowChanged.connect(self.sections.setCurrentIndex)
        self.notifications = QtNotificationBar()
        context.notification.connect(self._on_notification)
        context.actionable_notification.connect(
            lambda message, action_text, action: self.notifications.show_message(
                "info", message, action_text, action
            )
        )

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.setSpacing(0)
        content_layout.addWidget(self.notifications)
        content_layout.addWidget(self.sections, 1)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.section_nav)
        layout.addWidget(content, 1)
        self.setCentralWidget(central)

        self.model_status = QLabel()
        self.model_status.setAccessibleName("Model status")
        self.threads_status = QLabel()
        self.threads_status.setAccessibleName("Threads")
        self.speed_status = QLabel()
        self.speed_status.setAccessibleName("Speed of the last answer")
        self.locality_status = QLabel("● Local")
        self.locality_status.setAccessibleName("Where answers are computed")
        self.locality_status.setToolTip("Answers are computed on this machine; nothing leaves it.")
        for label in (self.model_status, self.threads_status, self.speed_status, self.locality_status):
            self.statusBar().addPermanentWidget(label)

        QShortcut(QKeySequence("Ctrl+,"), self, activated=lambda: self.show_section("Settings"))
        state = window_state()
        self.resize(state.value("size", QSize(1100, 760)))
        position = state.value("position")
        if position is not None:
            self.move(position)

    def add_section(self, section: QWidget) -> None:
        item = QListWidgetItem(section.title)
        item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{section.title} section")
        self.section_nav.addItem(item)
        self.sections.addWidget(section)
        if self.section_nav.currentRow() < 0:
            self.section_nav.setCurrentRow(0)

    def section(self, title: str) -> QWidget | None:
        for index in range(self.sections.count()):
            if self.sections.widget(index).title == title:
                return self.sections.widget(index)
        return None

    def show_section(self, title: str) -> None:
        for index in range(self.sections.count()):
            if self.sections.widget(index).title == title:
                self.section_nav.setCurrentRow(index)

    def show_speed(self, model_id: str, threads: int | None, tokens_per_second: float | None) -> None:
        self.model_status.setText(model_id)
        if threads:
            self.threads_status.setText(f"{threads} threads")
        if tokens_per_second:
            self.speed_status.setText(f"{tokens_per_second:.1f} tok/s")

    def show_locality(self, cloud: bool) -> None:
        """The status bar's marker of where the last answer was computed."""
        if cloud:
            self.locality_status.setText("☁ Cloud")
            self.locality_status.setToolTip("The last answer came from a cloud model, with your consent.")
        else:
            self.locality_status.setText("● Local")
            self.locality_status.setToolTip("Answers are computed on this machine; nothing leaves it.")

    def _on_notification(self, kind: str, message: str) -> None:
        self.notifications.show_message(kind, message)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop any answer being written, let workers finish, then remember the geometry."""
        for index in range(self.sections.count()):
            stop = getattr(self.sections.widget(index), "shut_down", None)
            if stop is not None:
                stop()
        job_pool().waitForDone(CLOSE_WAIT_MS)
        state = window_state()
        state.setValue("size", self.size())
        state.setValue("position", self.pos())
        super().closeEvent(event)
