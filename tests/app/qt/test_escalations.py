"""The review queue: what is shown is what is sent, or nothing is.

Sending goes to the real stand-in cloud (llama.cpp's server, slow); the tests where nothing may be sent
use a recording address with nothing behind it.
"""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from app.qt.context import AppContext
from app.qt.sections.escalations import QtEscalationsSection
from engine.catalog import load_catalog
from engine.escalation import Escalations
from engine.settings import Settings
from engine.store import Store

TIMEOUT_MS = 120_000


def open_section(qtbot) -> QtEscalationsSection:
    widget = QtEscalationsSection(AppContext(load_catalog(), Settings()))
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def section(qtbot, unanswering_cloud):
    """The section with a provider that records requests and answers none."""
    return open_section(qtbot)


@pytest.fixture
def sending_section(qtbot, cloud):
    """The section with the stand-in cloud as its provider, for sends that must get an answer."""
    return open_section(qtbot)


def pending(text: str = "Email me at ann@example.org. Say hi in three words.") -> int:
    store = Store.open()
    try:
        return Escalations(store).propose([{"role": "user", "content": text}], reason="test")
    finally:
        store.close()


def show(qtbot, section, escalation_id: int) -> None:
    with qtbot.waitSignal(section.refreshed):
        section.select(escalation_id)
    assert section.selected_id() == escalation_id


@pytest.mark.slow
def test_allow_once_sends_exactly_the_payload_on_screen(qtbot, sending_section, cloud):
    section = sending_section
    escalation_id = pending()
    show(qtbot, section, escalation_id)
    shown = json.loads(section.payload_editor.toPlainText())
    assert "ann@example.org" not in section.payload_editor.toPlainText()
    assert "[EMAIL_1]" in shown["messages"][0]["content"]
    with qtbot.waitSignal(section.escalation_sent, timeout=TIMEOUT_MS) as sent:
        qtbot.mouseClick(section.allow_once_button, Qt.MouseButton.LeftButton)
    [(_method, _path, _headers, body)] = cloud.requests
    assert json.loads(body) == shown
    assert sent.args[0].answer.strip()
    qtbot.waitUntil(lambda: section.escalations[escalation_id].status == "sent")
    assert section.spend_label.text().startswith("Spent: $")


@pytest.mark.slow
def test_an_edit_in_the_payload_editor_is_what_is_sent(qtbot, sending_section, cloud):
    section = sending_section
    show(qtbot, section, pending())
    payload = json.loads(section.payload_editor.toPlainText())
    payload["messages"][0]["content"] = "Say hi."
    section.payload_editor.setPlainText(json.dumps(payload))
    with qtbot.waitSignal(section.escalation_sent, timeout=TIMEOUT_MS):
        qtbot.mouseClick(section.allow_once_button, Qt.MouseButton.LeftButton)
    [(_method, _path, _headers, body)] = cloud.requests
    assert json.loads(body)["messages"][0]["content"] == "Say hi."


def test_deny_sends_nothing(qtbot, section, unanswering_cloud):
    escalation_id = pending()
    show(qtbot, section, escalation_id)
    qtbot.mouseClick(section.deny_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.escalations[escalation_id].status == "denied")
    assert unanswering_cloud.requests == []


def test_local_only_sends_nothing_even_when_allowed(qtbot, section, unanswering_cloud):
    escalation_id = pending()
    show(qtbot, section, escalation_id)
    with qtbot.waitSignal(section.context.notification):
        section.local_only.setChecked(True)
    with qtbot.waitSignal(section.escalation_failed, timeout=TIMEOUT_MS) as failed:
        qtbot.mouseClick(section.allow_once_button, Qt.MouseButton.LeftButton)
    assert "local-only mode is on" in failed.args[0]
    assert unanswering_cloud.requests == []


def test_ask_the_cloud_from_a_chat_turn_opens_the_review(qtbot, unanswering_cloud, window):
    chat = window.chat
    chat.input.setPlainText("My name is Ann Lee. What is a haiku?")
    with qtbot.waitSignal(chat.turn_finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    answer = chat.messages_layout.itemAt(1).widget()
    qtbot.mouseClick(answer.ask_cloud_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.escalations.selected_id() is not None, timeout=TIMEOUT_MS)
    assert window.sections.currentWidget() is window.escalations
    escalation = window.escalations.escalations[window.escalations.selected_id()]
    assert escalation.status == "pending"
    assert "Ann Lee" not in window.escalations.payload_editor.toPlainText()
    assert unanswering_cloud.requests == []


def test_a_provider_set_up_in_the_form_is_used_and_its_key_goes_to_the_keychain(
    qtbot, section, memory_keyring
):
    from engine.escalation import cloud_config_path, load_cloud_config

    qtbot.mouseClick(section.provider_button, Qt.MouseButton.LeftButton)
    form = section.provider_form
    assert not form.isHidden()
    form.preset.setCurrentIndex(form.preset.findData("mistral"))
    assert form.base_url.text() == "https://api.mistral.ai/v1"
    form.price_in.setValue(0.2)
    form.key.setText("sk-form-key-0123456789")
    with qtbot.waitSignal(form.saved):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    config = load_cloud_config()
    assert config.active == "mistral"
    assert config.providers["mistral"].price_in_per_million == 0.2
    assert config.providers["mistral"].price_out_per_million is None
    assert memory_keyring.get_password("understudy", "mistral") == "sk-form-key-0123456789"
    assert form.key.text() == ""
    assert "sk-form-key" not in cloud_config_path().read_text()
