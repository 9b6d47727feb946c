"""Chat completions for callers that send the whole conversation (the OpenAI-compatible gateway).

The agent keeps conversations in the log and adds each new message to them; a gateway client keeps its
own and sends every message each time, with its own functions to call and its own JSON schema. Here such
a request is routed like a turn (S6: the task's specialist, else the generalist), its functions are
filled under a grammar (``engine.tools.calling``'s schema machinery) and returned rather than run, stop
sequences end the answer, and the call is logged as one turn together with who asked and exactly what
they sent (S1).

The cloud is used only under a standing consent (``engine.consent``): when the router proposes it and
"always for this task type" covers the task, or when teacher mode is on for the client, in which case
every ``auto`` request (routed to a task or the generalist) is answered by the cloud teacher so that its
answer becomes a teacher example. A request that names a model is answered by that model, and one with
functions, a JSON schema or tool messages stays local: the escalation send path carries plain messages.
The cloud answer goes through ``engine.escalation`` (redacted out, placeholders restored back, logged as
a sent escalation, hence a teacher example).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from engine import backends
from engine.backends import Backend, Completion, GenerationOptions, LoadOptions, Message
from engine.catalog import Catalog
from engine.consent import (
    Consent,
    cloud_consent,
    take_teacher_call,
    task_type,
)
from engine.errors import (
    AdapterError,
    ConsentDenied,
    ConsentTimedOut,
    ContextLengthError,
    ToolError,
    UnderstudyError,
    UnknownModelError,
)
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
    consent: Consent | None = None  # set when the request goes to the cloud
    task_type: str = ""  # the escalation's task type, for the cloud


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
    consent = cloud_consent(store, decision.task_id, request.client)
    kept_local = consent.why
    if consent.teacher or (decision.target == "cloud" and (consent.allowed or consent.ask)):
        cloud, kept_local = _cloud_route(request, decision, consent)
        if cloud is not None:
            return cloud
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
        decision.target = "generalist"
        header = f"generalist; {kept_local}"
    return Route(generalist, generalist, None, None, header, decision)


def plain_messages(request: ChatRequest) -> bool:
    """Whether the request is only text messages, which is all the escalation send path carries."""
    return (
        not request.functions
        and request.json_schema is None
        and all(message.role != "tool" and not message.function_calls for message in request.messages)
    )


def _cloud_route(request: ChatRequest, decision: Any, consent: Consent) -> tuple[Route | None, str]:
    """The cloud route under ``consent``; else None and why it stays local (the request has tools, or
    the client's teacher calls ran out since the check)."""
    from engine.escalation import load_cloud_config

    if not plain_messages(request):
        return None, "the cloud is not used for tools or a JSON schema"
    if consent.teacher and not take_teacher_call(request.client):
        return None, CLOUD_NOT_CONSENTED
    provider = load_cloud_config().provider()
    decision.target = "cloud"
    decision.adapter_id = None
    decision.reason = f"{decision.reason}; sent to the cloud: {consent.why}"
    header = f"cloud; {consent.why}"
    route = Route(provider.model, provider.model, None, None, header, decision, consent)
    route.task_type = task_type(decision.task_id)
    return route, ""


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


def complete_in_cloud(
    store: Store,
    route: Route,
    request: ChatRequest,
    cancel: threading.Event | None = None,
    ask_timeout_s: float = 120.0,
    poll_s: float = 0.25,
) -> Generator[str, None, ChatResult]:
    """Answer ``request`` in the cloud under ``route.consent``, through the escalation send path.

    The payload is the redacted request, stored as an escalation (approved by "always" or by teacher
    mode; under "ask me" pending until the user decides, waited for up to ``ask_timeout_s``); the
    answer comes back with the placeholders restored, whole (a placeholder may span streamed pieces),
    and the send logs it as a cloud turn and a teacher example.
    """
    from engine.escalation import Escalations

    cancel = cancel or threading.Event()
    consent = route.consent
    if consent is None:
        raise UnderstudyError("this request was not routed to the cloud")
    escalations = Escalations(store)
    escalation_id = escalations.propose(
        engine_messages(request.messages),
        reason=f"gateway ({request.client or 'unnamed client'}): {consent.why}",
        task_type=route.task_type,
        max_tokens=request.options.max_tokens,
    )
    status = escalations.get(escalation_id).status
    if status == "pending" and consent.teacher:
        escalations.decide(escalation_id, "allow_once", decided_by="teacher mode")
    elif status == "pending" and consent.ask:
        _wait_for_review(escalations, escalation_id, ask_timeout_s, poll_s, cancel)
    elif status == "pending":
        raise UnderstudyError(f"escalation {escalation_id} is not approved: nothing was sent")
    if route.decision is not None:
        route.decision.escalation_id = escalation_id
    sent = backends.drain(escalations.send(escalation_id, cancel))
    yield sent.answer
    with store.transaction():
        if route.decision is not None and sent.turn_id is not None:
            write_decision(store, route.decision, sent.turn_id)
        _insert_gateway_call(store, sent.turn_id, route, request, "stop", [])
    return ChatResult(
        text=sent.answer,
        function_calls=[],
        finish_reason="stop",
        prompt_tokens=sent.prompt_tokens,
        completion_tokens=sent.completion_tokens,
        model=route.model,
        route=route.header,
        turn_id=sent.turn_id or 0,
    )


def _wait_for_review(
    escalations: Any, escalation_id: int, timeout_s: float, poll_s: float, cancel: threading.Event
) -> None:
    """Poll the store until the user approves or denies the pending escalation in the app."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not cancel.is_set():
        status = escalations.get(escalation_id).status
        if status == "approved":
            return
        if status == "denied":
            raise ConsentDenied(
                f"you declined to send this request to the cloud (escalation {escalation_id}); "
                "it was not answered"
            )
        time.sleep(poll_s)
    if escalations.get(escalation_id).status == "pending":
        escalations.decide(escalation_id, "deny", decided_by="timeout")
    raise ConsentTimedOut(
        f"nobody reviewed sending this request to the cloud within {timeout_s:g} s (escalation "
        f"{escalation_id}), so nothing was sent; approve requests in the app's Escalations section in "
        "time, or switch 'ask me' off to have them answered locally"
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
        _insert_gateway_call(store, turn_id, route, request, finish_reason, calls or [])
    return turn_id


def _insert_gateway_call(
    store: Store,
    turn_id: int | None,
    route: Route,
    request: ChatRequest,
    finish_reason: str | None,
    calls: list[FunctionCall],
) -> None:
    """Who asked and exactly what they sent, inside the caller's transaction."""
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
            "function_calls_json": _calls_json(calls),
            "finish_reason": finish_reason,
        },
    )
