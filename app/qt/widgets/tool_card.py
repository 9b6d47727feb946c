"""Tool calls in a conversation: the card that shows one, and the approval asked on the GUI thread.

``GuiApprover`` is handed to the agent's worker thread; it asks through a queued signal and waits, so the
dialog always opens on the GUI thread.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

RESULT_PREVIEW_CHARS = 400


class QtToolCard(QFrame):
    """One tool call in the conversation: tool, arguments, result or refusal, duration."""

    def __init__(self, event, parent=None):
        super().__init__(parent)
        self.setObjectName("toolCard")
        self.setAccessibleName(f"Tool call {event.tool}")
        self.tool_event = event
        duration = f" · {event.duration_ms:.0f} ms" if event.duration_ms is not None else ""
        header = QLabel(f"🔧 {event.tool} · {event.decision} ({event.decided_by}){duration}")
        header.setObjectName("messageFooter")
        arguments = QLabel(event.arguments_json)
        arguments.setWordWrap(True)
        arguments.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        arguments.setAccessibleName("Tool arguments")
        outcome_text = event.error or (event.result_text or "")
        outcome = QLabel(
            outcome_text[:RESULT_PREVIEW_CHARS] + ("…" if len(outcome_text) > RESULT_PREVIEW_CHARS else "")
        )
        outcome.setWordWrap(True)
        outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outcome.setAccessibleName("Tool result")
        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addWidget(arguments)
        layout.addWidget(outcome)


class QtApprovalDialog(QDialog):
    """Allow once / Always for this tool / Deny, with the exact arguments shown verbatim."""

    def __init__(self, request, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Allow {request.tool}?")
        self.answer = "deny"
        question = QLabel(
            f"The model wants to run <b>{request.tool}</b> ({request.risk}): {request.description}<br>"
            "These are the exact arguments it wrote:"
        )
        question.setWordWrap(True)
        self.arguments = QPlainTextEdit(request.arguments_json)
        self.arguments.setReadOnly(True)
        self.arguments.setAccessibleName("Exact arguments")
        self.once_button = QPushButton("Allow once")
        self.once_button.setAccessibleName("Allow once")
        self.always_button = QPushButton("Always for this tool")
        self.always_button.setAccessibleName("Always allow this tool")
        self.deny_button = QPushButton("Deny")
        self.deny_button.setAccessibleName("Deny")
        self.deny_button.setDefault(True)
        for button, answer in (
            (self.once_button, "once"),
            (self.always_button, "always"),
            (self.deny_button, "deny"),
        ):
            button.clicked.connect(lambda _checked=False, answer=answer: self._choose(answer))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.deny_button, self.always_button, self.once_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(question)
        layout.addWidget(self.arguments)
        layout.addLayout(buttons)

    def _choose(self, answer: str) -> None:
        self.answer = answer
        self.accept()


class GuiApprover(QObject):
    """Called from a worker thread; asks on the GUI thread and waits for the user's answer."""

    approval_needed = Signal(object, object)  # request, _PendingAnswer
    dialog_shown = Signal(object)  # QtApprovalDialog, for tests and accessibility tools

    def __init__(self, parent_widget: QWidget):
        super().__init__()
        self.parent_widget = parent_widget
        self.approval_needed.connect(self._ask, Qt.ConnectionType.QueuedConnection)
        self._closing = False

    def __call__(self, request) -> str:
        pending = _PendingAnswer()
        if self._closing:
            return "deny"
        self.approval_needed.emit(request, pending)
        pending.done.wait()
        return pending.answer

    @Slot(object, object)
    def _ask(self, request, pending: _PendingAnswer) -> None:
        if self._closing:
            pending.set("deny")
            return
        dialog = QtApprovalDialog(request, self.parent_widget)
        dialog.finished.connect(lambda _result: pending.set(dialog.answer))
        dialog.open()
        self.dialog_shown.emit(dialog)

    def close(self) -> None:
        """The window is closing: every question still open is answered "deny"."""
        self._closing = True
        for dialog in self.parent_widget.findChildren(QtApprovalDialog):
            dialog.reject()


class _PendingAnswer:
    def __init__(self):
        self.answer = "deny"
        self.done = threading.Event()

    def set(self, answer: str) -> None:
        self.answer = answer
        self.done.set()
