from __future__ import annotations

import json
import sqlite3

import pytest

from engine import paths
from engine.errors import StoreError
from engine.store import ModelCallRecord, Store, TurnRecord
from engine.store import migrations as store_migrations


def a_turn(conversation_id=None, user_text="Name three colours.", answer="Red, green and blue.", **extra):
    return TurnRecord(
        conversation_id=conversation_id,
        user_text=user_text,
        model_id="smollm2-135m-instruct",
        answer_text=answer,
        model_calls=[
            ModelCallRecord(
                model_id="smollm2-135m-instruct",
                backend="llama_cpp",
                messages=[{"role": "user", "content": user_text}],
                response_text=answer,
                prompt_tokens=30,
                completion_tokens=7,
                ttft_ms=120.0,
                duration_ms=200.0,
                decode_tok_s=90.0,
                finish_reason="stop",
            )
        ],
        **extra,
    )


def test_the_database_lives_in_the_data_dir_with_wal_foreign_keys_and_a_busy_timeout(understudy_home):
    store = Store.open()
    assert store.path == understudy_home / "understudy.db" == paths.database_path()
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_migrations_run_from_empty_and_a_second_open_applies_nothing(understudy_home):
    store = Store.open()
    names = [step.__name__ for step in store_migrations.MIGRATIONS]
    assert store_migrations.applied(store.db) == set(names)
    assert {"conversations", "turns", "model_calls", "turns_fts", "_migrations"} <= set(
        store.db.table_names()
    )
    store.close()
    again = Store.open()
    assert store_migrations.migrate(again.db) == []
    assert again.db["_migrations"].count == len(names)


def test_a_failing_migration_leaves_no_trace(monkeypatch):
    def m999_broken(db):
        db.execute("CREATE TABLE half_done (id INTEGER)")
        db.execute("THIS IS NOT SQL")

    with monkeypatch.context() as patched:  # undoes only this patch, not the test's own data dir
        patched.setattr(store_migrations, "MIGRATIONS", [*store_migrations.MIGRATIONS, m999_broken])
        with pytest.raises(StoreError):
            Store.open()
    store = Store.open()
    assert "half_done" not in store.db.table_names()
    assert "m999_broken" not in store_migrations.applied(store.db)


def test_a_turn_and_its_model_calls_are_written_together():
    store = Store.open(":memory:")
    turn_id = store.log_turn(a_turn())
    row = store.db["turns"].get(turn_id)
    assert row["status"] == "ok"
    assert row["user_text"] == "Name three colours."
    call = next(store.db["model_calls"].rows_where("turn_id = ?", [turn_id]))
    assert call["completion_tokens"] == 7
    assert call["ttft_ms"] == 120.0
    assert json.loads(call["messages_json"]) == [{"role": "user", "content": "Name three colours."}]
    assert store.conversation_history(row["conversation_id"]) == [
        {"role": "user", "content": "Name three colours."},
        {"role": "assistant", "content": "Red, green and blue."},
    ]


def test_a_turn_that_cannot_be_written_whole_is_not_written_at_all():
    store = Store.open(":memory:")
    broken = a_turn()
    broken.model_calls[0].finish_reason = object()  # not storable: the insert fails midway
    with pytest.raises((StoreError, sqlite3.Error)):
        store.log_turn(broken)
    assert store.db["turns"].count == 0
    assert store.db["conversations"].count == 0


def test_a_full_disk_is_a_clear_error_and_loses_nothing_already_logged(understudy_home):
    store = Store.open()
    first = store.log_turn(a_turn())
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match="disk is full.*Free some space"):
        store.log_turn(a_turn(user_text="x " * 20000, answer="y " * 20000))
    store.close()
    reopened = Store.open()
    assert [turn["id"] for turn in reopened.recent_turns()] == [first]


def test_full_text_search_finds_words_in_questions_and_answers():
    store = Store.open(":memory:")
    store.log_turn(a_turn(user_text="How do I boil an egg?", answer="Put it in boiling water."))
    store.log_turn(a_turn(user_text="Name three colours.", answer="Red, green and blue."))
    assert [t["user_text"] for t in store.recent_turns(query="egg")] == ["How do I boil an egg?"]
    assert [t["user_text"] for t in store.recent_turns(query="green")] == ["Name three colours."]
    assert store.recent_turns(query='"unbalanced - OR: (') == []


def test_chat_records_are_openai_format_with_the_answer_last():
    store = Store.open(":memory:")
    store.log_turn(a_turn())
    store.log_turn(a_turn(status="error", answer=""))
    records = list(store.iter_chat_records())
    assert records == [
        {
            "messages": [
                {"role": "user", "content": "Name three colours."},
                {"role": "assistant", "content": "Red, green and blue."},
            ]
        }
    ]
