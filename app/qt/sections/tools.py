"""The Tools section: every tool with its risk, source and rule, the granted folders, and MCP servers.

Rules and grants are changed through the engine's policy (a locked read-modify-write of tools.json); the
card and the approval dialog a conversation shows live in ``app.qt.widgets.tool_card``.
"""

from __future__ import annotations

import shlex

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext
from app.qt.widgets.tables import read_only_table
from app.qt.workers import run_in_background


class QtToolsSection(QWidget):
    """Tools with their risk and source, what runs without asking, and the granted folders."""

    title = "Tools"
    refreshed = Signal()

    def __init__(self, context: AppContext, parent=None):
        super().__init__(parent)
        self.context = context
        self.table = read_only_table(
            ("Tool", "Risk", "Source", "Rule", "What it does"), "Tools", fit_columns=False
        )
        self.table.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.ask_button = QPushButton("Ask every time")
        self.allow_button = QPushButton("Always allow")
        self.deny_button = QPushButton("Never allow")
        for button, rule in (
            (self.ask_button, "ask"),
            (self.allow_button, "allow"),
            (self.deny_button, "deny"),
        ):
            button.setAccessibleName(f"{button.text()} for the selected tool")
            button.clicked.connect(lambda _checked=False, rule=rule: self._set_rule(rule))
        rule_buttons = QHBoxLayout()
        rule_buttons.addStretch(1)
        for button in (self.ask_button, self.allow_button, self.deny_button):
            rule_buttons.addWidget(button)
        self.folders = QListWidget()
        self.folders.setAccessibleName("Granted folders")
        self.grant_button = QPushButton("Grant a folder…")
        self.grant_button.setAccessibleName("Grant a folder to the tools")
        self.grant_button.clicked.connect(self._on_grant)
        self.revoke_button = QPushButton("Remove")
        self.revoke_button.setAccessibleName("Remove the selected folder")
        self.revoke_button.clicked.connect(self._on_revoke)
        folder_buttons = QHBoxLayout()
        folder_buttons.addStretch(1)
        folder_buttons.addWidget(self.grant_button)
        folder_buttons.addWidget(self.revoke_button)
        note = QLabel(
            "Read tools work only inside granted folders. Write, network and shell tools ask every time "
            "unless you choose Always allow; the model can never change that."
        )
        note.setWordWrap(True)
        self.servers = read_only_table(
            ("MCP server", "Status", "Tools", "Trusted", "Command line"),
            "MCP servers",
            fit_columns=False,
        )
        self.servers.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.add_server_button = QPushButton("Add server…")
        self.add_server_button.setAccessibleName("Add an MCP server (it does not run until approved)")
        self.add_server_button.clicked.connect(self._on_add_server)
        self.approve_server_button = QPushButton("Approve and start…")
        self.approve_server_button.setAccessibleName("Approve the selected MCP server's command line")
        self.approve_server_button.clicked.connect(self._on_approve_server)
        self.trust_server_button = QPushButton("Trust / untrust")
        self.trust_server_button.setAccessibleName(
            "Let the selected server's tools run without asking, or not"
        )
        self.trust_server_button.clicked.connect(self._on_toggle_trust)
        self.remove_server_button = QPushButton("Remove server")
        self.remove_server_button.setAccessibleName("Remove the selected MCP server")
        self.remove_server_button.clicked.connect(self._on_remove_server)
        server_buttons = QHBoxLayout()
        server_buttons.addWidget(self.add_server_button)
        server_buttons.addStretch(1)
        for button in (self.approve_server_button, self.trust_server_button, self.remove_server_button):
            server_buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.table, 3)
        layout.addLayout(rule_buttons)
        layout.addWidget(QLabel("Folders the tools may use:"))
        self.folders.setMaximumHeight(110)
        self.servers.setMaximumHeight(150)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.folders)
        layout.addLayout(folder_buttons)
        layout.addWidget(self.servers)
        layout.addLayout(server_buttons)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        def read():
            from engine.tools import registered_tools
            from engine.tools.mcp import server_status
            from engine.tools.policy import load_policy

            return list(registered_tools().values()), load_policy(), server_status()

        run_in_background(read, lambda result: self._show(*result), self.context.notify_error)

    def _show(self, tools: list, policy, servers: list[dict]) -> None:
        self.servers.setRowCount(len(servers))
        for row, server in enumerate(servers):
            if not server["approved"]:
                status = "not approved: select it, then Approve and start…"
            else:
                status = server["problem"] or "approved"
            cells = (
                server["name"],
                status,
                str(server["tools"]),
                "yes" if server["trusted"] else "no (asks every call)",
                server["command_line"],
            )
            for column, text in enumerate(cells):
                self.servers.setItem(row, column, QTableWidgetItem(text))
        self.table.setRowCount(len(tools))
        for row, tool in enumerate(tools):
            if tool.name in policy.denied:
                rule = "never"
            elif tool.risk == "read" or tool.name in policy.always_allowed:
                rule = "runs without asking"
            else:
                rule = "asks every time"
            for column, text in enumerate((tool.name, tool.risk, tool.source, rule, tool.description)):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.folders.clear()
        self.folders.addItems(policy.granted_folders)
        self.refreshed.emit()

    def _on_add_server(self) -> None:
        dialog = QtAddServerDialog(self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.add_server(dialog.name_edit.text().strip(), dialog.command_edit.text())

    def add_server(self, name: str, command_text: str) -> None:
        """Store a server from a typed command line; nothing runs until it is approved."""

        def save() -> None:
            from engine.errors import McpError
            from engine.tools.mcp import add_server

            try:
                words = shlex.split(command_text)
            except ValueError as error:
                raise McpError(f"the command line cannot be read ({error}); check its quotes") from None
            if not words:
                raise McpError("type the command that starts the server, e.g. `python3 my_server.py`")
            add_server(name, words[0], words[1:])

        run_in_background(
            save,
            lambda _result: (
                self.context.notify_info(f"{name} added: approve it to start it."),
                self.refresh(),
            ),
            self.context.notify_error,
        )

    def _selected_server(self) -> tuple[str, str] | None:
        items = self.servers.selectedItems()
        if not items:
            return None
        row = items[0].row()
        return self.servers.item(row, 0).text(), self.servers.item(row, 4).text()

    def _on_toggle_trust(self) -> None:
        selected = self._selected_server()
        if selected is None:
            return
        name = selected[0]

        def toggle() -> bool:
            from engine.tools.mcp import load_config, set_trusted

            trusted = name not in load_config().trusted
            set_trusted(name, trusted)
            return trusted

        run_in_background(
            toggle,
            lambda trusted: (
                self.context.notify_info(
                    f"{name}'s tools now run without asking."
                    if trusted
                    else f"{name}'s tools ask every call."
                ),
                self.refresh(),
            ),
            self.context.notify_error,
        )

    def _on_remove_server(self) -> None:
        selected = self._selected_server()
        if selected is None:
            return
        name = selected[0]

        def remove() -> None:
            from engine.tools.mcp import remove_server

            remove_server(name)

        run_in_background(remove, lambda _result: self.refresh(), self.context.notify_error)

    def _on_approve_server(self) -> None:
        selected = self._selected_server()
        if selected is None:
            return
        name, command = selected
        answer = QMessageBox.question(
            self,
            f"Start MCP server {name}?",
            f"Understudy will run exactly this command, now and whenever its tools are used:\n\n{command}",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.approve_server(name, command)

    def approve_server(self, name: str, shown_command_line: str) -> None:
        """Approve ``name`` as the user saw it: if its command line changed since, nothing runs."""

        def approve() -> int:
            from engine.errors import McpError
            from engine.tools.mcp import approve_server, command_line, configured_server

            server = configured_server(name)
            if command_line(server) != shown_command_line:
                raise McpError(f"'{name}' changed since it was shown to you; check it and approve it again")
            return len(approve_server(name, shown=server))

        run_in_background(
            approve,
            lambda count: (self.context.notify_info(f"{name} approved: {count} tools."), self.refresh()),
            self.context.notify_error,
        )

    def _selected_tool(self) -> str | None:
        items = self.table.selectedItems()
        return self.table.item(items[0].row(), 0).text() if items else None

    def _set_rule(self, rule: str) -> None:
        name = self._selected_tool()
        if name is None:
            return

        def save() -> None:
            from engine.tools.policy import edit_policy

            with edit_policy() as policy:
                policy.set_rule(name, rule)

        run_in_background(save, lambda _result: self.refresh(), self.context.notify_error)

    def _on_grant(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Grant a folder to the tools")
        if folder:
            self.grant(folder)

    def grant(self, folder: str) -> None:
        def save() -> str:
            from engine.tools.policy import edit_policy, grant_folder

            with edit_policy() as policy:
                return grant_folder(policy, folder)

        run_in_background(save, lambda _canonical: self.refresh(), self.context.notify_error)

    def _on_revoke(self) -> None:
        item = self.folders.currentItem()
        if item is None:
            return
        folder = item.text()

        def save() -> None:
            from engine.tools.policy import edit_policy

            with edit_policy() as policy:
                policy.granted_folders = [granted for granted in policy.granted_folders if granted != folder]

        run_in_background(save, lambda _result: self.refresh(), self.context.notify_error)


class QtAddServerDialog(QDialog):
    """Name and command line of a new MCP server; adding it runs nothing."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Add an MCP server")
        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("Server name")
        self.name_edit.setPlaceholderText("notes")
        self.command_edit = QLineEdit()
        self.command_edit.setAccessibleName("Command line that starts the server")
        self.command_edit.setPlaceholderText("python3 /path/to/server.py --flag")
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Command line", self.command_edit)
        note = QLabel("The server will not run until you approve this exact command line.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
