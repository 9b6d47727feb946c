"""Task datasets: which logged turns are kept and why, teacher answers, the user's choices, context,
scrubbing, dedupe, the split."""

from __future__ import annotations

import json

import pytest
from meeting_examples import MEETINGS, answer_values, meeting_examples, personal_values

from engine.errors import TuningError, UnderstudyError
from engine.log_import import import_chat_jsonl
from engine.redact import ScrubSummary
from engine.store import ModelCallRecord, Store, ToolCallRecord, TurnRecord, utc_now
from engine.tuning.datasets import (
    build_from_jsonl,
    build_from_log,
    choose_examples,
    dataset_examples,
    load_dataset,
    named_task,
    read_records,
)

MODEL = "smollm2-135m-instruct"


@pytest.fixture
def store():
    store = Store.open()
    yield store
    store.close()


def log_turn(
    store, conversation_id, user_text, answer_text, task_id=None, rating=None, finish_reason="stop", **fields
) -> int:
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
                    finish_reason=finish_reason,
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


def add_teacher_example(store, task_type: str, question: str, answer: str, turn_id=None) -> int:
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
    return escalation_id


def examples_in(dataset) -> list[list[dict]]:
    return read_records(dataset.train_path) + read_records(dataset.val_path)


def answers_in(dataset) -> set[str]:
    return {messages[-1]["content"] for messages in examples_in(dataset)}


def verdicts(store, task) -> dict[str, tuple[bool, str, str]]:
    """Each candidate's answer: whether it is in, its category and its reason."""
    return {e.answer: (e.included, e.category, e.reason) for e in dataset_examples(store, task)}


def test_teacher_and_accepted_answers_are_kept_and_negative_signals_left_out(store):
    task = named_task(store, "Unit conversion")
    other = named_task(store, "poems")
    first = store.create_conversation("units")
    log_turn(store, first, "How many cm in an inch?", "2.54 cm.", task, rating=1)
    log_turn(store, first, "And in a foot?", "30.48 cm.", task)
    log_turn(store, first, "And in a yard?", "Bad answer.", task, rating=-1)
    log_turn(store, first, "And in a mile?", "160934 cm.", task)  # last and unrated: still accepted
    second = store.create_conversation("more units")
    replaced = log_turn(store, second, "Feet in a metre?", "Wrong first try.", task)
    log_turn(store, second, "Feet in a metre?", "About 3.28 feet.", task, rating=1, replaces=[replaced])
    edited = log_turn(store, second, "Inches in a metre", "Unclear ask.", task)
    log_turn(store, second, "Inches in a metre?", "About 39.37 in.", task, replaces=[edited])
    asked = log_turn(store, second, "Miles in a league?", "No idea.", task)
    asked_escalation = add_teacher_example(store, "unit conversion", "Miles in a league?", "3 miles.", asked)
    failed_tool = ToolCallRecord("convert", "{}", "low", "allowed", "policy", error="unit unknown")
    log_turn(store, second, "Knots in km/h?", "1.852 km/h.", task, tool_calls=[failed_tool])
    log_turn(store, second, "A poem please", "Roses are red.", other, rating=1)  # another task
    teacher = add_teacher_example(store, "unit conversion", "Grams in a pound?", "About 453.6 g.")
    add_teacher_example(store, "poems", "A haiku?", "Old pond, frog.")

    seen = verdicts(store, task)

    assert seen["About 453.6 g."] == (True, "teacher", f"teacher: escalation #{teacher} (p:m)")
    assert seen["3 miles."] == (True, "teacher", f"teacher: escalation #{asked_escalation} (p:m)")
    assert seen["2.54 cm."] == (True, "rated_up", "accepted: rated up")
    accepted = "accepted: local answer, no negative signal, as long as the teacher's answers"
    for answer in ("30.48 cm.", "160934 cm.", "About 39.37 in."):
        assert seen[answer] == (True, "accepted", accepted)
    assert seen["Bad answer."] == (False, "rated_down", "rated down")
    assert seen["Wrong first try."][:2] == (False, "replaced")
    assert seen["Wrong first try."][2].startswith("regenerated")
    assert seen["Unclear ask."][2].startswith("edited and resent")
    assert seen["No idea."] == (
        False, "asked_cloud", f"the cloud was asked instead (escalation #{asked_escalation})"
    )  # fmt: skip
    assert seen["1.852 km/h."] == (False, "tool_failed", "a tool call failed (convert: unit unknown)")
    assert "Roses are red." not in seen and "Old pond, frog." not in seen

    dataset = build_from_log(store, task_id=task, min_examples=3)

    assert answers_in(dataset) == {answer for answer, (included, *_) in seen.items() if included}
    source = json.loads(next(store.db.query("SELECT source_json FROM datasets"))["source_json"])
    assert source["kept"] == {"teacher": 2, "rated_up": 2, "accepted": 3}
    assert source["left_out"] == {"replaced": 2, "rated_down": 1, "asked_cloud": 1, "tool_failed": 1}
    assert load_dataset(store, dataset.id).sha256 == dataset.sha256


def import_teacher_history(store, tmp_path, task, answers: list[str], model="gpt-4o") -> None:
    """Imported conversations answered by a teacher model, assigned to ``task``."""
    file = tmp_path / "history.jsonl"
    file.write_text(
        "".join(
            json.dumps({"model": model, "messages": chat(f"Extract the invoice {number}", answer)}) + "\n"
            for number, answer in enumerate(answers)
        )
    )
    import_chat_jsonl(store, file)
    with store.transaction():
        store.db.execute("UPDATE turns SET cluster_id = ? WHERE imported = 1", [task])


def test_an_imported_teacher_history_without_ratings_is_a_dataset(store, tmp_path):
    task = named_task(store, "invoices")
    answers = [json.dumps({"number": number, "total": number * 7}) for number in range(60)]
    import_teacher_history(store, tmp_path, task, answers)

    dataset = build_from_log(store, task)

    assert dataset.n_train + dataset.n_val == 60
    assert dataset.source["kept"] == {"teacher": 60} and dataset.source["left_out"] == {}
    reasons = {example.reason for example in dataset_examples(store, task)}
    assert reasons == {"teacher: imported from gpt-4o"}


def test_local_answers_must_look_like_the_teachers_json(store, tmp_path):
    task = named_task(store, "invoices")
    import_teacher_history(
        store, tmp_path, task, ['{"number": 1, "total": 7}', '{"number": 2, "total": 14}', "not JSON"]
    )
    conversation = store.create_conversation("local")
    log_turn(store, conversation, "Extract invoice 10", '{"number": 10, "total": 70}', task)
    log_turn(store, conversation, "Extract invoice 11", "Invoice 11 totals 77.", task)
    log_turn(store, conversation, "Extract invoice 12", '{"invoice": 12}', task)
    log_turn(store, conversation, "Extract invoice 13", '{"number": 13, "to', task, finish_reason="length")
    log_turn(store, conversation, "Extract invoice 10", '{"number": 10, "total": 70}', task)

    seen = {e.turn_id: (e.included, e.category, e.reason) for e in dataset_examples(store, task)}
    local = sorted(seen)[-5:]

    assert seen[local[0]] == (
        True, "accepted", "accepted: local answer, no negative signal, valid JSON, the teacher's shape"
    )  # fmt: skip
    assert seen[local[1]] == (False, "invalid_json", "not valid JSON, and the teacher's answers are")
    assert seen[local[2]] == (False, "wrong_shape", "JSON shaped {invoice}, the teacher's {number, total}")
    assert seen[local[3]][:2] == (False, "cut_at_limit")
    assert seen[local[4]] == (False, "near_duplicate", f"a near-duplicate of turn {local[0]}")


def test_plain_local_answers_must_be_about_as_long_as_the_teachers(store, tmp_path):
    task = named_task(store, "summaries")
    import_teacher_history(
        store, tmp_path, task, ["A summary of forty characters, or near.", "Short one here."]
    )
    conversation = store.create_conversation("local")
    fine = log_turn(store, conversation, "Summarise this", "A fair summary of the text.", task)
    long = log_turn(store, conversation, "Summarise that", "word " * 40, task)

    seen = {e.turn_id: e for e in dataset_examples(store, task)}

    assert seen[fine].included and seen[fine].category == "accepted"
    assert (seen[long].included, seen[long].category) == (False, "wrong_shape")
    assert seen[long].reason == "200 characters, the teacher's answers take 7-78"


def test_the_users_choices_change_the_next_build(store, tmp_path):
    task = named_task(store, "invoices")
    answers = [json.dumps({"number": number, "total": number * 7}) for number in range(12)]
    import_teacher_history(store, tmp_path, task, answers)
    conversation = store.create_conversation("local")
    rejected = log_turn(store, conversation, "Extract invoice 40", "no", task, rating=-1)
    first_imported = min(e.turn_id for e in dataset_examples(store, task) if e.source == "import")

    choose_examples(store, task, included=False, turn_id=first_imported)
    choose_examples(store, task, included=True, turn_id=rejected)
    chosen = {e.turn_id: e for e in dataset_examples(store, task)}
    dataset = build_from_log(store, task)

    assert (chosen[first_imported].included, chosen[first_imported].reason) == (False, "excluded by you")
    assert chosen[rejected].included
    assert chosen[rejected].reason == "included by you; the rules left it out: rated down"
    assert dataset.n_train + dataset.n_val == 12 and "no" in answers_in(dataset)

    choose_examples(store, task, included=False, source="import")
    assert [e.turn_id for e in dataset_examples(store, task) if e.included] == [rejected]
    with pytest.raises(TuningError, match=r"Only 1 usable example .*12 excluded by user"):
        build_from_log(store, task)

    choose_examples(store, task, included=True, source="import")
    rebuilt = build_from_log(store, task)
    assert rebuilt.n_train + rebuilt.n_val == 12
    with pytest.raises(TuningError, match="one of escalation, cloud, import, local"):
        choose_examples(store, task, included=False, source="everything")


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
