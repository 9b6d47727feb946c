"""Importing OpenAI chat-format history: turns marked imported, context kept, every repeat kept,
re-imports add nothing, and where each answer came from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.errors import LogImportError
from engine.log_import import import_chat_jsonl
from engine.store import Store, TurnProvenance, TurnRecord
from engine.store import migrations as store_migrations


def _write(path: Path, lines: list) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


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


def _triage(request: int, **fields) -> dict:
    return {
        **fields,
        "messages": [
            {"role": "user", "content": f"Triage ticket {request}: the printer is on fire"},
            {"role": "assistant", "content": "urgent"},
        ],
    }


def test_every_repeated_request_is_kept_and_counted_and_a_reimport_adds_nothing(tmp_path):
    source = tmp_path / "triage.jsonl"
    _write(source, [_triage(index % 48) for index in range(200)])
    store = Store.open()

    result = import_chat_jsonl(store, source)
    again = import_chat_jsonl(store, source)

    assert (result.records, result.turns, result.distinct_requests, result.duplicates) == (200, 200, 48, 0)
    assert (again.records, again.turns, again.duplicates) == (0, 0, 200)
    repeats = store.db.execute("SELECT COUNT(*) FROM turns GROUP BY user_text ORDER BY 1").fetchall()
    assert (len(repeats), sum(count for (count,) in repeats)) == (48, 200)
    assert {count for (count,) in repeats} == {4, 5}


def test_a_grown_or_reexported_log_adds_only_its_new_lines_and_another_log_loses_nothing(tmp_path):
    store = Store.open()
    import_chat_jsonl(store, _write(tmp_path / "monday.jsonl", [_triage(1), _triage(2), _triage(1)]))

    grown = import_chat_jsonl(
        store, _write(tmp_path / "export.jsonl", [_triage(1), _triage(2), _triage(1), _triage(1)])
    )
    other = import_chat_jsonl(store, _write(tmp_path / "tuesday.jsonl", [_triage(3), _triage(2)]))

    assert (grown.records, grown.duplicates) == (1, 3)
    assert (other.records, other.duplicates) == (2, 0)
    assert store.db["turns"].count == 6


def test_an_id_names_a_record_wherever_it_moves_but_only_with_its_own_content(tmp_path):
    store = Store.open()
    first = [_triage(1, id="call-1"), _triage(1, id="call-2"), _triage(2, id=7)]
    import_chat_jsonl(store, _write(tmp_path / "log.jsonl", first))

    rotated = import_chat_jsonl(
        store,
        _write(
            tmp_path / "rotated.jsonl", [_triage(2, id=7), _triage(1, id="call-2"), _triage(1, id="call-2")]
        ),
    )
    other_tool = import_chat_jsonl(store, _write(tmp_path / "other.jsonl", [_triage(5, id=7)]))

    assert (rotated.records, rotated.duplicates) == (0, 3)
    assert (other_tool.records, other_tool.duplicates) == (1, 0)
    assert store.db["turns"].count == 4


def test_the_teacher_flag_or_the_record_model_is_kept_as_each_turn_provenance(tmp_path):
    store = Store.open()
    import_chat_jsonl(store, _write(tmp_path / "cloud.jsonl", [_triage(1)]), teacher="gpt-4o")
    models = [_triage(2, model="claude-3-5-sonnet"), _triage(3, model="smollm2-135m-instruct"), _triage(4)]
    result = import_chat_jsonl(store, _write(tmp_path / "models.jsonl", models))
    live = store.log_turn(TurnRecord(conversation_id=None, user_text="Hi", model_id="smollm2-135m-instruct"))

    provenance = store.turn_provenance([1, 2, 3, 4, live, 999])

    assert result.teacher_turns == 1
    assert provenance == {
        1: TurnProvenance("import", "gpt-4o", True, str(tmp_path / "cloud.jsonl"), 1),
        2: TurnProvenance("import", "claude-3-5-sonnet", True, str(tmp_path / "models.jsonl"), 1),
        3: TurnProvenance("import", "smollm2-135m-instruct", False, str(tmp_path / "models.jsonl"), 2),
        4: TurnProvenance("import", None, False, str(tmp_path / "models.jsonl"), 3),
        live: TurnProvenance("live", "smollm2-135m-instruct", False),
    }


def test_a_bad_id_or_model_or_encoding_is_named_and_nothing_is_lost(tmp_path):
    source = _write(tmp_path / "odd.jsonl", [_triage(1), _triage(2, id=[1]), _triage(3, model=4), _triage(1)])
    store = Store.open()

    with pytest.raises(LogImportError, match=r"2 malformed.*line 2: its \"id\".*line 3: its \"model\""):
        import_chat_jsonl(store, source)
    assert import_chat_jsonl(store, source, skip_invalid=True).records == 2

    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(_triage(1)).replace("fire", "feu \xe9").encode("latin-1"))
    with pytest.raises(LogImportError, match="not UTF-8"):
        import_chat_jsonl(store, latin)
    assert store.db["turns"].count == 2


def test_records_imported_before_identities_are_still_recognised(tmp_path, monkeypatch):
    source = _write(tmp_path / "old.jsonl", [_triage(1), _triage(1)])
    until_m009 = [step for step in store_migrations.MIGRATIONS if step.__name__ != "m010_import_identity"]
    with monkeypatch.context() as patch:  # its own undo: the test's data dir stays set
        patch.setattr(store_migrations, "MIGRATIONS", until_m009)
        old = Store.open()  # as the import before m010 left it: the repeat on line 2 dropped
    turn = TurnRecord(None, "Triage ticket 1: the printer is on fire", "imported", "urgent")
    turn_id = old.log_turn(turn)
    sha256 = hashlib.sha256(json.dumps(_triage(1), sort_keys=True).encode()).hexdigest()
    with old.transaction():
        old.db.execute("UPDATE turns SET imported = 1 WHERE id = ?", [turn_id])
        old.insert(
            "imported_records",
            {
                "sha256": sha256,
                "conversation_id": turn.conversation_id,
                "source": str(source),
                "line": 1,
                "created_utc": "2025-01-01T00:00:00.000+00:00",
            },
        )
    old.close()
    store = Store.open()

    result = import_chat_jsonl(store, source)

    assert (result.records, result.duplicates) == (1, 1)
    assert store.turn_provenance([turn_id])[turn_id] == TurnProvenance("import", None, False, str(source), 1)
