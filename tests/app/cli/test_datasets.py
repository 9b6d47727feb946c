"""`understudy datasets show|include|exclude`: review a task's dataset and change the next build."""

from __future__ import annotations

import json

from click.testing import CliRunner

from app.main import cli
from engine.log_import import import_chat_jsonl
from engine.store import Store
from engine.tuning.datasets import build_from_log, named_task


def understudy(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result


def imported_task(tmp_path) -> tuple[int, list[int]]:
    """A task of twelve imported teacher answers; its id and the turns' ids."""
    store = Store.open()
    task_id = named_task(store, "invoices")
    file = tmp_path / "history.jsonl"
    file.write_text(
        "".join(
            json.dumps(
                {
                    "model": "gpt-4o",
                    "messages": [
                        {"role": "user", "content": f"Extract the invoice {number}"},
                        {"role": "assistant", "content": json.dumps({"number": number})},
                    ],
                }
            )
            + "\n"
            for number in range(12)
        )
    )
    import_chat_jsonl(store, file)
    with store.transaction():
        store.db.execute("UPDATE turns SET cluster_id = ?", [task_id])
    return task_id, [row["id"] for row in store.db.query("SELECT id FROM turns ORDER BY id")]


def test_show_lists_each_example_with_its_source_and_reason(tmp_path):
    task_id, turn_ids = imported_task(tmp_path)

    shown = [
        json.loads(line)
        for line in understudy("datasets", "show", str(task_id), "--json").output.splitlines()
    ]
    text = understudy("datasets", "show", str(task_id)).output

    assert [example["turn_id"] for example in shown] == turn_ids
    assert shown[0] == {
        "turn_id": turn_ids[0],
        "escalation_id": None,
        "source": "import",
        "included": True,
        "category": "teacher",
        "reason": "teacher: imported from gpt-4o",
        "question": "Extract the invoice 0",
        "answer": '{"number": 0}',
    }
    assert f"in  turn {turn_ids[0]}" in text and "teacher: imported from gpt-4o" in text


def test_exclude_and_include_change_the_next_build(tmp_path):
    task_id, turn_ids = imported_task(tmp_path)

    said = understudy("datasets", "exclude", str(task_id), str(turn_ids[0])).output
    understudy("datasets", "exclude", str(task_id), "--source", "import")
    left_out = understudy("datasets", "show", str(task_id), "--left-out", "--json").output.splitlines()

    assert f"Turn {turn_ids[0]} will be left out of task {task_id}'s next dataset." in said
    assert {json.loads(line)["reason"] for line in left_out} == {
        "excluded by you",
        "excluded by you (all of source 'import')",
    }
    assert "next dataset has no examples" in understudy("datasets", "show", str(task_id)).output

    understudy("datasets", "include", str(task_id), "--source", "import")
    dataset = build_from_log(Store.open(), task_id)
    assert dataset.n_train + dataset.n_val == 11

    understudy("datasets", "include", str(task_id), str(turn_ids[0]))
    dataset = build_from_log(Store.open(), task_id)
    assert dataset.n_train + dataset.n_val == 12


def test_a_choice_needs_one_target_and_a_known_turn(tmp_path):
    task_id, _turn_ids = imported_task(tmp_path)

    assert "say which examples" in understudy("datasets", "exclude", str(task_id), code=2).output
    missing = understudy("datasets", "exclude", str(task_id), "9999", code=1).output
    assert "There is no turn 9999" in missing
