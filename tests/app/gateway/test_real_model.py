"""The gateway on the real SmolLM2 model, through the openai SDK: what an agent built for OpenAI sees."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

FUNCTIONS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "convert_currency",
            "description": "Convert an amount of money between currencies.",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number"},
                    "from_currency": {"type": "string"},
                    "to_currency": {"type": "string"},
                },
                "required": ["amount", "from_currency", "to_currency"],
            },
        },
    },
]


def test_real_answers_streamed_and_not(real_gateway):
    client = real_gateway.client()
    question = [{"role": "user", "content": "What is the capital of France?"}]
    completion = client.chat.completions.create(model="auto", messages=question, max_tokens=24, temperature=0)
    assert completion.choices[0].message.content.strip()
    assert completion.usage.prompt_tokens > 5 and completion.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model="auto", messages=question, max_tokens=24, temperature=0, stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == completion.choices[0].message.content


def test_real_tool_call_between_two_functions_parses(real_gateway):
    completion = real_gateway.client().chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=FUNCTIONS,
        tool_choice="required",
        temperature=0,
    )
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name in {"get_weather", "convert_currency"}
    arguments = json.loads(call.function.arguments)
    wanted = next(f for f in FUNCTIONS if f["function"]["name"] == call.function.name)
    assert set(wanted["function"]["parameters"]["required"]) <= set(arguments)


def test_real_json_schema_answer(real_gateway):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    completion = real_gateway.client().chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Name a city and its country as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
        max_tokens=60,
        temperature=0,
    )
    document = json.loads(completion.choices[0].message.content)
    assert set(document) == {"city", "country"}


def test_real_over_long_context_is_a_400(real_gateway):
    import openai

    with pytest.raises(openai.BadRequestError) as refused:
        real_gateway.client().chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "word " * 6000}], max_tokens=16
        )
    assert refused.value.body["code"] == "context_length_exceeded"
