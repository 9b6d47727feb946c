"""Importing OpenAI chat-format history: turns marked imported, context kept, re-imports add nothing."""

from __future__ import annotations

import json

import pytest

from engine.errors import LogImportError
from engine.log_import import import_chat_jsonl
from engine.store import Store


def _write(path, lines: list) -> None:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )


RECORDS = [
    {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Convert 3 miles to km."},
            {"role": "assistant", "content": "4.8 km"},
            {"role": "user", "content": [{"type": "text", "text": "And 5 miles?"}]},
            {"role": "assistant", "content": "8 km"},
            {"role": "user", "content": "Thanks, bye"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Write a haiku"},
            {"role": "assistant", "content": "Leaves fall"},
        ]
    },
    {"messages": [{"role": "user", "content": "Nobody answered this"}]},
]


def test_records_become_conversations_of_imported_turns_with_their_context(tmp_path):
    source = tmp_path / "history.jsonl"
    _write(source, RECORDS)
    store = Store.open()

    result = import_chat_jsonl(store, source)

    assert (result.records, result.turns, result.duplicates, result.empty) == (2, 3, 0, 1)
    turns = list(store.db.query("SELECT * FROM turns ORDER BY id"))
    assert [turn["user_text"] for turn in turns] == [
        "Convert 3 miles to km.",
        "And 5 miles?",
        "Write a haiku",
    ]
    assert [turn["answer_text"] for turn in turns] == ["4.8 km", "8 km", "Leaves fall"]
    assert {(turn["imported"], turn["model_id"], turn["route"], turn["status"]) for turn in turns} == {
        (1, "imported", "imported", "ok")
    }
    assert turns[0]["conversation_id"] == turns[1]["conversation_id"] != turns[2]["conversation_id"]
    seen = json.loads(
        next(
            iter(store.db.query("SELECT messages_json FROM model_calls WHERE turn_id = ?", [turns[1]["id"]]))
        )["messages_json"]
    )
    assert seen == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Convert 3 miles to km."},
        {"role": "assistant", "content": "4.8 km"},
        {"role": "user", "content": "And 5 miles?"},
    ]


def test_importing_the_same_file_again_adds_nothing(tmp_path):
    source = tmp_path / "history.jsonl"
    _write(source, RECORDS)
    store = Store.open()
    import_chat_jsonl(store, source)

    again = import_chat_jsonl(store, source)

    assert (again.records, again.turns, again.duplicates, again.empty) == (0, 0, 2, 1)
    assert store.db["turns"].count == 3


def test_a_malformed_line_stops_the_import_and_names_every_bad_line(tmp_path):
    source = tmp_path / "broken.jsonl"
    _write(
        source, [RECORDS[1], "{not json", {"messages": [{"role": "robot", "content": "x"}]}, {"text": "hi"}]
    )
    store = Store.open()

    with pytest.raises(
        LogImportError, match=r"3 malformed.*line 2: .*line 3: .*known role.*line 4: .*messages"
    ):
        import_chat_jsonl(store, source)
    assert store.db["turns"].count == 0

    result = import_chat_jsonl(store, source, skip_invalid=True)
    assert (result.records, len(result.errors)) == (1, 3)
    assert store.db["turns"].count == 1
