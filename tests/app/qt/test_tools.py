"""Tools in the GUI: the approval dialog answers for a worker thread, cards show calls, grants persist."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from app.qt.context import AppContext
from app.qt.sections.tools import QtToolsSection
from app.qt.widgets.tool_card import GuiApprover, QtToolCard
from engine.catalog import load_catalog
from engine.settings import Settings
from engine.tools.calling import ToolEvent
from engine.tools.policy import ApprovalRequest, load_policy

REQUEST = ApprovalRequest("shell", "exec", "Run one program.", '{"argv": ["rm", "-rf", "/tmp/x"]}')


def ask_from_a_worker(approver: GuiApprover) -> tuple[threading.Thread, list[str]]:
    answers: list[str] = []
    worker = threading.Thread(target=lambda: answers.append(approver(REQUEST)))
    worker.start()
    return worker, answers


@pytest.mark.parametrize(
    ("button", "answer"), [("once_button", "once"), ("always_button", "always"), ("deny_button", "deny")]
)
def test_the_dialog_shows_the_exact_arguments_and_returns_the_choice(qtbot, button, answer):
    parent = QWidget()
    qtbot.addWidget(parent)
    approver = GuiApprover(parent)
    with qtbot.waitSignal(approver.dialog_shown) as shown:
        worker, answers = ask_from_a_worker(approver)
    dialog = shown.args[0]
    assert dialog.arguments.toPlainText() == REQUEST.arguments_json
    assert dialog.arguments.isReadOnly()
    qtbot.mouseClick(getattr(dialog, button), Qt.MouseButton.LeftButton)
    worker.join(timeout=5)
    assert answers == [answer]


def test_closing_denies_a_question_still_open(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    approver = GuiApprover(parent)
    with qtbot.waitSignal(approver.dialog_shown):
        worker, answers = ask_from_a_worker(approver)
    approver.close()
    worker.join(timeout=5)
    assert answers == ["deny"]
    assert approver(REQUEST) == "deny"


def test_a_tool_card_shows_tool_arguments_result_and_duration(qtbot):
    card = QtToolCard(
        ToolEvent("calculator", '{"expression": "2+2"}', "allowed", "policy", "2+2 = 4", None, 3.2)
    )
    qtbot.addWidget(card)
    texts = [label.text() for label in card.findChildren(type(card.children()[1]))]
    assert any("calculator" in text and "3 ms" in text for text in texts)
    assert '{"expression": "2+2"}' in texts and "2+2 = 4" in texts


def test_the_tools_section_lists_tools_and_grants_folders(qtbot, tmp_path):
    section = QtToolsSection(AppContext(load_catalog(), Settings()))
    qtbot.addWidget(section)
    with qtbot.waitSignal(section.refreshed):
        section.refresh()
    names = {section.table.item(row, 0).text() for row in range(section.table.rowCount())}
    assert {"calculator", "shell", "file_search", "write_note", "http_get"} <= names
    rules = {
        section.table.item(row, 0).text(): section.table.item(row, 3).text()
        for row in range(section.table.rowCount())
    }
    assert rules["calculator"] == "runs without asking" and rules["shell"] == "asks every time"
    with qtbot.waitSignal(section.refreshed):
        section.grant(str(tmp_path))
    assert load_policy().granted_folders == [str(tmp_path.resolve())]
    assert section.folders.item(0).text() == str(tmp_path.resolve())
    shell_row = next(
        row for row in range(section.table.rowCount()) if section.table.item(row, 0).text() == "shell"
    )
    section.table.selectRow(shell_row)
    with qtbot.waitSignal(section.refreshed):
        qtbot.mouseClick(section.deny_button, Qt.MouseButton.LeftButton)
    assert load_policy().denied == ["shell"]


ECHO_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")


@server.tool()
def echo(text: str) -> str:
    \"\"\"Say the text back.\"\"\"
    return text


server.run()
"""


def test_an_mcp_server_added_in_the_app_runs_only_once_approved_as_shown(qtbot, tmp_path):
    import sys

    from engine.tools.mcp import command_line, configured_server, load_config

    script = tmp_path / "echo_server.py"
    script.write_text(ECHO_SERVER, encoding="utf-8")
    context = AppContext(load_catalog(), Settings())
    section = QtToolsSection(context)
    qtbot.addWidget(section)
    with qtbot.waitSignal(section.refreshed):
        section.add_server("echo", f"{sys.executable} '{script}'")
    assert section.servers.item(0, 0).text() == "echo"
    assert section.servers.item(0, 1).text().startswith("not approved")
    shown = command_line(configured_server("echo"))

    with qtbot.waitSignal(context.notification) as refused:
        section.approve_server("echo", shown + " --extra")
    assert refused.args[0] == "error" and "changed since it was shown" in refused.args[1]
    assert "echo" not in load_config().approved

    with qtbot.waitSignal(section.refreshed, timeout=30000):
        section.approve_server("echo", shown)
    assert section.servers.item(0, 1).text() == "approved"
    assert section.servers.item(0, 2).text() == "1"

    section.servers.selectRow(0)
    with qtbot.waitSignal(section.refreshed):
        qtbot.mouseClick(section.trust_server_button, Qt.MouseButton.LeftButton)
    assert load_config().trusted == ["echo"]
    with qtbot.waitSignal(section.refreshed):
        section.servers.selectRow(0)
        qtbot.mouseClick(section.remove_server_button, Qt.MouseButton.LeftButton)
    assert section.servers.rowCount() == 0


def test_a_command_line_with_unbalanced_quotes_is_refused_with_a_reason(qtbot):
    context = AppContext(load_catalog(), Settings())
    section = QtToolsSection(context)
    qtbot.addWidget(section)
    with qtbot.waitSignal(context.notification) as refused:
        section.add_server("broken", "python3 'unclosed")
    assert refused.args[0] == "error" and "quotes" in refused.args[1]
