"""Non-blocking notifications: a bar above the current section, never a modal dialog.

Errors carry the engine's own message (which says what to do); an optional action (such as Undo)
sits beside it. The bar hides itself after a while; errors stay longer than news.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

INFO_SECONDS = 6
ERROR_SECONDS = 20


class QtNotificationBar(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("notificationBar")
        self.setAccessibleName("Notification")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.action_button.setAccessibleName("Notification action")
        self.action_button.hide()
        self.action_button.clicked.connect(self._on_action)
        close = QToolButton()
        close.setText("✕")
        close.setAccessibleName("Dismiss notification")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        layout.addWidget(self.message, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(close)
        self._action: Callable[[], None] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.kind = ""
        self.hide()

    def show_message(
        self,
        kind: str,
        text: str,
        action_text: str | None = None,
        action: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        prefix = "⚠ " if kind == "error" else ""
        self.message.setText(prefix + text)
        self.message.setAccessibleDescription(text)
        self._action = action
        self.action_button.setVisible(action is not None)
        self.action_button.setText(action_text or "")
        self.show()
        self._timer.start((ERROR_SECONDS if kind == "error" else INFO_SECONDS) * 1000)

    def text(self) -> str:
        return self.message.accessibleDescription()

    def _on_action(self) -> None:
        action, self._action = self._action, None
        self.hide()
        if action is not None:
            action()
