"""The Chat section: conversations on the left, the conversation and the message box on the right.

Answers stream in from a ``GenerationJob``; every read and write of the log runs as a background job,
so the window stays responsive while a model loads, answers or the database is busy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext, window_state
from app.qt.widgets.tool_card import GuiApprover, QtToolCard
from app.qt.workers import GenerationJob, run_in_background, start_generation, thread_store

if TYPE_CHECKING:
    from engine.agent import TurnResult

CONVERSATION_ID_ROLE = Qt.ItemDataRole.UserRole
SEARCH_DELAY_MS = 250
RENDER_DELAY_MS = 40


def _is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Window).lightness() < 128


class QtConversationList(QWidget):
    """New, rename (double-click), delete with undo, and full-text search over every turn."""

    conversation_chosen = Signal(int)
    new_requested = Signal()

    def __init__(self, context: AppContext, parent=None):
        super().__init__(parent)
        self.context = context
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search all conversations (Ctrl+F)")
        self.search_box.setAccessibleName("Search conversations")
        self.search_box.setClearButtonEnabled(True)
        self.new_button = QPushButton("New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)
        self.conversations = QListWidget()
        self.conversations.setObjectName("conversationList")
        self.conversations.setAccessibleName("Conversations")
        self.conversations.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked)
        self.conversations.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conversations.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.conversations.itemClicked.connect(self._on_item_clicked)
        self.conversations.itemActivated.connect(self._on_item_clicked)
        self.conversations.itemChanged.connect(self._on_item_renamed)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setAccessibleName("Delete conversation")
        self.delete_button.clicked.connect(self._on_delete)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search_box)
        layout.addWidget(self.conversations, 1)
        layout.addWidget(self.delete_button)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.refresh)
        self.search_box.textChanged.connect(lambda _text: self._search_timer.start())
        self._filling = False
        self.selected_id: int | None = None

    def refresh(self) -> None:
        """Reload the list, or the search results while there is a query, in the background."""
        query = self.search_box.text().strip()
        if query:
            run_in_background(
                lambda: thread_store().search_conversations(query),
                self._show_search_results,
                self.context.notify_error,
            )
        else:
            run_in_background(
                lambda: thread_store().list_conversations(),
                self._show_conversations,
                self.context.notify_error,
            )

    def select(self, conversation_id: int | None) -> None:
        self.selected_id = conversation_id
        for row in range(self.conversations.count()):
            item = self.conversations.item(row)
            if item.data(CONVERSATION_ID_ROLE) == conversation_id:
                self.conversations.setCurrentItem(item)
                return
        self.conversations.clearSelection()

    def _show_conversations(self, conversations: list[dict]) -> None:
        self._filling = True
        self.conversations.clear()
        for conversation in conversations:
            item = QListWidgetItem(conversation["title"])
            item.setData(CONVERSATION_ID_ROLE, conversation["id"])
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            item.setToolTip(f"{conversation['turn_count']} turns · double-click to rename")
            self.conversations.addItem(item)
        self._filling = False
        self.select(self.selected_id)

    def _show_search_results(self, hits: list[dict]) -> None:
        self._filling = True
        self.conversations.clear()
        if not hits:
            item = QListWidgetItem("No turn matches.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.conversations.addItem(item)
        for hit in hits:
            item = QListWidgetItem(f"{hit['title']}\n{hit['snippet']}")
            item.setData(CONVERSATION_ID_ROLE, hit["conversation_id"])
            item.setToolTip(hit["snippet"])
            self.conversations.addItem(item)
        self._filling = False

    def _on_item_clicked(self, item: QListWidgetItem) -> None:
        conversation_id = item.data(CONVERSATION_ID_ROLE)
        if conversation_id is not None:
            self.selected_id = conversation_id
            self.conversation_chosen.emit(conversation_id)

    def _on_item_renamed(self, item: QListWidgetItem) -> None:
        if self._filling or self.search_box.text().strip():
            return
        conversation_id, title = item.data(CONVERSATION_ID_ROLE), item.text()
        run_in_background(
            lambda: thread_store().rename_conversation(conversation_id, title),
            None,
            self._on_rename_failed,
        )

    def _on_rename_failed(self, message: str) -> None:
        self.context.notify_error(message)
        self.refresh()

    def _on_delete(self) -> None:
        item = self.conversations.currentItem()
        if item is None or item.data(CONVERSATION_ID_ROLE) is None:
            return
        conversation_id, title = item.data(CONVERSATION_ID_ROLE), item.text().splitlines()[0]

        def deleted(_result: object) -> None:
            if self.selected_id == conversation_id:
                self.new_requested.emit()
            self.refresh()
            self.context.notify_with_action(
                f"Deleted “{title}”.", "Undo", lambda: self._restore(conversation_id)
            )

        run_in_background(
            lambda: thread_store().delete_conversation(conversation_id),
            deleted,
            self.context.notify_error,
        )

    def _restore(self, conversation_id: int) -> None:
        run_in_background(
            lambda: thread_store().restore_conversation(conversation_id),
            lambda _result: self.refresh(),
            self.context.notify_error,
        )


class QtAutoHeightBrowser(QTextBrowser):
    """A text browser as tall as its content, so messages stack in one scrolling column."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().contentsChanged.connect(self._fit_height)

    def _fit_height(self) -> None:
        self.document().setTextWidth(self.viewport().width())
        margins = self.contentsMargins()
        self.setFixedHeight(int(self.document().size().height()) + margins.top() + margins.bottom() + 4)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def sizeHint(self) -> QSize:
        return QSize(400, self.height())


class QtUserMessage(QFrame):
    edit_requested = Signal(int, str)  # turn id, text

    def __init__(self, text: str, turn_id: int | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("userMessage")
        self.turn_id = turn_id
        self.text = text
        label = QLabel(text)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setAccessibleName("Your message")
        self.edit_button = QToolButton()
        self.edit_button.setText("Edit")
        self.edit_button.setAccessibleName("Edit and resend this message")
        self.edit_button.clicked.connect(lambda: self.edit_requested.emit(self.turn_id, self.text))
        self.edit_button.setEnabled(turn_id is not None)
        layout = QHBoxLayout(self)
        layout.addWidget(label, 1)
        layout.addWidget(self.edit_button, 0, Qt.AlignmentFlag.AlignTop)

    def set_turn(self, turn_id: int) -> None:
        self.turn_id = turn_id
        self.edit_button.setEnabled(True)


class QtAssistantMessage(QFrame):
    """An answer rendered as Markdown, with its footer and the actions on it."""

    regenerate_requested = Signal(int)
    cloud_requested = Signal(int)
    kept_local = Signal(int)
    feedback_given = Signal(int, object)  # turn id, rating (1, -1 or None)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("assistantMessage")
        self.turn_id: int | None = None
        self.markdown = ""
        self.code_blocks: list[str] = []
        self.browser = QtAutoHeightBrowser()
        self.browser.setAccessibleName("Answer")
        self.browser.anchorClicked.connect(self._on_link)
        self.footer = QLabel()
        self.footer.setObjectName("messageFooter")
        self.footer.setAccessibleName("Answer details")
        self.copy_button = self._tool("Copy", "Copy the answer")
        self.copy_button.clicked.connect(self._on_copy)
        self.regenerate_button = self._tool("Regenerate", "Answer this again")
        self.regenerate_button.clicked.connect(lambda: self.regenerate_requested.emit(self.turn_id))
        self.ask_cloud_button = self._tool(
            "Ask the cloud", "Use the cloud instead: ask a cloud model (asks first)"
        )
        self.ask_cloud_button.clicked.connect(lambda: self.cloud_requested.emit(self.turn_id))
        self.keep_local_button = self._tool("Keep local", "Keep this local: this answer was good enough")
        self.keep_local_button.clicked.connect(lambda: self.kept_local.emit(self.turn_id))
        self.thumbs_up = self._tool("Good", "Good answer")
        self.thumbs_down = self._tool("Bad", "Bad answer")
        for button, rating in ((self.thumbs_up, 1), (self.thumbs_down, -1)):
            button.setCheckable(True)
            button.clicked.connect(lambda checked, rating=rating: self._on_rating(rating, checked))
        self.action_buttons = (
            self.copy_button,
            self.regenerate_button,
            self.ask_cloud_button,
            self.keep_local_button,
            self.thumbs_up,
            self.thumbs_down,
        )
        self.footer.setWordWrap(True)
        actions = QHBoxLayout()
        actions.addStretch(1)
        for button in self.action_buttons:
            actions.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(self.footer)
        layout.addLayout(actions)
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_DELAY_MS)
        self._render_timer.timeout.connect(self._render)
        self._set_actions_enabled(False)
        self.browser.setPlainText("…")

    def _tool(self, text: str, accessible_name: str) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setAccessibleName(accessible_name)
        button.setToolTip(accessible_name)
        return button

    def _set_actions_enabled(self, enabled: bool) -> None:
        for button in self.action_buttons:
            button.setEnabled(enabled)

    def append(self, piece: str) -> None:
        """Add streamed text; rendering is coalesced so a fast model can't flood the GUI thread."""
        self.markdown += piece
        if not self._render_timer.isActive():
            self._render_timer.start()

    def show_turn(self, turn: dict) -> None:
        """Fill in a finished turn from the log."""
        self.turn_id = turn["id"]
        self.markdown = turn["answer_text"]
        self._render()
        self.footer.setText(_footer(turn))
        self.footer.setToolTip(turn.get("route_reason") or "")
        self.thumbs_up.setChecked(turn.get("rating") == 1)
        self.thumbs_down.setChecked(turn.get("rating") == -1)
        self._set_actions_enabled(True)
        if turn["status"] == "error":
            self.browser.setPlainText(f"⚠ {turn['error']}")

    def show_failure(self, message: str) -> None:
        self._render_timer.stop()
        self.browser.setPlainText(f"⚠ {message}")
        self.footer.setText("failed: your message is back in the box below")

    def _render(self) -> None:
        # Markdown and Pygments load on the first answer, not at start-up.
        from app.qt.widgets.markdown import render_markdown

        rendered = render_markdown(self.markdown or "…", dark=_is_dark(self))
        self.code_blocks = rendered.code_blocks
        self.browser.setHtml(rendered.html)

    def _on_link(self, url: QUrl) -> None:
        from app.qt.widgets.markdown import code_block_index

        index = code_block_index(url.toString())
        if index is not None and index < len(self.code_blocks):
            QGuiApplication.clipboard().setText(self.code_blocks[index])

    def _on_copy(self) -> None:
        QGuiApplication.clipboard().setText(self.markdown)

    def _on_rating(self, rating: int, checked: bool) -> None:
        other = self.thumbs_down if rating == 1 else self.thumbs_up
        if checked:
            other.setChecked(False)
        self.feedback_given.emit(self.turn_id, rating if checked else None)


def _footer(turn: dict) -> str:
    parts = [("☁ cloud · " if turn.get("route") == "cloud" else "") + turn["model_id"]]
    if turn.get("adapter_id"):
        parts.append(f"specialist {turn['adapter_id']}")
    if turn.get("route_target"):
        task = f" for task '{turn['task_label']}'" if turn.get("task_label") else ""
        parts.append(f"routed to the {turn['route_target']}{task}")
    parts.append(f"{turn.get('prompt_tokens') or 0} + {turn.get('completion_tokens') or 0} tokens")
    if turn.get("ttft_ms"):
        parts.append(f"ttft {turn['ttft_ms']:.0f} ms")
    if turn.get("decode_tok_s"):
        parts.append(f"{turn['decode_tok_s']:.1f} tok/s")
    if turn["status"] == "cancelled":
        parts.append("stopped")
    if turn.get("finish_reason") == "length":
        parts.append("cut at the token limit")
    if turn.get("trimmed_messages"):
        parts.append(f"{turn['trimmed_messages']} oldest message(s) left out to fit")
    return " · ".join(parts)


def _turn_from_result(result: TurnResult, user_text: str) -> dict:
    completion = result.completion
    route = result.route
    return {
        "id": result.turn_id,
        "model_id": result.model_id,
        "route": "local",
        "adapter_id": result.adapter_id,
        "route_target": None if route is None else route.target,
        "route_reason": None if route is None else route.reason,
        "task_label": None if route is None else route.task_label,
        "user_text": user_text,
        "answer_text": result.answer,
        "status": result.status,
        "error": result.error,
        "rating": None,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "ttft_ms": completion.ttft_ms,
        "decode_tok_s": completion.decode_tokens_per_second,
        "finish_reason": completion.finish_reason,
        "trimmed_messages": completion.trimmed_messages,
    }


class QtChatSection(QWidget):
    title = "Chat"
    turn_finished = Signal(object)  # TurnResult
    turn_failed = Signal(str)
    model_ready = Signal(str)  # model id
    answer_speed = Signal(str, object, object)  # model id, threads, tokens per second
    escalation_proposed = Signal(int)  # escalation id, pending the user's review
    cloud_suggested = Signal(int, str)  # escalation id the router proposed, and why
    conversation_loaded = Signal(object)  # conversation id

    def __init__(self, context: AppContext, parent=None):
        super().__init__(parent)
        self.context = context
        self.conversation_id: int | None = None
        self.editing_turn_id: int | None = None
        self.current_job: GenerationJob | None = None
        self._pending_user: QtUserMessage | None = None
        self._pending_answer: QtAssistantMessage | None = None

        self.conversation_list = QtConversationList(context)
        self.conversation_list.conversation_chosen.connect(self.open_conversation)
        self.conversation_list.new_requested.connect(self.new_chat)

        self.model_picker = QComboBox()
        self.model_picker.setAccessibleName("Model")
        self.model_picker.setToolTip("The local model that answers")
        self.load_state = QLabel()
        self.load_state.setAccessibleName("Model load state")
        self.load_progress = QProgressBar()
        self.load_progress.setAccessibleName("Model loading")
        self.load_progress.setRange(0, 0)
        self.load_progress.setFixedWidth(90)
        self.load_progress.hide()
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setAccessibleName("Export conversation")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        export_menu.addAction("As Markdown…", lambda: self.export_conversation("markdown"))
        export_menu.addAction("As JSON…", lambda: self.export_conversation("json"))
        self.export_button.setMenu(export_menu)
        self.tools_toggle = QCheckBox("Tools")
        self.tools_toggle.setAccessibleName("Let the model use tools")
        self.tools_toggle.setToolTip(
            "Let the model call tools; risky ones ask you first (see the Tools section)."
        )
        self.tools_toggle.setChecked(context.settings.tools_enabled)
        self.tools_toggle.toggled.connect(lambda checked: context.update_settings(tools_enabled=checked))
        self.approver = GuiApprover(self)
        header = QHBoxLayout()
        header.addWidget(self.model_picker, 1)
        header.addWidget(self.tools_toggle)
        header.addWidget(self.load_progress)
        header.addWidget(self.load_state)
        header.addWidget(self.export_button)

        self.messages = QWidget()
        self.messages_layout = QVBoxLayout(self.messages)
        self.messages_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.messages)
        self.scroll.setAccessibleName("Conversation")
        self.scroll.verticalScrollBar().rangeChanged.connect(self._on_scroll_range)

        self.edit_banner = QLabel()
        self.edit_banner.setAccessibleName("Editing notice")
        self.edit_banner.hide()
        self.input = QPlainTextEdit()
        self.input.setObjectName("messageInput")
        self.input.setAccessibleName("Message")
        self.input.setPlaceholderText("Ask something… (Ctrl+Enter sends)")
        self.input.setFixedHeight(90)
        self.send_button = QPushButton("Send")
        self.send_button.setProperty("primary", "true")
        self.send_button.setAccessibleName("Send message")
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop the answer")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addLayout(buttons)

        chat_panel = QWidget()
        chat_layout = QVBoxLayout(chat_panel)
        chat_layout.setContentsMargins(4, 8, 8, 8)
        chat_layout.addLayout(header)
        chat_layout.addWidget(self.scroll, 1)
        chat_layout.addWidget(self.edit_banner)
        chat_layout.addLayout(input_row)
        splitter = QSplitter()
        splitter.addWidget(self.conversation_list)
        splitter.addWidget(chat_panel)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 760])
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        for keys, action in (
            ("Ctrl+Return", self.send),
            ("Ctrl+Enter", self.send),
            ("Ctrl+N", self.new_chat),
            ("Ctrl+F", self._focus_search),
            ("Escape", self._on_escape),
        ):
            QShortcut(QKeySequence(keys), self, activated=action)

        self._fill_model_picker()
        self.model_picker.currentIndexChanged.connect(lambda _index: self.load_selected_model())
        context.settings_changed.connect(lambda _settings: self.load_selected_model())
        context.catalog_changed.connect(lambda _catalog: self._fill_model_picker())

    # Models -------------------------------------------------------------------------------------

    def _fill_model_picker(self) -> None:
        default = self.context.settings.default_model or self.context.catalog.default_generalist
        self.model_picker.blockSignals(True)
        self.model_picker.clear()
        for entry in self.context.catalog:
            if entry.role == "embedder":
                continue
            label = entry.name if entry.role == "generalist" else f"{entry.name} (base model)"
            self.model_picker.addItem(label, entry.id)
            if entry.id == default:
                self.model_picker.setCurrentIndex(self.model_picker.count() - 1)
        self.model_picker.blockSignals(False)

    def selected_model(self) -> str:
        return self.model_picker.currentData()

    def load_selected_model(self) -> None:
        """Load the picked model in the background (with its specialists' adapters read ahead); the
        window stays usable meanwhile."""
        catalog, settings = self.context.catalog, self.context.settings
        entry = catalog.get(self.selected_model())
        self.load_state.setText(f"Loading {entry.name}…")
        self.load_progress.show()

        def loaded(backend) -> None:
            if self.selected_model() != entry.id:
                return
            self.load_progress.hide()
            self.load_state.setText("Ready")
            self.answer_speed.emit(entry.id, backend.n_threads, None)
            self.model_ready.emit(entry.id)

        def failed(message: str) -> None:
            self.load_progress.hide()
            self.load_state.setText("Not loaded")
            self.context.notify_error(message)

        def load():
            from engine.agent import Agent

            return Agent.from_settings(thread_store(), catalog, settings).load_model(entry.id)

        run_in_background(load, loaded, failed)

    # Conversations ------------------------------------------------------------------------------

    def new_chat(self) -> None:
        if self.current_job is not None:
            return
        self.conversation_id = None
        self._cancel_edit()
        self._clear_messages()
        self.conversation_list.select(None)
        self.input.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        if self.current_job is not None:
            self.context.notify_info("Wait for the answer to finish (or stop it) first.")
            return
        run_in_background(
            lambda: thread_store().conversation_turns(conversation_id),
            lambda turns: self._show_conversation(conversation_id, turns),
            self.context.notify_error,
        )

    def _show_conversation(self, conversation_id: int, turns: list[dict]) -> None:
        self.conversation_id = conversation_id
        self._cancel_edit()
        self._clear_messages()
        from engine.tools.calling import ToolEvent

        for turn in turns:
            self._add_user_message(turn["user_text"], turn["id"])
            for call in turn["tool_calls"]:
                result = json.loads(call["result_json"]) if call["result_json"] else {}
                self._add_tool_card(
                    ToolEvent(
                        call["tool"],
                        call["args_json"],
                        call["decision"],
                        call["decided_by"],
                        result_text=result.get("text"),
                        error=call["error"],
                        duration_ms=call["duration_ms"],
                    )
                )
            self._add_answer().show_turn(turn)
        self.conversation_list.select(conversation_id)
        window_state().setValue("last_conversation", conversation_id)
        self.conversation_loaded.emit(conversation_id)

    def _clear_messages(self) -> None:
        while self.messages_layout.count() > 1:
            widget = self.messages_layout.takeAt(0).widget()
            widget.deleteLater()

    def _add_user_message(self, text: str, turn_id: int | None = None) -> QtUserMessage:
        message = QtUserMessage(text, turn_id)
        message.edit_requested.connect(self.start_edit)
        self.messages_layout.insertWidget(self.messages_layout.count() - 1, message)
        return message

    def _add_tool_card(self, event, before: QWidget | None = None) -> None:
        card = QtToolCard(event)
        index = (
            self.messages_layout.indexOf(before) if before is not None else self.messages_layout.count() - 1
        )
        self.messages_layout.insertWidget(index, card)

    def _add_answer(self) -> QtAssistantMessage:
        answer = QtAssistantMessage()
        answer.regenerate_requested.connect(self.regenerate)
        answer.cloud_requested.connect(self.ask_cloud)
        answer.kept_local.connect(self.keep_local)
        answer.feedback_given.connect(self._on_feedback)
        self.messages_layout.insertWidget(self.messages_layout.count() - 1, answer)
        return answer

    def _remove_messages_from(self, turn_id: int) -> None:
        """Take away the widgets of ``turn_id`` and every later turn (they are being replaced)."""
        widgets = [self.messages_layout.itemAt(i).widget() for i in range(self.messages_layout.count() - 1)]
        start = next(
            (i for i, w in enumerate(widgets) if isinstance(w, QtUserMessage) and w.turn_id == turn_id),
            None,
        )
        if start is None:
            return
        for widget in widgets[start:]:
            self.messages_layout.removeWidget(widget)
            widget.deleteLater()

    def export_conversation(self, kind: str) -> None:
        if self.conversation_id is None:
            self.context.notify_info("There is nothing to export yet: send a message first.")
            return
        suffix = ".md" if kind == "markdown" else ".json"
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export conversation", f"conversation-{self.conversation_id}{suffix}"
        )
        if path:
            self.export_to(Path(path), kind)

    def export_to(self, path: Path, kind: str) -> None:
        conversation_id = self.conversation_id

        def write() -> Path:
            from engine import files
            from engine.store import conversation_markdown

            export = thread_store().export_conversation(conversation_id)
            text = (
                conversation_markdown(export)
                if kind == "markdown"
                else json.dumps(export, indent=2, ensure_ascii=False)
            )
            files.write_text(path, text)
            return path

        run_in_background(
            write, lambda written: self.context.notify_info(f"Saved {written}"), self.context.notify_error
        )

    # Turns --------------------------------------------------------------------------------------

    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or self.current_job is not None:
            return
        replacing = self.editing_turn_id
        if replacing is not None:
            self._remove_messages_from(replacing)
            self._cancel_edit()
        self.input.clear()
        self._start_turn(text, replacing)

    def regenerate(self, turn_id: int) -> None:
        if self.current_job is not None or turn_id is None:
            return
        widgets = [self.messages_layout.itemAt(i).widget() for i in range(self.messages_layout.count() - 1)]
        user = next(w for w in widgets if isinstance(w, QtUserMessage) and w.turn_id == turn_id)
        text = user.text
        self._remove_messages_from(turn_id)
        self._start_turn(text, replacing=turn_id)

    def ask_cloud(self, turn_id: int) -> None:
        """Propose sending this turn's question to the cloud; the Escalations section asks first."""
        widgets = [self.messages_layout.itemAt(i).widget() for i in range(self.messages_layout.count() - 1)]
        user = next(w for w in widgets if isinstance(w, QtUserMessage) and w.turn_id == turn_id)
        catalog, settings = self.context.catalog, self.context.settings
        conversation_id, text = self.conversation_id, user.text

        def propose() -> int:
            from engine.agent import Agent
            from engine.escalation import Escalations

            store = thread_store()
            messages = Agent.from_settings(store, catalog, settings).messages_for(
                conversation_id, text, before_turn_id=turn_id
            )
            escalation_id = Escalations(store).propose(
                messages, reason="asked from the chat", conversation_id=conversation_id, turn_id=turn_id
            )
            _record_outcome(store, turn_id, "user_chose_cloud")
            return escalation_id

        run_in_background(propose, self.escalation_proposed.emit, self.context.notify_error)

    def keep_local(self, turn_id: int) -> None:
        """The user says this local answer was good enough: the router's calibration learns from it."""

        def record() -> None:
            _record_outcome(thread_store(), turn_id, "user_kept_local")

        run_in_background(
            record,
            lambda _result: self.context.notify_info("Noted: answers like this one stay local."),
            self.context.notify_error,
        )

    def start_edit(self, turn_id: int, text: str) -> None:
        if self.current_job is not None:
            return
        self.editing_turn_id = turn_id
        self.input.setPlainText(text)
        self.input.setFocus()
        self.edit_banner.setText(
            "Editing an earlier message: Send replaces it and the answers after it (Esc cancels)."
        )
        self.edit_banner.show()

    def _cancel_edit(self) -> None:
        self.editing_turn_id = None
        self.edit_banner.hide()

    def stop(self) -> None:
        if self.current_job is not None:
            self.current_job.cancel()

    def shut_down(self) -> None:
        """The window is closing: stop the answer (logged as cancelled); open approvals are denied."""
        self.stop()
        self.approver.close()

    def _start_turn(self, text: str, replacing: int | None) -> None:
        self._pending_user = self._add_user_message(text)
        self._pending_answer = self._add_answer()
        catalog, settings = self.context.catalog, self.context.settings
        conversation_id, model_id = self.conversation_id, self.selected_model()
        approver = self.approver if self.tools_toggle.isChecked() else None

        def run_turn(store, cancel):
            from engine.agent import Agent

            tool_use = None
            if approver is not None:
                from engine.tools import registered_tools
                from engine.tools.calling import ToolUse
                from engine.tools.policy import load_policy

                tool_use = ToolUse(registered_tools(), load_policy(), approver)
            agent = Agent.from_settings(store, catalog, settings)
            # The picked model is the generalist; the router may still send the turn to a specialist.
            agent.default_model = model_id
            return agent.run_turn(
                text,
                conversation_id=conversation_id,
                cancel=cancel,
                replacing=replacing,
                tool_use=tool_use,
            )

        job = GenerationJob(run_turn)
        job.signals.token.connect(self._pending_answer.append)
        answer = self._pending_answer
        job.signals.tool_event.connect(lambda event: self._add_tool_card(event, before=answer))
        job.signals.finished.connect(lambda result: self._on_turn_finished(result, text))
        job.signals.failed.connect(lambda message: self._on_turn_failed(message, text))
        self.current_job = job
        self.send_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        start_generation(job)

    def _end_turn(self) -> None:
        self.current_job = None
        self.send_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    def _on_turn_finished(self, result: TurnResult, text: str) -> None:
        self._end_turn()
        self._pending_user.set_turn(result.turn_id)
        self._pending_answer.show_turn(_turn_from_result(result, text))
        new_conversation = self.conversation_id != result.conversation_id
        self.conversation_id = result.conversation_id
        self.conversation_list.selected_id = result.conversation_id
        if new_conversation:
            self.conversation_list.refresh()
        window_state().setValue("last_conversation", result.conversation_id)
        self.answer_speed.emit(
            result.model_id, None, result.completion.decode_tokens_per_second if result.completion else None
        )
        if result.escalation_id is not None:
            self.cloud_suggested.emit(result.escalation_id, result.escalation_reason or "")
        self.turn_finished.emit(result)

    def _on_turn_failed(self, message: str, text: str) -> None:
        """Show the engine's message and give the user their text back: nothing is lost."""
        self._end_turn()
        self._pending_answer.show_failure(message)
        if not self.input.toPlainText().strip():
            self.input.setPlainText(text)
        self.context.notify_error(message)
        self.turn_failed.emit(message)

    def _on_feedback(self, turn_id: int, rating: int | None) -> None:
        run_in_background(
            lambda: thread_store().set_feedback(turn_id, rating), None, self.context.notify_error
        )

    # Small things -------------------------------------------------------------------------------

    def _focus_search(self) -> None:
        self.conversation_list.search_box.setFocus()
        self.conversation_list.search_box.selectAll()

    def _on_escape(self) -> None:
        if self.current_job is not None:
            self.stop()
        elif self.editing_turn_id is not None:
            self._cancel_edit()
            self.input.clear()

    def _on_scroll_range(self, _minimum: int, maximum: int) -> None:
        self.scroll.verticalScrollBar().setValue(maximum)


def _record_outcome(store, turn_id: int, outcome: str) -> None:
    from engine.router import record_outcome

    record_outcome(store, turn_id, outcome)
