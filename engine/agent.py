"""The turn loop: a user message goes to a model with the conversation so far, and the whole exchange
is logged in one transaction.

``Agent.run_turn`` is a generator: it yields the answer as it streams and returns a ``TurnResult``, so
the CLI prints pieces as they come and the GUI turns each into a signal. Tool calls join this loop later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass

from engine import backends
from engine.backends import Completion, GenerationOptions, LoadOptions, Message
from engine.catalog import Catalog, ModelEntry
from engine.errors import AdapterError, UnderstudyError
from engine.settings import Settings
from engine.store import ModelCallRecord, Store, TurnRecord
from engine.tool_calling import ToolEvent, ToolUse, use_tools
from engine.tuning import adapters


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
    ):
        self.store = store
        self.catalog = catalog
        self.load_options = load_options
        self.generation = generation
        self.system_prompt = system_prompt
        self.default_model = default_model

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
        """Load (or reuse) a model, e.g. in the background before the first turn."""
        return backends.load(self.model_entry(model_id), self.load_options)

    def run_turn(
        self,
        user_text: str,
        conversation_id: int | None = None,
        model_id: str | None = None,
        cancel: threading.Event | None = None,
        replacing: int | None = None,
        tool_use: ToolUse | None = None,
        adapter_id: int | None = None,
    ) -> Generator[str | ToolEvent, None, TurnResult]:
        """Answer ``user_text`` in a conversation (a new one when None), streaming the answer.

        ``replacing`` names a turn to answer again (regenerate) or with new text (edit and resend):
        the model sees the conversation before it, and it and the turns after it are marked replaced
        in the same transaction that logs the new turn. A failed turn is still logged, with the user's
        text and the error, before the error is raised.

        With ``tool_use`` the model may first call tools (each call yielded as a ``ToolEvent`` and
        logged with its permission decision in the same transaction as the turn).

        With ``adapter_id`` the answer comes from that LoRA adapter on its base model, after its file's
        sha256 is checked.
        """
        adapter_path = None
        if adapter_id is not None:
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
            self._log(turn)
            raise
        _record_completion(call, turn, completion)
        turn_id, log_ms = self._log(turn)
        return TurnResult(
            turn_id=turn_id,
            conversation_id=turn.conversation_id,
            model_id=entry.id,
            status=turn.status,
            answer=turn.answer_text,
            completion=completion,
            log_ms=log_ms,
        )

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

    def _log(self, turn: TurnRecord) -> tuple[int, float]:
        started = time.perf_counter()
        turn_id = self.store.log_turn(turn)
        return turn_id, (time.perf_counter() - started) * 1000


def _record_completion(call: ModelCallRecord, turn: TurnRecord, completion: Completion) -> None:
    call.take(completion)
    turn.answer_text = completion.text
    turn.status = "cancelled" if completion.finish_reason == "cancelled" else "ok"
