"""The turn loop: every turn is logged with tokens and timings.

The loop's logic runs on the fake model (answers from a script); one turn runs on the real default model
to show the figures a real backend reports reach the log.
"""

from __future__ import annotations

import json
import threading

import pytest
from fake_backend import Reply

from engine.agent import Agent
from engine.backends import GenerationOptions, drain
from engine.catalog import load_catalog
from engine.errors import ModelLoadError, UnderstudyError
from engine.store import Store

SHORT = GenerationOptions(max_tokens=16, temperature=0.0)


@pytest.fixture
def agent(fake_model):
    return Agent(Store.open(), load_catalog(), generation=SHORT)


@pytest.mark.slow
def test_a_real_turn_streams_and_is_logged_with_tokens_and_timings(smollm2, model_catalog):
    agent = Agent(Store.open(), model_catalog, generation=SHORT)
    pieces: list[str] = []
    result = drain(agent.run_turn("Name three colours."), pieces.append)
    assert result.status == "ok"
    assert result.answer == "".join(pieces) != ""
    [turn] = agent.store.recent_turns(limit=5)
    assert turn["id"] == result.turn_id
    assert turn["answer_text"] == result.answer
    [call] = turn["model_calls"]
    assert call["model_id"] == "smollm2-135m-instruct"
    assert call["backend"] == "llama_cpp"
    assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0
    assert call["ttft_ms"] > 0 and call["duration_ms"] > 0 and call["decode_tok_s"] > 0
    assert call["n_threads"] >= 1 and call["n_ctx"] == 4096
    assert json.loads(call["messages_json"])[-1] == {"role": "user", "content": "Name three colours."}


def test_a_turn_streams_and_is_logged_with_what_the_backend_reported(agent, fake_model):
    fake_model.script("Red, green and blue.")
    pieces: list[str] = []
    result = drain(agent.run_turn("Name three colours."), pieces.append)
    assert pieces == ["Red,", " green", " and", " blue."]
    assert result.status == "ok" and result.answer == "Red, green and blue."
    [turn] = agent.store.recent_turns(limit=5)
    assert turn["id"] == result.turn_id and turn["answer_text"] == result.answer
    [call] = turn["model_calls"]
    assert (call["model_id"], call["backend"]) == (fake_model.id, "fake")
    assert call["completion_tokens"] == 4 and call["prompt_tokens"] == result.completion.prompt_tokens
    assert call["ttft_ms"] == pytest.approx(result.completion.ttft_ms)
    assert call["n_threads"] == 1 and call["n_ctx"] == 4096
    [request] = fake_model.requests
    assert request.messages == json.loads(call["messages_json"])
    assert request.messages[-1] == {"role": "user", "content": "Name three colours."}


def test_an_answer_cut_at_the_token_limit_is_logged_so(agent, fake_model):
    fake_model.script(" ".join(["word"] * 40))
    result = drain(agent.run_turn("Say many words."))
    assert result.completion.finish_reason == "length" and result.completion.completion_tokens == 16
    assert agent.store.recent_turns()[0]["model_calls"][0]["finish_reason"] == "length"


def test_a_continued_conversation_sends_the_earlier_exchange(agent):
    first = drain(agent.run_turn("My name is Ada."))
    second = drain(agent.run_turn("What is my name?", conversation_id=first.conversation_id))
    assert second.conversation_id == first.conversation_id
    [turn, _] = agent.store.recent_turns(limit=2)
    sent = json.loads(turn["model_calls"][0]["messages_json"])
    assert sent[:2] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.answer},
    ]


def test_a_cancelled_turn_is_logged_as_cancelled_with_its_partial_answer(agent, fake_model):
    fake_model.script(Reply("Rivers run long and far to the sea.", hold=True))
    cancel = threading.Event()
    result = drain(agent.run_turn("Write a long poem about rivers.", cancel=cancel), lambda _: cancel.set())
    assert result.status == "cancelled"
    [turn] = agent.store.recent_turns()
    assert turn["status"] == "cancelled"
    assert turn["model_calls"][0]["finish_reason"] == "cancelled"
    assert turn["answer_text"] == result.answer == "Rivers"


def test_a_failed_turn_keeps_the_users_text_and_the_error(tmp_path, understudy_home, entry_toml):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\0" * 1000)
    understudy_home.mkdir(parents=True, exist_ok=True)
    (understudy_home / "models.toml").write_text(entry_toml("corrupt", f'{{ path = "{corrupt}" }}'))
    agent = Agent(Store.open(), load_catalog(), generation=SHORT)
    with pytest.raises(ModelLoadError, match="corrupt.gguf"):
        drain(agent.run_turn("Please remember this text.", model_id="corrupt"))
    [turn] = agent.store.recent_turns()
    assert turn["status"] == "error"
    assert turn["user_text"] == "Please remember this text."
    assert "corrupt.gguf" in turn["error"]
    assert "corrupt.gguf" in turn["model_calls"][0]["error"]


def test_continuing_a_conversation_that_does_not_exist_is_a_clear_error(agent):
    with pytest.raises(UnderstudyError, match="no conversation 999"):
        drain(agent.run_turn("Hello?", conversation_id=999))
