"""The Gateway section: serve the models to other programs with one switch, and see who uses them.

The gateway runs as ``understudy serve --json`` in a child process (QProcess), so a crash there never
hurts the app and closing the window stops it. Its address and token are shown with Copy buttons, and
the clients and requests come from the engine's reading of the gateway log, refreshed while the
section is visible.
"""

from __future__ import annotations

import json
from datetime import datetime

from PySide6.QtCore import QProcess, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext
from app.qt.tuning_process import WorkerCommand, worker_command
from app.qt.widgets.tables import read_only_table
from app.qt.workers import run_in_background, thread_store

DEFAULT_PORT = 8765
REFRESH_MS = 3000
RECENT_LIMIT = 50
STOP_WAIT_MS = 5000
STDERR_KEPT_CHARS = 4000


def _local_time(utc_text: str) -> str:
    try:
        return datetime.fromisoformat(utc_text).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return utc_text


class QtGatewaySection(QWidget):
    """The switch, the address and token to give a program, its clients and its recent requests."""

    title = "Gateway"
    listening = Signal(str)  # the URL, once the gateway accepts requests
    stopped = Signal(str)  # why it stopped, in plain words ("" when the user switched it off)
    refreshed = Signal()

    def __init__(
        self,
        context: AppContext,
        command: WorkerCommand = worker_command,
        port: int = DEFAULT_PORT,
        parent=None,
    ):
        super().__init__(parent)
        self.context = context
        self.command = command
        self.process: QProcess | None = None
        self.url = ""
        self.token = ""
        self._buffer = b""
        self._stderr = ""
        self._stopping = False
        self._refreshing = False

        self.switch = QCheckBox("Serve my models to other programs on this computer")
        self.switch.setAccessibleName("Gateway on or off")
        self.switch.toggled.connect(self._on_switch_toggled)
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setValue(port)
        self.port.setAccessibleName("Port the gateway listens on")
        self.status = QLabel(
            "The gateway is off. Switch it on to let programs that speak OpenAI's API use your models."
        )
        self.status.setWordWrap(True)

        self.url_field = QLineEdit()
        self.url_field.setReadOnly(True)
        self.url_field.setAccessibleName("Gateway address")
        self.token_field = QLineEdit()
        self.token_field.setReadOnly(True)
        self.token_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_field.setAccessibleName("Gateway token")
        self.show_token = QCheckBox("Show")
        self.show_token.setAccessibleName("Show the token")
        self.show_token.toggled.connect(self._on_show_token_toggled)
        self.snippet = QPlainTextEdit()
        self.snippet.setReadOnly(True)
        self.snippet.setAccessibleName("Settings for a program that uses the OpenAI SDK")
        self.snippet.setMaximumHeight(60)
        self.copy_url_button = QPushButton("Copy")
        self.copy_url_button.setAccessibleName("Copy the gateway address")
        self.copy_url_button.clicked.connect(lambda: self._copy(self.url_field.text(), "The address"))
        self.copy_token_button = QPushButton("Copy")
        self.copy_token_button.setAccessibleName("Copy the gateway token")
        self.copy_token_button.clicked.connect(lambda: self._copy(self.token, "The token"))
        self.copy_snippet_button = QPushButton("Copy")
        self.copy_snippet_button.setAccessibleName("Copy the settings for a program")
        self.copy_snippet_button.clicked.connect(lambda: self._copy(self.snippet_text(), "The settings"))

        self.clients = read_only_table(
            ("Client", "Requests", "Last seen", "Specialist", "Generalist", "Cloud", "Errors"), "Clients"
        )
        self.recent = read_only_table(
            ("Time", "Client", "Model asked", "Answered by", "Route", "Status", "Tokens", "Seconds"),
            "Recent requests",
        )

        switch_row = QHBoxLayout()
        switch_row.addWidget(self.switch)
        switch_row.addStretch(1)
        switch_row.addWidget(QLabel("Port:"))
        switch_row.addWidget(self.port)
        grid = QGridLayout()
        grid.addWidget(QLabel("Address:"), 0, 0)
        grid.addWidget(self.url_field, 0, 1, 1, 2)
        grid.addWidget(self.copy_url_button, 0, 3)
        grid.addWidget(QLabel("Token:"), 1, 0)
        grid.addWidget(self.token_field, 1, 1)
        grid.addWidget(self.show_token, 1, 2)
        grid.addWidget(self.copy_token_button, 1, 3)
        grid.addWidget(QLabel("For programs that use the OpenAI SDK:"), 2, 0, 1, 4)
        grid.addWidget(self.snippet, 3, 0, 1, 3)
        grid.addWidget(self.copy_snippet_button, 3, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(switch_row)
        layout.addWidget(self.status)
        layout.addLayout(grid)
        layout.addWidget(QLabel("Programs that used the gateway:"))
        layout.addWidget(self.clients, 1)
        layout.addWidget(QLabel("Recent requests:"))
        layout.addWidget(self.recent, 2)

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._show_address()

    # The child process ---------------------------------------------------------------------------

    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        """Start ``understudy serve --json``; its first line says where it listens and with which token."""
        if self.running():
            return
        self._buffer, self._stderr, self._stopping = b"", "", False
        self.process = QProcess(self)
        program, arguments = self.command(["serve", "--port", str(self.port.value()), "--json"])
        self.process.setProgram(program)
        self.process.setArguments(arguments)
        self.process.readyReadStandardOutput.connect(self._on_stdout)
        self.process.readyReadStandardError.connect(self._on_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self.port.setEnabled(False)
        self.status.setText("Starting the gateway…")
        self.process.start()

    def stop(self) -> None:
        """Stop the gateway; requests in flight are ended and stay in the log."""
        if not self.running():
            return
        self._stopping = True
        self.process.terminate()
        if not self.process.waitForFinished(STOP_WAIT_MS):
            self.process.kill()
            self.process.waitForFinished(STOP_WAIT_MS)

    def shut_down(self) -> None:
        """Called when the window closes: the gateway never outlives the app."""
        self._timer.stop()
        self.stop()

    def _on_switch_toggled(self, on: bool) -> None:
        if on:
            self.start()
        else:
            self.stop()

    def _on_stdout(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line.decode("utf-8", errors="replace"))
            except ValueError:
                continue  # a library printing to stdout
            if isinstance(event, dict) and event.get("event") == "listening":
                self.url, self.token = event["url"], event["token"]
                self._show_address()
                self.status.setText(
                    "The gateway is on. Give a program the address and the token below; every request "
                    "is answered on this computer and listed here."
                )
                self.listening.emit(self.url)

    def _on_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", errors="replace")
        self._stderr = (self._stderr + text)[-STDERR_KEPT_CHARS:]

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._ended(
                f"The gateway could not start ({self.process.errorString()}). "
                "Reinstalling Understudy may help; then switch it on again."
            )

    def _on_finished(self, exit_code: int, _exit_status: QProcess.ExitStatus) -> None:
        self._on_stderr()
        if self._stopping:
            self._ended("")
            return
        said = self._error_line()
        if "address already in use" in self._stderr.lower():
            why = (
                f"Port {self.port.value()} is already used by another program. "
                "Choose another port, then switch the gateway on again."
            )
        else:
            why = (
                "The gateway stopped unexpectedly"
                + (f" ({said})" if said else f" (exit code {exit_code})")
                + ". Switch it on again to restart it."
            )
        self._ended(why)

    def _ended(self, why: str) -> None:
        self.url = ""
        self._show_address()
        self.port.setEnabled(True)
        self.switch.blockSignals(True)
        self.switch.setChecked(False)
        self.switch.blockSignals(False)
        self.status.setText(
            why or "The gateway is off. Programs using it get no answers until you switch it on."
        )
        if why:
            self.context.notify_error(why)
        self.stopped.emit(why)

    def _error_line(self) -> str:
        lines = self._stderr.replace("\r", "\n").splitlines()
        return next((line.strip() for line in reversed(lines) if "Error" in line), "")

    # What is shown -------------------------------------------------------------------------------

    def _show_address(self) -> None:
        self.url_field.setText(self.url or "(switch the gateway on to get its address)")
        self.token_field.setText(self.token)
        url = self.url or f"http://127.0.0.1:{self.port.value()}/v1"
        shown_token = self.token if self.show_token.isChecked() else "•" * len(self.token)
        self.snippet.setPlainText(f"OPENAI_BASE_URL={url}\nOPENAI_API_KEY={shown_token}")
        self.copy_url_button.setEnabled(bool(self.url))

    def snippet_text(self) -> str:
        """The settings a program needs, with the real token (what Copy puts on the clipboard)."""
        url = self.url or f"http://127.0.0.1:{self.port.value()}/v1"
        return f"OPENAI_BASE_URL={url}\nOPENAI_API_KEY={self.token}"

    def _on_show_token_toggled(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        self.token_field.setEchoMode(mode)
        self._show_address()  # the snippet hides the token too until it is shown

    def _copy(self, text: str, what: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.context.notify_info(f"{what} is on the clipboard.")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()
        self._timer.start()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self._timer.stop()

    def refresh(self) -> None:
        """Read the token, the clients and the recent requests off the GUI thread."""
        if self._refreshing:
            return
        self._refreshing = True

        def read():
            from engine.gateway_log import gateway_clients, recent_gateway_calls
            from engine.gateway_token import gateway_token

            store = thread_store()
            return gateway_token(), gateway_clients(store), recent_gateway_calls(store, RECENT_LIMIT)

        run_in_background(read, lambda result: self._show(*result), self._on_refresh_failed)

    def _on_refresh_failed(self, message: str) -> None:
        self._refreshing = False
        self.context.notify_error(message)

    def _show(self, token: str, clients: list, calls: list) -> None:
        self._refreshing = False
        if token != self.token:
            self.token = token
            self._show_address()
        self.clients.setRowCount(len(clients))
        for row, client in enumerate(clients):
            cells = (
                client.name,
                str(client.requests),
                _local_time(client.last_seen_utc),
                str(client.routes["specialist"]),
                str(client.routes["generalist"]),
                str(client.routes["cloud"]),
                str(client.errors),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 0:
                    item.setToolTip(client.user_agent)
                self.clients.setItem(row, column, item)
        self.recent.setRowCount(len(calls))
        for row, call in enumerate(calls):
            seconds = "" if call.duration_ms is None else f"{call.duration_ms / 1000:.1f}"
            cells = (
                _local_time(call.created_utc),
                call.client,
                call.requested_model,
                call.answered_by,
                call.route,
                call.status,
                str(call.completion_tokens),
                seconds,
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 4:
                    item.setToolTip(call.route_detail)
                self.recent.setItem(row, column, item)
        self.refreshed.emit()
