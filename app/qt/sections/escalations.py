"""The Escalations section: the review queue for cloud requests, their history and the total spent.

The payload editor shows exactly the JSON that would leave the machine (personal data already replaced
by placeholders); what is saved there is what is sent. Every decision and send runs in the background
through the engine, which enforces consent and the local-only switch itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext
from app.qt.widgets.provider_form import QtProviderForm
from app.qt.widgets.tables import read_only_table
from app.qt.workers import GenerationJob, run_in_background, start_generation, thread_store

if TYPE_CHECKING:
    from engine.escalation import Escalation

COLUMNS = ("#", "Status", "Provider", "Model", "Request", "Tokens", "Cost")


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


class QtEscalationsSection(QWidget):
    title = "Escalations"
    escalation_sent = Signal(object)  # SendResult
    escalation_failed = Signal(str)
    refreshed = Signal()

    def __init__(self, context: AppContext, parent=None):
        super().__init__(parent)
        self.context = context
        self.escalations: dict[int, Escalation] = {}
        self._wanted_id: int | None = None  # to select once it is loaded
        self.current_job: GenerationJob | None = None

        self.local_only = QCheckBox("Local only: never send anything to a cloud provider")
        self.local_only.setAccessibleName("Local only")
        self.local_only.toggled.connect(self._on_local_only_toggled)
        self.provider_label = QLabel()
        self.provider_label.setAccessibleName("Cloud provider in use")
        self.spend_label = QLabel()
        self.spend_label.setAccessibleName("Total spent on the cloud")
        self.provider_button = QPushButton("Provider…")
        self.provider_button.setAccessibleName("Set up the cloud provider")
        self.provider_button.setCheckable(True)
        self.provider_form = QtProviderForm(context)
        self.provider_form.hide()
        self.provider_button.toggled.connect(self.provider_form.setVisible)
        self.provider_form.saved.connect(lambda _name: self.refresh())
        top = QHBoxLayout()
        top.addWidget(self.local_only)
        top.addStretch(1)
        top.addWidget(self.provider_label)
        top.addWidget(self.spend_label)
        top.addWidget(self.provider_button)

        self.table = read_only_table(COLUMNS, "Escalations", fit_columns=False)
        self.table.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)

        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setAccessibleName("Escalation details")
        self.payload_editor = QPlainTextEdit()
        self.payload_editor.setAccessibleName("Payload that would be sent")
        self.payload_editor.setToolTip("Exactly this JSON leaves the machine; you may edit it first.")
        self.answer_view = QTextBrowser()
        self.answer_view.setAccessibleName("Cloud answer")
        self.allow_once_button = QPushButton("Allow once")
        self.allow_once_button.setProperty("primary", "true")
        self.allow_once_button.setAccessibleName("Allow once and send")
        self.allow_always_button = QPushButton("Always for this task type")
        self.allow_always_button.setAccessibleName("Always allow this task type and send")
        self.deny_button = QPushButton("Deny")
        self.deny_button.setAccessibleName("Deny: send nothing")
        self.allow_once_button.clicked.connect(lambda: self._decide("allow_once"))
        self.allow_always_button.clicked.connect(lambda: self._decide("always"))
        self.deny_button.clicked.connect(lambda: self._decide("deny"))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.deny_button, self.allow_always_button, self.allow_once_button):
            buttons.addWidget(button)

        detail_panel = QWidget()
        detail_layout = QVBoxLayout(detail_panel)
        detail_layout.addWidget(self.details)
        detail_layout.addWidget(QLabel("Exactly what would leave this machine:"))
        detail_layout.addWidget(self.payload_editor, 2)
        detail_layout.addLayout(buttons)
        detail_layout.addWidget(QLabel("Answer (with your details put back):"))
        detail_layout.addWidget(self.answer_view, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(detail_panel)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.provider_form)
        layout.addWidget(splitter, 1)
        self._set_decision_enabled(False)

    # Loading ----------------------------------------------------------------------------------

    def refresh(self, select_id: int | None = None) -> None:
        def read():
            from engine.escalation import Escalations, load_cloud_config

            service = Escalations(thread_store())
            return load_cloud_config(), service.recent(), service.total_spend()

        run_in_background(read, lambda result: self._show(*result, select_id), self.context.notify_error)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def _show(self, config, escalations: list[Escalation], spend: float, select_id: int | None) -> None:
        self.local_only.blockSignals(True)
        self.local_only.setChecked(config.local_only)
        self.local_only.blockSignals(False)
        self.provider_label.setText(
            f"Provider: {config.active}" if config.active else "No provider yet: set one up with Provider…"
        )
        if config.active:
            self.provider_form.show_provider(config.providers[config.active])
        self.spend_label.setText(f"Spent: {_money(spend)}")
        selected = select_id or self._wanted_id or self.selected_id()
        self._wanted_id = None
        self.escalations = {escalation.id: escalation for escalation in escalations}
        self.table.setRowCount(len(escalations))
        for row, escalation in enumerate(escalations):
            tokens = (
                f"{escalation.prompt_tokens} + {escalation.completion_tokens}"
                if escalation.completion_tokens is not None
                else ""
            )
            cost = escalation.cost_usd
            cells = (
                str(escalation.id),
                escalation.status,
                escalation.provider,
                escalation.model,
                escalation.user_text.splitlines()[0][:120] if escalation.user_text else "",
                tokens,
                _money(cost) if cost is not None else f"~{_money(escalation.estimated_cost_usd)}",
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, escalation.id)
                self.table.setItem(row, column, item)
            if escalation.id == selected:
                self.table.selectRow(row)
        self._on_selection_changed()
        self.refreshed.emit()

    def selected_id(self) -> int | None:
        items = self.table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def select(self, escalation_id: int) -> None:
        self._wanted_id = escalation_id
        self.refresh(select_id=escalation_id)

    def _on_selection_changed(self) -> None:
        escalation = self.escalations.get(self.selected_id())
        if escalation is None:
            self.details.setText("Select an escalation to review it.")
            self.payload_editor.clear()
            self.answer_view.clear()
            self._set_decision_enabled(False)
            return
        self.details.setText(
            f"#{escalation.id} · {escalation.status} · {escalation.provider} "
            f"({escalation.model}) · task type {escalation.task_type} · reason: "
            f"{escalation.reason} · estimated {_money(escalation.estimated_cost_usd)}"
            + (f" · {escalation.error}" if escalation.error else "")
        )
        self.payload_editor.setPlainText(json.dumps(escalation.payload, indent=2, ensure_ascii=False))
        self.payload_editor.setReadOnly(escalation.status != "pending")
        self.answer_view.setPlainText(escalation.restored_text or "")
        self._set_decision_enabled(escalation.decidable and self.current_job is None)

    def _set_decision_enabled(self, enabled: bool) -> None:
        for button in (self.allow_once_button, self.allow_always_button, self.deny_button):
            button.setEnabled(enabled)

    # Decisions --------------------------------------------------------------------------------

    def _decide(self, decision: str) -> None:
        escalation_id = self.selected_id()
        escalation = self.escalations.get(escalation_id)
        if escalation is None:
            return
        edited = None
        if escalation.status == "pending":
            try:
                edited = json.loads(self.payload_editor.toPlainText())
            except json.JSONDecodeError as error:
                self.context.notify_error(f"The payload is not valid JSON ({error}); fix it or deny.")
                return
        self._set_decision_enabled(False)

        def record_decision() -> None:
            from engine.escalation import Escalations

            service = Escalations(thread_store())
            if edited is not None and edited != escalation.payload:
                service.edit_payload(escalation_id, edited)
            service.decide(escalation_id, decision)

        def decided(_result: object) -> None:
            if decision == "deny":
                self.context.notify_info(f"Escalation {escalation_id} denied; nothing was sent.")
                self.refresh(escalation_id)
            else:
                self._send(escalation_id)

        def failed(message: str) -> None:
            self.context.notify_error(message)
            self.refresh(escalation_id)

        run_in_background(record_decision, decided, failed)

    def _send(self, escalation_id: int) -> None:
        def send(store, cancel):
            from engine.escalation import Escalations

            return Escalations(store).send(escalation_id, cancel)

        self.answer_view.clear()
        job = GenerationJob(send)
        job.signals.token.connect(self._on_piece)
        job.signals.finished.connect(self._on_sent)
        job.signals.failed.connect(self._on_send_failed)
        self.current_job = job
        start_generation(job)

    def _on_piece(self, piece: str) -> None:
        self.answer_view.insertPlainText(piece)

    def _on_sent(self, result) -> None:
        self.current_job = None
        self.context.notify_info(
            f"Escalation {result.escalation_id} answered: {result.prompt_tokens} + "
            f"{result.completion_tokens} tokens, {_money(result.cost_usd)}."
        )
        self.refresh(result.escalation_id)
        self.escalation_sent.emit(result)

    def _on_send_failed(self, message: str) -> None:
        self.current_job = None
        self.context.notify_error(message)
        self.refresh()
        self.escalation_failed.emit(message)

    def _on_local_only_toggled(self, checked: bool) -> None:
        def save() -> None:
            from engine.escalation import set_local_only

            set_local_only(checked)

        run_in_background(
            save,
            lambda _result: self.context.notify_info(
                "Local only: nothing can leave this machine." if checked else "Escalation is possible again."
            ),
            self.context.notify_error,
        )

    def shut_down(self) -> None:
        if self.current_job is not None:
            self.current_job.cancel()
