"""The turn loop: a user message is routed (S6) to a task's specialist or the generalist, answered with
the conversation so far (calling tools when allowed), and the whole exchange, routing decision included,
is logged in one transaction.

``Agent.run_turn`` is a generator: it yields the answer as it streams and returns a ``TurnResult``, so
the CLI prints pieces as they come and the GUI turns each into a signal. When the router advises the
cloud (a pinned task, or an answer of low confidence) a pending escalation is proposed after the turn
is logged; nothing is ever sent from here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine import backends
from engine.backends import Completion, GenerationOptions, LoadOptions, Message
from engine.catalog import Catalog, ModelEntry
from engine.errors import AdapterError, UnderstudyError
from engine.settings import Settings
from engine.store import ModelCallRecord, Store, TurnRecord
from engine.tools.calling import ToolEvent, ToolUse, use_tools
from engine.tuning import adapters

if TYPE_CHECKING:
    from engine.router import RouteDecision, Router


@dataclass
class TurnResult:
    turn_id: int
    conversation_id: int
    model_id: str
    status: str
    answer: str
    completion: Completion | None
    log_ms: float
    error: str | None = None
    adapter_id: int | None = None
    route: RouteDecision | None = None
    # A pending escalation the router proposed for this turn (the user decides), and why.
    escalation_id: int | None = None
    escalation_reason: str | None = None


class Agent:
    """Runs turns against the catalog's models and logs each one."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        load_options: LoadOptions = LoadOptions(),
        generation: GenerationOptions = GenerationOptions(),
        system_prompt: str | None = None,
        default_model: str | None = None,
        routing: bool = True,
    ):
        self.store = store
        self.catalog = catalog
        self.load_options = load_options
        self.generation = generation
        self.system_prompt = system_prompt
        self.default_model = default_model
        self.routing = routing
        self._router: Router | None = None

    @property
    def router(self) -> Router:
        """The router, built on first use and kept in step with the database's tasks and adapters."""
        from engine.router import Router

        if self._router is None:
            self._router = Router(self.store)
        else:
            self._router.refresh_if_changed(self.store)
        return self._router

    def route(self, user_text: str) -> RouteDecision:
        """Where ``user_text`` would go, without generating (``understudy route``)."""
        return self.router.decide(user_text)

    @classmethod
    def from_settings(cls, store: Store, catalog: Catalog, settings: Settings) -> Agent:
        return cls(
            store,
            catalog,
            load_options=settings.load_options(),
            generation=settings.generation_options(),
            system_prompt=settings.system_prompt or None,
            default_model=settings.default_model,
        )

    def model_entry(self, model_id: str | None = None) -> ModelEntry:
        """The catalog entry for ``model_id``, else the user's default, else the catalog's."""
        return self.catalog.get(model_id or self.default_model)

    def load_model(self, model_id: str | None = None) -> backends.Backend:
        """Load (or reuse) a model, e.g. in the background before the first turn, with the adapters of
        the specialists it is the base of read ahead: a request routed to one then only switches."""
        backend = backends.load(self.model_entry(model_id), self.load_options)
        for adapter in adapters.active_on_base(self.store, backend.entry.id):
            try:
                backend.load_adapter(adapters.verify(adapter))
            except AdapterError:
                continue  # said when its task is served, which falls back to the generalist
        return backend

    def run_turn(
        self,
        user_text: str,
        conversation_id: int | None = None,
        model_id: str | None = None,
        cancel: threading.Event | None = None,
        replacing: int | None = None,
        tool_use: ToolUse | None = None,
        adapter_id: int | None = None,
        route: bool = True,
    ) -> Generator[str | ToolEvent, None, TurnResult]:
        """Answer ``user_text`` in a conversation (a new one when None), streaming the answer.

        ``replacing`` names a turn to answer again (regenerate) or with new text (edit and resend):
        the model sees the conversation before it, and it and the turns after it are marked replaced
        in the same transaction that logs the new turn. A failed turn is still logged, with the user's
        text and the error, before the error is raised.

        With ``tool_use`` the model may first call tools (each call yielded as a ``ToolEvent`` and
        logged with its permission decision in the same transaction as the turn).

        With ``adapter_id`` the answer comes from that LoRA adapter on its base model, after its file's
        sha256 is checked. Otherwise, unless ``route`` is off or a model was named, the router picks:
        the request's task specialist when it has one and the request is close to it, else the
        generalist. A specialist whose file fails its check is skipped for the generalist, with the
        reason in the logged decision.
        """
        decision = None
        if self.routing and route and adapter_id is None and model_id is None:
            decision = self.router.decide(user_text)
            if decision.target == "specialist":
                adapter_id = decision.adapter_id
        adapter_path = None
        if adapter_id is not None and decision is not None:
            try:
                adapter, adapter_path = adapters.serving_path(self.store, adapter_id)
                model_id = adapter.base_model_id
            except AdapterError as error:
                decision.target, decision.adapter_id, adapter_id = "generalist", None, None
                decision.reason = f"{decision.reason}, but it cannot be served ({error})"
        elif adapter_id is not None:
            adapter, adapter_path = adapters.serving_path(self.store, adapter_id)
            if model_id is not None and model_id != adapter.base_model_id:
                raise AdapterError(
                    f"adapter {adapter_id} was trained on '{adapter.base_model_id}', not '{model_id}'"
                )
            model_id = adapter.base_model_id
        entry = self.model_entry(model_id)
        replaced: list[int] = []
        if replacing is not None:
            conversation_id, replaced = self.store.current_turns_from(replacing)
        if conversation_id is not None and not self.store.conversation_exists(conversation_id):
            raise UnderstudyError(
                f"there is no conversation {conversation_id}; `understudy logs` shows the ones there are"
            )
        messages = self.messages_for(conversation_id, user_text, before_turn_id=replacing)
        call = ModelCallRecord(
            model_id=entry.id, backend=entry.backend, messages=messages, adapter_id=adapter_id
        )
        turn = TurnRecord(
            conversation_id=conversation_id,
            user_text=user_text,
            model_id=entry.id,
            model_calls=[call],
            replaces=replaced,
            adapter_id=adapter_id,
        )
        completion = None
        try:
            backend = backends.load(entry, self.load_options)
            call.n_threads, call.n_ctx, call.gpu_layers = (
                backend.n_threads,
                backend.n_ctx,
                backend.gpu_layers,
            )
            answer_messages = messages
            if tool_use is not None and tool_use.tools:
                answer_messages = yield from use_tools(
                    backend, messages, tool_use, turn.model_calls, turn.tool_calls, cancel
                )
                turn.model_calls.remove(call)
                turn.model_calls.append(call)
            completion = yield from backend.stream_chat(
                answer_messages, self.generation, cancel, adapter=adapter_path
            )
        except UnderstudyError as error:
            turn.status, turn.error, call.error = "error", str(error), str(error)
            self._log(turn, decision)
            raise
        _record_completion(call, turn, completion)
        advice = None
        if decision is not None and turn.status == "ok":
            advice = self.router.after_answer(decision, completion)
        turn_id, log_ms = self._log(turn, decision)
        result = TurnResult(
            turn_id=turn_id,
            conversation_id=turn.conversation_id,
            model_id=entry.id,
            status=turn.status,
            answer=turn.answer_text,
            completion=completion,
            log_ms=log_ms,
            adapter_id=adapter_id,
            route=decision,
        )
        if decision is not None and (decision.target == "cloud" or (advice is not None and advice.propose)):
            self._propose_cloud(
                result, messages, advice.reason if advice and advice.propose else decision.reason
            )
        return result

    def _propose_cloud(self, result: TurnResult, messages: list[Message], reason: str) -> None:
        """Queue the request for the user's consent; a refusal (local-only, never_cloud) is the reason."""
        from engine.router import escalate

        try:
            result.escalation_id = escalate(
                self.store, result.route, messages, reason, result.conversation_id, result.turn_id
            )
            result.escalation_reason = reason
        except UnderstudyError as error:
            result.escalation_reason = f"not proposed for the cloud: {error}"

    def messages_for(
        self, conversation_id: int | None, user_text: str, before_turn_id: int | None = None
    ) -> list[Message]:
        """What the model is sent: the system prompt, the conversation so far, the new message."""
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        if conversation_id is not None:
            messages.extend(self.store.conversation_history(conversation_id, before_turn_id))
        messages.append({"role": "user", "content": user_text})
        return messages

    def _log(self, turn: TurnRecord, decision: RouteDecision | None = None) -> tuple[int, float]:
        """Write the turn and its routing decision in one transaction."""
        started = time.perf_counter()
        with self.store.transaction():
            turn_id = self.store.write_turn(turn)
            if decision is not None:
                from engine.router import write_decision

                write_decision(self.store, decision, turn_id)
        return turn_id, (time.perf_counter() - started) * 1000


def _record_completion(call: ModelCallRecord, turn: TurnRecord, completion: Completion) -> None:
    call.take(completion)
    turn.answer_text = completion.text
    turn.status = "cancelled" if completion.finish_reason == "cancelled" else "ok"
