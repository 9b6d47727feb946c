"""The real window, driven through its widgets with pytest-qt.

The chat's logic (streaming, stop, regenerate, edit, the log, routing buttons) runs on the fake model,
which answers from each test's script; one turn runs on the real default model end to end.
"""

from __future__ import annotations

import json

import pytest
from fake_backend import Reply
from PySide6.QtCore import Qt

from app.qt.app import build_window, start_background_work
from app.qt.context import window_state
from app.qt.sections.chat import QtAssistantMessage, QtUserMessage
from engine.agent import Agent
from engine.backends import GenerationOptions, drain
from engine.catalog import load_catalog
from engine.store import Store

TURN_TIMEOUT_MS = 120_000


def ask(qtbot, chat, text: str):
    chat.input.setPlainText(text)
    with qtbot.waitSignal(chat.turn_finished, timeout=TURN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    return finished.args[0]


def messages(chat) -> list:
    layout = chat.messages_layout
    return [layout.itemAt(index).widget() for index in range(layout.count() - 1)]


def log_turns(limit: int = 10) -> list[dict]:
    return query_log(lambda store: store.recent_turns(limit=limit))


def query_log(read):
    """Read the log through a connection of the test's own, as another process would."""
    store = Store.open()
    try:
        return read(store)
    finally:
        store.close()


@pytest.mark.slow
def test_a_real_answer_streams_into_the_view_and_the_log(qtbot, real_window):
    chat = real_window.chat
    pieces: list[str] = []
    chat.input.setPlainText("Name three colours.")
    with qtbot.waitSignal(chat.turn_finished, timeout=TURN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
        chat.current_job.signals.token.connect(pieces.append)
    result = finished.args[0]
    assert result.status == "ok" and result.answer.strip()
    assert "".join(pieces) == result.answer
    answer = messages(chat)[-1]
    assert answer.browser.toPlainText().strip()
    assert "smollm2-135m-instruct" in answer.footer.text() and "tok/s" in answer.footer.text()
    assert log_turns()[0]["answer_text"] == result.answer


def test_an_answer_streams_into_the_view_and_the_log(qtbot, window, fake_model):
    fake_model.script("Red, **green** and blue.")
    chat = window.chat
    result = ask(qtbot, chat, "Name three colours.")
    assert result.status == "ok" and result.answer == "Red, **green** and blue."
    user, answer = messages(chat)
    assert isinstance(user, QtUserMessage) and user.text == "Name three colours."
    assert isinstance(answer, QtAssistantMessage) and answer.markdown == result.answer
    assert answer.browser.toPlainText().strip() == "Red, green and blue."  # Markdown rendered
    assert fake_model.id in answer.footer.text() and "tok/s" in answer.footer.text()
    assert chat.input.toPlainText() == ""
    assert window.speed_status.text().endswith("tok/s")
    [turn] = log_turns()
    assert turn["id"] == result.turn_id and turn["answer_text"] == result.answer


def test_the_first_piece_shows_while_the_model_writes_and_stop_ends_the_answer(qtbot, window, fake_model):
    fake_model.script(Reply("Once upon a time a dragon slept on gold for a thousand years.", hold=True))
    chat = window.chat
    chat.input.setPlainText("Write a very long story about a dragon.")
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    answer = messages(chat)[-1]
    qtbot.waitUntil(lambda: answer.markdown == "Once", timeout=TURN_TIMEOUT_MS)
    assert chat.stop_button.isEnabled() and not chat.send_button.isEnabled()
    with qtbot.waitSignal(chat.turn_finished, timeout=TURN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(chat.stop_button, Qt.MouseButton.LeftButton)
    result = finished.args[0]
    assert result.status == "cancelled"
    assert result.completion.completion_tokens == 1 and result.answer == "Once"
    assert "stopped" in answer.footer.text()
    assert log_turns()[0]["status"] == "cancelled"
    assert chat.send_button.isEnabled() and not chat.stop_button.isEnabled()


def test_regenerate_replaces_the_answer_in_the_view_and_the_log(qtbot, window, fake_model):
    fake_model.script("Hello.", "Hi there.")
    chat = window.chat
    first = ask(qtbot, chat, "Say hello.")
    answer = messages(chat)[-1]
    with qtbot.waitSignal(chat.turn_finished, timeout=TURN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(answer.regenerate_button, Qt.MouseButton.LeftButton)
    second = finished.args[0]
    assert second.conversation_id == first.conversation_id
    assert len(messages(chat)) == 2
    assert messages(chat)[-1].markdown == "Hi there."
    assert fake_model.requests[-1].messages == [{"role": "user", "content": "Say hello."}]
    assert messages(chat)[0].turn_id == second.turn_id
    assert query_log(lambda store: store.db["turns"].get(first.turn_id))["replaced_by"] == second.turn_id
    turns = query_log(lambda store: store.conversation_turns(first.conversation_id))
    assert [turn["id"] for turn in turns] == [second.turn_id]


def test_edit_and_resend_replaces_the_question_and_what_followed(qtbot, window, fake_model):
    chat = window.chat
    first = ask(qtbot, chat, "What is the capital of Frnace?")
    ask(qtbot, chat, "And of Spain?")
    qtbot.mouseClick(messages(chat)[0].edit_button, Qt.MouseButton.LeftButton)
    assert chat.input.toPlainText() == "What is the capital of Frnace?"
    assert chat.edit_banner.isVisible()
    edited = ask(qtbot, chat, "What is the capital of France?")
    assert [m.text for m in messages(chat) if isinstance(m, QtUserMessage)] == [
        "What is the capital of France?"
    ]
    turns = query_log(lambda store: store.conversation_turns(first.conversation_id))
    assert [turn["id"] for turn in turns] == [edited.turn_id]
    assert fake_model.requests[-1].messages == [
        {"role": "user", "content": "What is the capital of France?"}
    ]  # the replaced exchanges are no longer sent


def test_feedback_is_stored_in_the_log(qtbot, window):
    chat = window.chat
    result = ask(qtbot, chat, "Say yes.")
    answer = messages(chat)[-1]
    qtbot.mouseClick(answer.thumbs_up, Qt.MouseButton.LeftButton)

    def rated(expected):
        rows = query_log(
            lambda store: list(
                store.db.query("SELECT rating FROM feedback WHERE turn_id = ?", [result.turn_id])
            )
        )
        assert [row["rating"] for row in rows] == expected

    qtbot.waitUntil(lambda: rated([1]))
    qtbot.mouseClick(answer.thumbs_down, Qt.MouseButton.LeftButton)
    assert not answer.thumbs_up.isChecked()
    qtbot.waitUntil(lambda: rated([-1]))


def test_search_finds_an_old_turn_and_opens_its_conversation(qtbot, window, model_catalog_for_agent):
    agent = Agent(Store.open(), model_catalog_for_agent, generation=GenerationOptions(max_tokens=16))
    old = drain(agent.run_turn("Tell me about the aardvark."))
    drain(agent.run_turn("Tell me about the zebra."))
    chat = window.chat
    conversations = chat.conversation_list.conversations
    qtbot.keyClicks(chat.conversation_list.search_box, "aardvark")
    qtbot.waitUntil(lambda: conversations.count() == 1 and "aardvark" in conversations.item(0).text())
    item = conversations.item(0)
    with qtbot.waitSignal(chat.conversation_loaded, timeout=10_000):
        conversations.itemClicked.emit(item)
    assert chat.conversation_id == old.conversation_id
    assert messages(chat)[0].text == "Tell me about the aardvark."


def test_rename_delete_and_undo(qtbot, window):
    chat = window.chat
    result = ask(qtbot, chat, "Hello there.")
    conversations = chat.conversation_list.conversations
    qtbot.waitUntil(lambda: conversations.count() == 1)
    conversations.item(0).setText("Greetings")
    qtbot.waitUntil(
        lambda: (
            query_log(lambda store: store.db["conversations"].get(result.conversation_id))["title"]
            == "Greetings"
        )
    )

    conversations.setCurrentRow(0)
    qtbot.mouseClick(chat.conversation_list.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: conversations.count() == 0 and window.notifications.isVisible())
    assert window.notifications.action_button.text() == "Undo"
    assert messages(chat) == []
    qtbot.mouseClick(window.notifications.action_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: conversations.count() == 1 and conversations.item(0).text() == "Greetings")


def test_an_engine_error_is_a_notification_and_the_text_is_kept(
    qtbot, window, tmp_path, fake_model, entry_toml
):
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(b"GGUF" + b"\0" * 64)
    fake_model.add_catalog_entries(entry_toml("broken", f'{{ path = "{corrupt}" }}'))
    chat = window.chat
    with qtbot.waitSignal(window.context.catalog_changed):
        window.context.reload_catalog()
    chat.model_picker.setCurrentIndex(chat.model_picker.findData("broken"))
    qtbot.waitUntil(lambda: window.notifications.isVisible())
    assert "broken.gguf" in window.notifications.text()
    chat.input.setPlainText("Please keep this text.")
    with qtbot.waitSignal(chat.turn_failed, timeout=TURN_TIMEOUT_MS) as failed:
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    assert "broken.gguf" in failed.args[0]
    assert window.notifications.isVisible() and window.notifications.kind == "error"
    assert chat.input.toPlainText() == "Please keep this text."
    [turn] = log_turns()
    assert turn["status"] == "error" and turn["user_text"] == "Please keep this text."


def test_export_to_markdown_and_json(qtbot, window, tmp_path):
    chat = window.chat
    result = ask(qtbot, chat, "Name a fruit.")
    markdown, as_json = tmp_path / "c.md", tmp_path / "c.json"
    chat.export_to(markdown, "markdown")
    chat.export_to(as_json, "json")
    qtbot.waitUntil(lambda: markdown.exists() and as_json.exists())
    assert "## You\n\nName a fruit." in markdown.read_text()
    exported = json.loads(as_json.read_text())
    assert exported["turns"][0]["answer_text"] == result.answer


def test_closing_mid_answer_stops_cleanly_and_logs_the_turn(qtbot, window, fake_model):
    fake_model.script(Reply("The lighthouse keeper climbed the stairs every night.", hold=True))
    chat = window.chat
    chat.input.setPlainText("Write a very long story about a lighthouse.")
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    job, answer = chat.current_job, messages(chat)[-1]
    qtbot.waitUntil(lambda: answer.markdown == "The", timeout=TURN_TIMEOUT_MS)
    window.close()
    # close() returned only after the answer stopped and its turn was logged as cancelled.
    assert job.cancel_event.is_set()
    assert log_turns()[0]["status"] == "cancelled"


def test_the_last_conversation_and_geometry_come_back_on_start(qtbot, window):
    result = ask(qtbot, window.chat, "Remember me.")
    window.resize(1000, 700)
    window.close()
    closed_size = window.size()
    assert int(window_state().value("last_conversation")) == result.conversation_id
    from PySide6.QtWidgets import QApplication

    reopened = build_window(QApplication.instance())
    qtbot.addWidget(reopened)
    reopened.show()
    with qtbot.waitSignal(reopened.chat.conversation_loaded, timeout=10_000):
        start_background_work(reopened)
    assert reopened.chat.conversation_id == result.conversation_id
    assert reopened.size() == closed_size
    reopened.close()


@pytest.fixture
def model_catalog_for_agent():
    return load_catalog()


def test_keep_local_and_ask_the_cloud_teach_the_router_and_the_footer_shows_the_route(
    qtbot, window, unanswering_cloud
):
    chat = window.chat
    result = ask(qtbot, chat, "Say yes.")
    answer = messages(chat)[-1]
    assert result.route is not None and result.route.target == "generalist"
    assert "routed to the generalist" in answer.footer.text()
    assert answer.footer.toolTip() == result.route.reason

    def outcome() -> str | None:
        rows = query_log(
            lambda store: list(
                store.db.query(
                    "SELECT outcome FROM route_decisions WHERE turn_id = ? ORDER BY id DESC LIMIT 1",
                    [result.turn_id],
                )
            )
        )
        return rows[0]["outcome"] if rows else None

    qtbot.mouseClick(answer.keep_local_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: outcome() == "user_kept_local")
    with qtbot.waitSignal(chat.escalation_proposed, timeout=TURN_TIMEOUT_MS) as proposed:
        qtbot.mouseClick(answer.ask_cloud_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: outcome() == "user_chose_cloud")
    escalation = query_log(lambda store: store.db["escalations"].get(proposed.args[0]))
    assert escalation["status"] == "pending" and escalation["turn_id"] == result.turn_id
    assert unanswering_cloud.requests == []  # proposed, never sent
