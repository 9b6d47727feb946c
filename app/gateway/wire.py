"""The OpenAI chat-completions wire format, translated to and from engine.completions' typed requests."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from typing import Any

from engine.backends import GenerationOptions
from engine.completions import AUTO, ChatMessage, ChatRequest, ChatResult, Function, FunctionCall

ROLES = ("system", "user", "assistant", "tool", "developer")


class BadRequest(ValueError):
    """A request the OpenAI API would refuse with 400; the message names the offending field."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _text(content: Any, where: str) -> str:
    """Message content: a string, or a list of text parts (images are not understood)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest(f"{where}: only text content parts are supported")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise BadRequest(f"{where}: content must be a string or a list of text parts")


def _message(raw: Any, index: int) -> ChatMessage:
    where = f"messages[{index}]"
    if not isinstance(raw, dict) or raw.get("role") not in ROLES:
        raise BadRequest(f"{where}: a message needs a role, one of {', '.join(ROLES)}")
    role = "system" if raw["role"] == "developer" else raw["role"]
    calls = []
    for number, call in enumerate(raw.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(f"{where}.tool_calls[{number}]: needs function.name and function.arguments")
        arguments = function.get("arguments") or "{}"
        try:
            json.loads(arguments)
        except (TypeError, ValueError) as error:
            raise BadRequest(f"{where}.tool_calls[{number}].function.arguments is not JSON") from error
        calls.append(FunctionCall(str(call.get("id", "")), function["name"], arguments))
    if role == "tool" and not raw.get("tool_call_id"):
        raise BadRequest(f"{where}: a tool message needs tool_call_id")
    return ChatMessage(role, _text(raw.get("content"), where), calls, raw.get("tool_call_id"))


def _functions(tools: Any) -> list[Function]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise BadRequest("tools must be a list")
    functions = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
            raise BadRequest(f"tools[{index}]: only function tools with a name are supported")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        functions.append(Function(function["name"], function.get("description", ""), parameters))
    return functions


def _function_choice(choice: Any) -> str:
    if choice is None:
        return AUTO
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return str(choice["function"].get("name"))
    raise BadRequest('tool_choice must be "auto", "none", "required" or {"type": "function", ...}')


def _json_schema(response_format: Any) -> dict[str, Any] | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be a JSON schema object")
        return schema
    raise BadRequest("response_format.type must be text, json_object or json_schema")


def _number(body: dict[str, Any], name: str, kind: type, low: float, high: float | None = None):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
        raise BadRequest(f"{name} must be a number", code="invalid_value")
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{name} must be between {low} and {high}", code="invalid_value")
    return kind(value)


def chat_request(
    body: Any, defaults: GenerationOptions, model: str, client: str, user_agent: str
) -> ChatRequest:
    """``body`` (a parsed /v1/chat/completions request) as the engine's request; ``model`` already
    resolved through the aliases."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    options = defaults
    max_tokens = _number(body, "max_completion_tokens", int, 1) or _number(body, "max_tokens", int, 1)
    temperature = _number(body, "temperature", float, 0, 2)
    top_p = _number(body, "top_p", float, 0, 1)
    seed = _number(body, "seed", int, -(2**63))
    options = replace(
        options,
        max_tokens=max_tokens or options.max_tokens,
        temperature=options.temperature if temperature is None else temperature,
        top_p=options.top_p if top_p is None else top_p,
        seed=seed,
    )
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if not all(isinstance(item, str) for item in stops) or len(stops) > 4:
        raise BadRequest("stop must be a string or a list of up to 4 strings")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported", code="invalid_value")
    functions = _functions(body.get("tools"))
    function_choice = _function_choice(body.get("tool_choice"))
    if function_choice not in (AUTO, "none", "required") and function_choice not in {
        function.name for function in functions
    }:
        raise BadRequest(f"tool_choice names '{function_choice}', which is not among the tools")
    return ChatRequest(
        model=model,
        messages=[_message(message, index) for index, message in enumerate(messages)],
        options=options,
        functions=functions,
        function_choice=function_choice,
        json_schema=_json_schema(body.get("response_format")),
        stop=stops,
        client=client,
        user_agent=user_agent,
        wire_request=body,
    )


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def tool_calls(calls: list[FunctionCall], streaming: bool = False) -> list[dict[str, Any]]:
    return [
        {
            **({"index": index} if streaming else {}),
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for index, call in enumerate(calls)
    ]


def finish_reason(result: ChatResult) -> str:
    """OpenAI has no "cancelled"; a stopped answer ends like one that hit a stop sequence."""
    return "stop" if result.finish_reason == "cancelled" else result.finish_reason


def usage(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def completion_body(result: ChatResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if result.function_calls else result.text}
    if result.function_calls:
        message["tool_calls"] = tool_calls(result.function_calls)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason(result), "logprobs": None}
        ],
        "usage": usage(result),
    }


def chunk(identifier: str, model: str, delta: dict[str, Any], reason: str | None = None) -> str:
    return json.dumps(
        {
            "id": identifier,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
        }
    )


def usage_chunk(identifier: str, result: ChatResult) -> str:
    return json.dumps(
        {
            "id": identifier,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": result.model,
            "choices": [],
            "usage": usage(result),
        }
    )
