"""Task datasets: which logged turns are kept, teacher answers, context, scrubbing, dedupe, the split."""

from __future__ import annotations

import json

import pytest

from engine.errors import TuningError, UnderstudyError
from engine.redact import ScrubSummary
from engine.store import ModelCallRecord, Store, TurnRecord, utc_now
from engine.tuning.datasets import (
    build_from_jsonl,
    build_from_log,
    load_dataset,
    named_task,
    read_records,
)
from tests.support.meeting_examples import MEETINGS, answer_values, meeting_examples, personal_values

MODEL = "smollm2-135m-instruct"


@pytest.fixture
def store():
    store = Store.open()
    yield store
    store.close()


def log_turn(store, conversation_id, user_text, answer_text, task_id=None, rating=None, **fields) -> int:
    turn_id = store.log_turn(
        TurnRecord(
            conversation_id=conversation_id,
            user_text=user_text,
            model_id=MODEL,
            answer_text=answer_text,
            model_calls=[
                ModelCallRecord(
                    model_id=MODEL,
                    backend="llama_cpp",
                    messages=[
                        {"role": "system", "content": "Answer briefly."},
                        {"role": "user", "content": user_text},
                    ],
                )
            ],
            **fields,
        )
    )
    with store.transaction():
        store.db.execute("UPDATE turns SET cluster_id = ? WHERE id = ?", [task_id, turn_id])
    if rating is not None:
        store.set_feedback(turn_id, rating)
    return turn_id


def add_teacher_example(store, task_type: str, question: str, answer: str, turn_id=None) -> None:
    payload = {"model": "m", "messages": [{"role": "user", "content": question}]}
    with store.transaction():
        escalation_id = store.insert(
            "escalations",
            {
                "turn_id": turn_id,
                "created_utc": utc_now(),
                "status": "sent",
                "reason": "test",
                "task_type": task_type,
                "provider": "p",
                "model": "m",
                "user_text": question,
                "payload_json": json.dumps(payload),
            },
        )
        store.insert(
            "teacher_examples",
            {
                "escalation_id": escalation_id,
                "task_type": task_type,
                "request_text": question,
                "payload_json": json.dumps(payload),
                "answer_text": answer,
                "created_utc": utc_now(),
            },
        )


def examples_in(dataset) -> list[list[dict]]:
    return read_records(dataset.train_path) + read_records(dataset.val_path)


def answers_in(dataset) -> set[str]:
    return {messages[-1]["content"] for messages in examples_in(dataset)}


def test_the_log_gives_rated_up_and_accepted_turns_and_teacher_answers(store):
    task = named_task(store, "Unit conversion")
    other = named_task(store, "poems")
    first = store.create_conversation("units")
    log_turn(store, first, "How many cm in an inch?", "2.54 cm.", task, rating=1)  # rated up
    log_turn(store, first, "And in a foot?", "30.48 cm.", task)  # accepted: the user went on
    log_turn(store, first, "And in a yard?", "Bad answer.", task, rating=-1)  # rated down
    log_turn(store, first, "And in a mile?", "160934 cm.", task)  # last and unrated: not kept
    second = store.create_conversation("more units")
    replaced = log_turn(store, second, "Feet in a metre?", "Wrong first try.", task)
    log_turn(store, second, "Feet in a metre?", "About 3.28 feet.", task, rating=1, replaces=[replaced])
    log_turn(store, second, "A poem please", "Roses are red.", other, rating=1)  # another task
    add_teacher_example(store, "unit conversion", "Grams in a pound?", "About 453.6 g.")
    add_teacher_example(store, "poems", "A haiku?", "Old pond, frog.")

    dataset = build_from_log(store, task_id=task, min_examples=3)

    assert answers_in(dataset) == {"2.54 cm.", "30.48 cm.", "About 3.28 feet.", "About 453.6 g."}
    assert dataset.n_train + dataset.n_val == 4 and dataset.n_val >= 1
    source = json.loads(next(store.db.query("SELECT source_json FROM datasets"))["source_json"])
    assert source["rated_up"] == 2 and source["accepted"] == 1 and source["rated_down"] == 1
    assert source["not_kept"] == 1 and source["teacher_examples"] == 1
    assert load_dataset(store, dataset.id).sha256 == dataset.sha256


def test_an_example_carries_its_system_prompt_and_recent_context(store):
    task = named_task(store, "units")
    conversation = store.create_conversation("units")
    log_turn(store, conversation, "How many cm in an inch?", "2.54 cm.", task, rating=1)
    log_turn(store, conversation, "And in a foot?", "30.48 cm.", task, rating=1)

    follow_up = next(m for m in examples_in(build_from_log(store, task, min_examples=2)) if len(m) > 3)

    assert follow_up == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "How many cm in an inch?"},
        {"role": "assistant", "content": "2.54 cm."},
        {"role": "user", "content": "And in a foot?"},
        {"role": "assistant", "content": "30.48 cm."},
    ]


def test_conversations_can_be_selected_instead_of_a_task(store):
    chosen = store.create_conversation("a")
    ignored = store.create_conversation("b")
    for number in range(3):
        log_turn(store, chosen, f"question {number}", f"answer {number}", rating=1)
        log_turn(store, ignored, f"other {number}", f"other answer {number}", rating=1)

    dataset = build_from_log(store, conversation_ids=[chosen], min_examples=3)

    assert answers_in(dataset) == {"answer 0", "answer 1", "answer 2"}


def test_no_raw_identifier_or_key_reaches_the_training_files(store):
    task = named_task(store, "support")
    conversation = store.create_conversation("support")
    secrets = {
        "anna.schmidt@example.com": "EMAIL",
        "+44 20 7946 0958": "PHONE",
        "4111 1111 1111 1111": "CARD",
        "DE89 3704 0044 0532 0130 00": "IBAN",
        "sk-proj-4fG7hJ2kL9mN3pQ8rS5tV1wX6yZ0aB": "SECRET",
    }
    for number, (value, _kind) in enumerate(secrets.items()):
        log_turn(store, conversation, f"Store {value} for case {number}", f"Saved {value}.", task, rating=1)

    dataset = build_from_log(store, task, min_examples=5)

    text = dataset.train_path.read_text() + dataset.val_path.read_text()
    for value in secrets:
        assert value not in text
    for kind in ("CARD", "IBAN", "SECRET"):
        assert f"[{kind}]" in text
    assert "[EMAIL" not in text and "[PHONE" not in text  # faked, not bracketed
    # Counted per example, and each example carries the two exchanges before it as context.
    assert dataset.source["redaction"] == {
        "examples": 5,
        "examples_changed": 5,
        "surrogates": {"EMAIL": 3, "PHONE": 3},
        "secrets_removed": {"CARD": 3, "IBAN": 2, "SECRET": 1},
        "dropped": 0,
    }


def test_a_meeting_dataset_stays_learnable_and_records_what_was_replaced(tmp_path, store):
    file = tmp_path / "meetings.jsonl"
    records = []
    for system, email, answer in meeting_examples():
        messages = [{"role": "system", "content": system}, *chat(email, answer)]
        records.append(json.dumps({"messages": messages}) + "\n")
    file.write_text("".join(records))

    dataset = build_from_jsonl(store, file, min_examples=10)
    rebuilt = build_from_jsonl(store, file, min_examples=10)

    assert rebuilt.sha256 == dataset.sha256
    text = dataset.train_path.read_text() + dataset.val_path.read_text()
    for meeting in MEETINGS:
        for real in personal_values(meeting):
            assert real not in text
    for messages in examples_in(dataset):
        email, answer = messages[-2]["content"], messages[-1]["content"]
        assert [value for value in answer_values(json.loads(answer)) if value not in email] == []
    summary = ScrubSummary(**load_dataset(store, dataset.id).source["redaction"])
    assert summary.examples == summary.examples_changed == len(MEETINGS) and summary.dropped == 0
    assert summary.surrogates["EMAIL"] == len(MEETINGS) and summary.secrets_removed == {}


def test_duplicates_are_dropped_after_normalising_case_and_spaces(tmp_path, store):
    file = tmp_path / "examples.jsonl"
    rows = [("What is 2+2?", "4"), ("what is  2+2?", "4"), ("What is 3+3?", "6"), ("What is 4+4?", "8")]
    file.write_text("".join(json.dumps({"messages": chat(q, a)}) + "\n" for q, a in rows))

    dataset = build_from_jsonl(store, file, min_examples=3)

    assert dataset.n_train + dataset.n_val == 3
    assert dataset.source["duplicates_dropped"] == 1


def chat(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def write_examples(path, count: int) -> None:
    path.write_text(
        "".join(json.dumps({"messages": chat(f"question {i}", f"answer {i}")}) + "\n" for i in range(count))
    )


def test_the_split_is_seeded_and_keeps_about_a_seventh_for_validation(tmp_path, store):
    file = tmp_path / "examples.jsonl"
    write_examples(file, 40)

    first = build_from_jsonl(store, file, seed=0)
    again = build_from_jsonl(store, file, seed=0)
    reseeded = build_from_jsonl(store, file, seed=1)

    assert (first.id, first.sha256) == (again.id, again.sha256)
    assert first.val_path.read_text() == again.val_path.read_text()
    assert reseeded.sha256 != first.sha256 and reseeded.n_val == first.n_val == 6
    assert first.n_train == 34
    assert set(answers_in(first)) == set(answers_in(reseeded))
    assert first.folder.parent.name == "datasets" and first.folder.name == first.sha256[:16]


def test_too_few_examples_are_refused_with_what_to_do(store):
    task = named_task(store, "rare")
    conversation = store.create_conversation("rare")
    log_turn(store, conversation, "q1", "a1", task, rating=1)
    log_turn(store, conversation, "q2", "a2", task, rating=-1)

    with pytest.raises(TuningError, match=r"Only 1 usable example .*1 rated down.*at least 10") as raised:
        build_from_log(store, task)

    assert isinstance(raised.value, UnderstudyError)
    assert "--dataset" in str(raised.value)
    assert not list(store.db.query("SELECT * FROM datasets"))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "line 3 is not JSON"),
        ('{"messages": "hello"}', 'line 3: expected an object with a "messages" list'),
        ('{"messages": [{"role": "robot", "content": "x"}]}', 'line 3: message 1 needs a "role"'),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "line 3: the last message must be the"),
        ('{"messages": [{"role": "assistant", "content": "hi"}]}', "line 3: there is no user message"),
    ],
)
def test_a_malformed_jsonl_line_is_named(tmp_path, store, line, problem):
    file = tmp_path / "broken.jsonl"
    good = json.dumps({"messages": chat("q", "a")})
    file.write_text(f"{good}\n\n{line}\n{good}\n")

    with pytest.raises(TuningError) as raised:
        build_from_jsonl(store, file)

    assert problem in str(raised.value)
    assert str(file) in str(raised.value)


def test_named_tasks_are_found_again_whatever_the_case(store):
    first = named_task(store, "Invoice  JSON")

    assert named_task(store, "invoice json") == first
    assert named_task(store, "emails") != first
    with pytest.raises(TuningError):
        named_task(store, "   ")
