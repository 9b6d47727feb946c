"""The gateway on the fake model: OpenAI wire format, access, errors, logging and tools."""

from __future__ import annotations

import json
import os
import stat
import threading

import httpx
import openai
import pytest
from fake_backend import Reply, tool_call

from engine.store import Store

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def gateway_calls() -> list[dict]:
    store = Store.open()
    rows = [dict(row) for row in store.db.query("SELECT * FROM gateway_calls ORDER BY turn_id")]
    store.close()
    return rows


def test_models_lists_the_generalist_and_auto(gateway, fake_model):
    names = [model.id for model in gateway.client().models.list()]
    assert names == [fake_model.id, "auto"]


def test_chat_completion_answers_with_usage_and_route_and_logs_one_turn(gateway, fake_model):
    fake_model.script("Paris is the capital.")
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital?"}],
        temperature=0.0,
        max_tokens=20,
        seed=7,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris is the capital."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == fake_model.id
    assert completion.usage.completion_tokens == 4
    assert raw.headers["x-understudy-route"] == "generalist"
    (request,) = fake_model.requests
    assert request.messages[0] == {"role": "system", "content": "Be brief."}
    assert request.options["temperature"] == 0.0 and request.options["seed"] == 7
    (logged,) = gateway_calls()
    assert logged["client"] == "OpenAI" and logged["user_agent"].startswith("OpenAI/Python")
    assert json.loads(logged["request_json"])["messages"][1]["content"] == "Capital?"
    turns = Store.open().recent_turns()
    assert [turn["answer_text"] for turn in turns] == ["Paris is the capital."]
    assert turns[0]["model_calls"][0]["completion_tokens"] == 4


def test_streaming_sends_chunks_then_done(gateway, fake_model):
    fake_model.script("one two three")
    stream = gateway.client().chat.completions.create(
        model=fake_model.id,
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 3
    assert len(gateway_calls()) == 1


def test_stop_sequence_ends_the_answer(gateway, fake_model):
    fake_model.script("alpha beta END gamma")
    completion = gateway.client().chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "go"}], stop=["END"]
    )
    assert completion.choices[0].message.content == "alpha beta "
    assert completion.choices[0].finish_reason == "stop"


def test_tools_round_trip(gateway, fake_model):
    fake_model.script(tool_call("get_weather", city="Oslo"), "It is sunny in Oslo.")
    client = gateway.client()
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="auto", messages=messages, tools=[WEATHER])
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    assert fake_model.requests[0].json_schema["anyOf"][0]["properties"]["tool"] == {"const": "get_weather"}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = client.chat.completions.create(model="auto", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "It is sunny in Oslo."
    sent = fake_model.requests[1].messages
    assert json.loads(sent[1]["content"]) == {"tool": "get_weather", "arguments": {"city": "Oslo"}}
    assert "sunny, 21 C" in sent[2]["content"] and "tool_result" in sent[2]["content"]
    logged = gateway_calls()
    assert json.loads(logged[0]["function_calls_json"]) == [
        {"name": "get_weather", "arguments": {"city": "Oslo"}}
    ]
    assert logged[0]["finish_reason"] == "tool_calls"


def test_streamed_tool_call_is_parsed_by_the_sdk(gateway, fake_model):
    fake_model.script(tool_call("get_weather", city="Rome"))
    stream = gateway.client().chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    deltas = [call for chunk in stream for call in (chunk.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather"
    assert json.loads(deltas[0].function.arguments) == {"city": "Rome"}


def test_json_schema_response_format_constrains_the_answer(gateway, fake_model):
    fake_model.script('{"name": "Ada"}')
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    completion = gateway.client().chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Name?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    assert json.loads(completion.choices[0].message.content) == {"name": "Ada"}
    assert fake_model.requests[0].json_schema == schema


def test_a_wrong_token_is_refused(gateway):
    with (
        openai.OpenAI(base_url=gateway.url, api_key="wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError) as refused,
    ):
        client.models.list()
    assert refused.value.body["code"] == "invalid_api_key"


def test_another_host_name_is_refused(gateway):
    response = httpx.get(
        f"{gateway.url}/models",
        headers={"Authorization": f"Bearer {gateway.token}", "Host": f"evil.example:{gateway.port}"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "host_not_allowed"
    assert "access-control-allow-origin" not in response.headers
    allowed = httpx.get(
        f"{gateway.url}/models",
        headers={"Authorization": f"Bearer {gateway.token}", "Host": f"localhost:{gateway.port}"},
    )
    assert allowed.status_code == 200


def test_unknown_model_and_bad_requests_get_openai_errors(gateway):
    client = gateway.client()
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="auto", messages=[])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], temperature=5
        )


def test_aliases_route_names_clients_use(gateway, fake_model, understudy_home):
    (understudy_home / "gateway.json").write_text(json.dumps({"aliases": {"gpt-4o-mini": "auto"}}))
    fake_model.script("ok")
    completion = gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.model == fake_model.id
    assert gateway_calls()[0]["requested_model"] == "auto"


def test_token_is_kept_owner_only(gateway, understudy_home):
    path = understudy_home / "gateway-token"
    assert path.read_text().strip() == gateway.token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_eight_concurrent_streams_all_complete(gateway, fake_model):
    client = gateway.client()
    answers: dict[int, str] = {}

    def ask(number: int) -> None:
        stream = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": f"client {number}"}], stream=True
        )
        answers[number] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    threads = [threading.Thread(target=ask, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == {number: f"Echo: client {number}" for number in range(8)}
    assert len(gateway_calls()) == 8


def test_a_client_that_disconnects_cancels_its_generation(gateway, fake_model):
    fake_model.script(Reply("a long answer that goes on", hold=True))
    stream = gateway.client().chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "go"}], stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    for _ in range(200):
        if fake_model.requests:
            break
        threading.Event().wait(0.05)
    assert fake_model.requests[0].finish_reason == "cancelled"
