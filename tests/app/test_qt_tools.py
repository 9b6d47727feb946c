"""Tools in the GUI: the approval dialog answers for a worker thread, cards show calls, grants persist."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from app.qt_context import AppContext
from app.qt_tools import GuiApprover, QtToolCard, QtToolsSection
from engine.catalog import load_catalog
from engine.settings import Settings
from engine.tool_calling import ToolEvent
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
