"""Chat completions for callers that send the whole conversation (the OpenAI-compatible gateway).

The agent keeps conversations in the log and adds each new message to them; a gateway client keeps its
own and sends every message each time, with its own functions to call and its own JSON schema. Here such
a request is routed like a turn (S6: the task's specialist, else the generalist; never the cloud), its
functions are filled under a grammar (``engine.tools.calling``'s schema machinery) and returned rather
than run, stop sequences end the answer, and the call is logged as one turn together with who asked
and exactly what they sent (S1).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from engine import backends
from engine.backends import Backend, Completion, GenerationOptions, LoadOptions, Message
from engine.catalog import Catalog
from engine.errors import AdapterError, ContextLengthError, ToolError, UnderstudyError, UnknownModelError
from engine.router import Router, write_decision
from engine.store import ModelCallRecord, Store, TurnRecord, utc_now
from engine.tools.calling import (
    CHOICE_OPTIONS,
    NO_TOOL,
    choice_messages,
    choice_schema,
    parse_choice,
    untrusted_result,
)
from engine.tuning import adapters

AUTO = "auto"
SPECIALIST_PREFIX = "understudy/task-"
CLOUD_NOT_CONSENTED = "cloud not consented"


@dataclass(frozen=True)
class Function:
    """A function the caller offers: filled by the model under a grammar, run by the caller."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class FunctionCall:
    id: str
    name: str
    arguments_json: str


@dataclass
class ChatMessage:
    role: str  # system | user | assistant | tool
    content: str = ""
    function_calls: list[FunctionCall] = field(default_factory=list)
    call_id: str | None = None  # the call a tool message answers


@dataclass
class ChatRequest:
    """One request in the caller's terms. ``function_choice``: "auto", "none", "required" or a name."""

    model: str
    messages: list[ChatMessage]
    options: GenerationOptions = GenerationOptions()
    functions: list[Function] = field(default_factory=list)
    function_choice: str = AUTO
    json_schema: dict[str, Any] | None = None
    stop: list[str] = field(default_factory=list)
    client: str = ""
    user_agent: str = ""
    wire_request: dict[str, Any] = field(default_factory=dict)  # logged exactly as sent


@dataclass
class ChatResult:
    text: str
    function_calls: list[FunctionCall]
    finish_reason: str  # stop | length | tool_calls | cancelled
    prompt_tokens: int
    completion_tokens: int
    model: str  # where it was answered: the generalist's ID or a specialist's name
    route: str  # what the x-understudy-route header says
    turn_id: int


def specialist_name(task_id: int) -> str:
    return f"{SPECIALIST_PREFIX}{task_id}"


def served_models(store: Store, catalog: Catalog) -> list[str]:
    """The names a request may use: the generalist, each task's active specialist, and ``auto``."""
    names = [catalog.default_generalist]
    for adapter in adapters.list_adapters(store):
        if adapter.status == "active" and adapter.task_id is not None:
            names.append(specialist_name(adapter.task_id))
    return [*names, AUTO]


@dataclass
class Route:
    """Where a request is answered; ``header`` is what the gateway's x-understudy-route says."""

    model: str
    entry_id: str
    adapter_id: int | None
    adapter_path: Any
    header: str
    decision: Any = None


def route_request(store: Store, catalog: Catalog, router: Router, request: ChatRequest) -> Route:
    """The specialist a request names, or for ``auto`` the router's choice (never the cloud)."""
    generalist = catalog.default_generalist
    if request.model == generalist:
        return Route(generalist, generalist, None, None, "generalist (named)")
    if request.model.startswith(SPECIALIST_PREFIX):
        task = request.model.removeprefix(SPECIALIST_PREFIX)
        adapter = adapters.active_for_task(store, int(task)) if task.isdigit() else None
        if adapter is None:
            raise UnknownModelError(f"the model '{request.model}' does not exist; GET /v1/models lists them")
        path = adapters.verify(adapter)
        return Route(request.model, adapter.base_model_id, adapter.id, path, f"specialist {adapter.id}")
    if request.model != AUTO:
        raise UnknownModelError(f"the model '{request.model}' does not exist; GET /v1/models lists them")
    router.refresh_if_changed(store)
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    decision = router.decide(last_user)
    if decision.target == "specialist":
        try:
            adapter, path = adapters.serving_path(store, decision.adapter_id)
            return Route(
                specialist_name(adapter.task_id),
                adapter.base_model_id,
                adapter.id,
                path,
                f"specialist {adapter.id}",
                decision,
            )
        except AdapterError as error:
            decision.target, decision.adapter_id = "generalist", None
            decision.reason = f"{decision.reason}, but it cannot be served ({error})"
    header = "generalist"
    if decision.target == "cloud":
        # The router proposes; the gateway never sends without a standing consent (not offered yet).
        decision.target = "generalist"
        header = f"generalist; {CLOUD_NOT_CONSENTED}"
    return Route(generalist, generalist, None, None, header, decision)


def engine_messages(messages: list[ChatMessage]) -> list[Message]:
    """The caller's messages as the local model reads them: calls in the engine's JSON shape, results
    as delimited untrusted data (the same form ``use_tools`` gives them)."""
    names = {call.id: call.name for message in messages for call in message.function_calls}
    converted: list[Message] = []
    for message in messages:
        if message.role == "tool":
            name = names.get(message.call_id or "", "tool")
            converted.append({"role": "user", "content": untrusted_result(name, message.content)})
        elif message.function_calls:
            calls = [
                {"tool": call.name, "arguments": json.loads(call.arguments_json or "{}")}
                for call in message.function_calls
            ]
            text = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            converted.append({"role": "assistant", "content": text})
        else:
            converted.append({"role": message.role, "content": message.content})
    return converted


def check_context(backend: Backend, messages: list[Message], options: GenerationOptions) -> None:
    """Refuse messages that would have to be trimmed: a caller sending the whole conversation expects
    an error it can act on (OpenAI's context_length_exceeded), not a silently shortened prompt."""
    render = getattr(backend, "render_prompt", None)
    if render is None:
        return
    reserve = min(options.max_tokens, backend.n_ctx // 2)
    prompt_tokens = len(render(messages))
    if prompt_tokens + reserve > backend.n_ctx:
        raise ContextLengthError(
            f"the messages need {prompt_tokens} tokens and the answer {reserve}, more than the "
            f"{backend.n_ctx}-token context of '{backend.entry.id}'; send fewer or shorter messages"
        )


def complete(
    store: Store,
    catalog: Catalog,
    route: Route,
    request: ChatRequest,
    load_options: LoadOptions = LoadOptions(),
    cancel: threading.Event | None = None,
) -> Generator[str, None, ChatResult]:
    """Answer ``request`` where ``route`` says, yielding the answer's text as it is decoded (nothing
    when it calls a function), and log it as one turn; return the result with usage."""
    cancel = cancel or threading.Event()
    entry = catalog.get(route.entry_id)
    messages = engine_messages(request.messages)
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    turn = TurnRecord(
        conversation_id=None,
        user_text=last_user,
        model_id=entry.id,
        route="specialist" if route.adapter_id is not None else "local",
        adapter_id=route.adapter_id,
    )
    calls: list[FunctionCall] = []
    completion: Completion | None = None
    stopped = _StopScanner(request.stop)
    try:
        backend = backends.load(entry, load_options)
        check_context(backend, messages, request.options)
        offered = _offered(request)
        if offered:
            calls, completion = _choose_call(backend, messages, offered, request, cancel, turn)
        if not calls:
            call = ModelCallRecord(entry.id, backend.name, messages, adapter_id=route.adapter_id)
            turn.model_calls.append(call)
            stream = backend.stream_chat(
                messages, request.options, cancel, request.json_schema, route.adapter_path
            )
            completion = yield from stopped.scan(stream, cancel)
            call.take(completion)
            completion.text = stopped.text
            call.response_text = stopped.text
    except UnderstudyError as error:
        turn.status, turn.error = "error", str(error)
        _log(store, turn, route, request, None)
        raise
    finish_reason = "tool_calls" if calls else completion.finish_reason
    if stopped.found:
        finish_reason = "stop"
    turn.answer_text = _calls_json(calls) if calls else completion.text
    turn.status = "cancelled" if finish_reason == "cancelled" else "ok"
    turn_id = _log(store, turn, route, request, finish_reason, calls)
    return ChatResult(
        text="" if calls else completion.text,
        function_calls=calls,
        finish_reason=finish_reason,
        prompt_tokens=sum(call.prompt_tokens for call in turn.model_calls),
        completion_tokens=sum(call.completion_tokens for call in turn.model_calls),
        model=route.model,
        route=route.header,
        turn_id=turn_id,
    )


def _offered(request: ChatRequest) -> dict[str, Function]:
    """The functions the model may call now. After a tool result it answers in words: a small model
    asked again tends to call the same function forever."""
    if not request.functions or request.function_choice == "none":
        return {}
    if request.messages and request.messages[-1].role == "tool" and request.function_choice == AUTO:
        return {}
    functions = {function.name: function for function in request.functions}
    if request.function_choice in (AUTO, "required"):
        return functions
    if request.function_choice not in functions:
        raise ToolError(f"tool_choice names '{request.function_choice}', which is not among the tools")
    return {request.function_choice: functions[request.function_choice]}


def _choose_call(
    backend: Backend,
    messages: list[Message],
    offered: dict[str, Function],
    request: ChatRequest,
    cancel: threading.Event,
    turn: TurnRecord,
) -> tuple[list[FunctionCall], Completion]:
    """The model's function call under a grammar of the offered schemas, or none when it may decline."""
    include_none = request.function_choice == AUTO
    # The one-tool prompt fills a chosen tool; with several to choose from the prompt lists them all
    # (and mentions declining, which the grammar then rules out when a call is required).
    asked = choice_messages(offered, messages, include_none or len(offered) > 1)
    options = GenerationOptions(
        max_tokens=max(CHOICE_OPTIONS.max_tokens, request.options.max_tokens),
        temperature=request.options.temperature,
        repeat_penalty=CHOICE_OPTIONS.repeat_penalty,
        seed=request.options.seed,
    )
    schema = choice_schema(offered, include_none)
    completion = backends.drain(backend.stream_chat(asked, options, cancel, json_schema=schema))
    call = ModelCallRecord(backend.entry.id, backend.name, asked)
    call.take(completion)
    call.finish_reason = f"tool-choice:{completion.finish_reason}"
    turn.model_calls.append(call)
    choice = parse_choice(completion.text.strip(), offered)
    if choice.tool == NO_TOOL:
        return [], completion
    return [FunctionCall(f"call_{uuid.uuid4().hex[:24]}", choice.tool, choice.arguments_json)], completion


class _StopScanner:
    """Ends an answer at the first stop sequence, holding back just enough text to never send a part
    of one."""

    def __init__(self, stops: list[str]):
        self.stops = [stop for stop in stops if stop]
        self.hold = max((len(stop) for stop in self.stops), default=1) - 1
        self.text = ""
        self.found = False

    def scan(
        self, stream: Generator[str, None, Completion], cancel: threading.Event
    ) -> Generator[str, None, Completion]:
        sent = 0
        try:
            while True:
                piece = next(stream)
                if self.found:
                    continue
                self.text += piece
                cut = min((i for i in (self.text.find(s) for s in self.stops) if i >= 0), default=-1)
                if cut >= 0:
                    self.text, self.found = self.text[:cut], True
                    cancel.set()  # the backend stops between tokens; nothing else waits on this event
                safe = len(self.text) if self.found else max(sent, len(self.text) - self.hold)
                if safe > sent:
                    yield self.text[sent:safe]
                    sent = safe
        except StopIteration as finished:
            completion = finished.value
        if not self.found and len(self.text) > sent:
            yield self.text[sent:]
        if not self.stops:
            self.text = completion.text
        return completion


def _calls_json(calls: list[FunctionCall]) -> str:
    return json.dumps(
        [{"name": call.name, "arguments": json.loads(call.arguments_json)} for call in calls],
        ensure_ascii=False,
    )


def _log(
    store: Store,
    turn: TurnRecord,
    route: Route,
    request: ChatRequest,
    finish_reason: str | None,
    calls: list[FunctionCall] | None = None,
) -> int:
    """The turn, the routing decision and what the client sent and got, in one transaction."""
    with store.transaction():
        turn_id = store.write_turn(turn)
        if route.decision is not None:
            write_decision(store, route.decision, turn_id)
        store.insert(
            "gateway_calls",
            {
                "turn_id": turn_id,
                "created_utc": utc_now(),
                "client": request.client,
                "user_agent": request.user_agent,
                "requested_model": request.model,
                "answered_by": route.model,
                "route": route.header,
                "request_json": json.dumps(request.wire_request, ensure_ascii=False),
                "function_calls_json": _calls_json(calls or []),
                "finish_reason": finish_reason,
            },
        )
    return turn_id
