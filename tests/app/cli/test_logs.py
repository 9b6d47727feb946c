"""`understudy logs import` and `logs rate`, run as a user runs them, read back through `logs --json`."""

from __future__ import annotations

import json

from understudy_command import run_understudy


def _ok(*args: str) -> str:
    result = run_understudy(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _record(request: str, **fields) -> dict:
    return {
        **fields,
        "messages": [{"role": "user", "content": request}, {"role": "assistant", "content": "ok"}],
    }


def test_import_keeps_repeats_marks_teacher_answers_and_rating_shows_in_the_log(tmp_path):
    cloud, own = tmp_path / "cloud.jsonl", tmp_path / "own.jsonl"
    cloud.write_text("".join(json.dumps(_record(f"Label ticket {n % 2}")) + "\n" for n in range(3)), "utf-8")
    own.write_text(json.dumps(_record("Sum 2 and 2", id="c-9", model="gpt-4o-mini")) + "\n", "utf-8")

    imported = _json_lines(_ok("logs", "import", "--jsonl", str(cloud), "--teacher", "gpt-4o", "--json"))[0]
    again = _json_lines(_ok("logs", "import", "--jsonl", str(cloud), "--teacher", "gpt-4o", "--json"))[0]
    assert "1 answered by a teacher" in _ok("logs", "import", "--jsonl", str(own))
    assert (imported["records"], imported["distinct_requests"], imported["teacher_turns"]) == (3, 2, 3)
    assert (again["records"], again["duplicates"]) == (0, 3)

    assert _ok("logs", "rate", "2", "bad", "--comment", "wrong label").strip() == "Turn 2: bad"
    turns = _json_lines(_ok("logs", "--json", "-n", "10"))
    assert [turn["provenance"] for turn in turns] == [
        {"source": "import", "answer_model": "gpt-4o", "teacher": True, "file": str(cloud), "line": line}
        for line in (1, 2, 3)
    ] + [{"source": "import", "answer_model": "gpt-4o-mini", "teacher": True, "file": str(own), "line": 1}]
    assert [(turn["rating"], turn["rating_comment"]) for turn in turns] == [
        (None, None),
        (-1, "wrong label"),
        (None, None),
        (None, None),
    ]


def test_rating_a_missing_turn_or_with_a_wrong_word_is_one_clear_line():
    for args, message in [
        (("logs", "rate", "42", "good"), "Error: there is no turn 42"),
        (("logs", "rate", "42", "meh"), "Error: a rating is good or bad, not 'meh'"),
    ]:
        result = run_understudy(*args)
        assert result.returncode == 1
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
