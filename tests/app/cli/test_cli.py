"""The real `understudy` command in a subprocess, in a temp data dir.

Chat and log commands run on the fake model (registered in the subprocess too, answering from the
test's script); one chat and the decode benchmark run on the real default model.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from understudy_command import run_understudy


def understudy(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = run_understudy(*args, stdin=stdin)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.mark.slow
def test_chat_streams_a_real_answer_and_logs_show_it_with_timings():
    chat = understudy("chat", "--max-tokens", "24", "Name three colours.")
    assert chat.stdout.strip()
    assert "smollm2-135m-instruct" in chat.stderr and "tok/s" in chat.stderr

    [turn] = json_lines(understudy("logs", "--json", "-n", "1").stdout)
    assert turn["user_text"] == "Name three colours."
    assert turn["answer_text"].strip() == chat.stdout.strip()
    [call] = turn["model_calls"]
    assert call["ttft_ms"] > 0 and call["decode_tok_s"] > 0 and call["completion_tokens"] > 0


def test_chat_streams_the_answer_and_logs_show_it(fake_model):
    fake_model.script("Red, green and blue.")
    chat = understudy("chat", "--max-tokens", "24", "Name three colours.")
    assert chat.stdout == "Red, green and blue.\n"
    assert fake_model.id in chat.stderr and "4 tokens" in chat.stderr and "tok/s" in chat.stderr

    [turn] = json_lines(understudy("logs", "--json", "-n", "1").stdout)
    assert turn["user_text"] == "Name three colours."
    assert turn["answer_text"] == "Red, green and blue."
    [call] = turn["model_calls"]
    assert call["model_id"] == fake_model.id and call["completion_tokens"] == 4
    assert [request.options["max_tokens"] for request in fake_model.requests] == [24]


def test_chat_json_streams_tokens_and_ends_with_the_turn_record(fake_model):
    records = json_lines(understudy("chat", "--json", "--max-tokens", "16", "Say hello.").stdout)
    tokens, final = records[:-1], records[-1]
    assert tokens and all(record["event"] == "token" for record in tokens)
    assert final["event"] == "turn"
    for key in ("turn_id", "model_id", "prompt_tokens", "completion_tokens", "ttft_ms", "decode_tok_s"):
        assert final[key] is not None, key
    assert final["answer"] == "".join(record["text"] for record in tokens)


def test_continue_and_the_piped_repl_stay_in_one_conversation(fake_model):
    first = json_lines(understudy("chat", "--json", "--max-tokens", "8", "Hello.").stdout)[-1]
    second = json_lines(understudy("chat", "-c", "--json", "--max-tokens", "8", "Again.").stdout)[-1]
    assert second["conversation_id"] == first["conversation_id"]
    repl = json_lines(
        understudy("chat", "--json", "--max-tokens", "8", stdin="One.\n\nTwo.\n/new\nThree.\n").stdout
    )
    turns = [record for record in repl if record["event"] == "turn"]
    assert len(turns) == 3
    assert turns[0]["conversation_id"] == turns[1]["conversation_id"] != turns[2]["conversation_id"]
    two = fake_model.requests[3]  # the REPL's second turn is sent with its first exchange
    assert [message["content"] for message in two.messages] == ["One.", "Echo: One.", "Two."]


def test_logs_search_and_export_produce_chat_jsonl(fake_model, tmp_path):
    understudy("chat", "--max-tokens", "8", "Tell me about volcanoes.")
    understudy("chat", "--max-tokens", "8", "Tell me about glaciers.")
    found = json_lines(understudy("logs", "--json", "-q", "volcanoes").stdout)
    assert [turn["user_text"] for turn in found] == ["Tell me about volcanoes."]
    assert "Tell me about glaciers." in understudy("logs", "-n", "5").stdout

    export = tmp_path / "chat.jsonl"
    understudy("logs", "export", "--jsonl", str(export))
    records = json_lines(export.read_text())
    assert len(records) == 2
    for record in records:
        roles = [message["role"] for message in record["messages"]]
        assert roles[-2:] == ["user", "assistant"]
        assert all(isinstance(message["content"], str) for message in record["messages"])


def test_models_list_verify_and_path():
    models = {record["id"]: record for record in json_lines(understudy("models", "list", "--json").stdout)}
    default = models["smollm2-135m-instruct"]
    assert default["installed"] and default["default"] and default["role"] == "generalist"
    assert default["backend"] == "llama_cpp"
    assert not models["qwen2.5-1.5b-instruct"]["installed"]
    assert "OK sha256" in understudy("models", "verify", "smollm2-135m-instruct").stdout
    path = Path(understudy("models", "path", "smollm2-135m-instruct").stdout.strip())
    assert path.name.endswith(".gguf") and path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("chat", "-m", "gpt-9", "Hi"), "Error: no model 'gpt-9' in the catalog"),
        (("models", "path", "qwen2.5-1.5b-instruct"), "understudy models download qwen2.5-1.5b-instruct"),
        (("chat", "--cid", "42", "Hi"), "Error: there is no conversation 42"),
    ],
)
def test_errors_are_one_clear_line_without_a_traceback(args, message):
    result = understudy(*args, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    result = understudy("--debug", "chat", "-m", "gpt-9", "Hi", check=False)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "CatalogError" in result.stderr


@pytest.mark.slow
def test_bench_decode_prints_its_ratios():
    [result] = json_lines(
        understudy("bench", "decode", "--json", "--rounds", "2", "--max-tokens", "16").stdout
    )
    for key in ("raw_tok_s", "engine_tok_s", "ratio", "ttft_ratio", "log_ms_p50"):
        assert result[key] > 0, key
