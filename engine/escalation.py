"""Escalation to a cloud model, only with the user's consent (S6's exception, and S5's teacher).

The rules live in this module, not in any UI: nothing is sent without an approved consent record, the
bytes sent are exactly the stored (redacted) payload the user saw, keys live only in the OS keychain,
and the local-only switch is checked again right before sending, so no caller can bypass it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, StrictFloat, StrictStr
from pydantic import dataclasses as pydantic_dataclasses

from engine import paths
from engine.config import ConfigModel, edit_config, load_config, save_config
from engine.errors import EscalationError, KeyringError, UnderstudyError
from engine.store import ModelCallRecord, Store, TurnRecord, utc_now

KEYRING_SERVICE = "understudy"
DEFAULT_TASK_TYPE = "general"
DEFAULT_MAX_TOKENS = 1024
REQUEST_TIMEOUT_S = 60.0
Decision = Literal["allow_once", "always", "deny"]
EscalationStatus = Literal["pending", "approved", "denied", "sent", "partial", "failed"]
DECIDABLE: tuple[EscalationStatus, ...] = ("pending", "failed", "partial")  # a retry needs consent again

# Well-known OpenAI-compatible endpoints; prices change often, so they are left for the user to set.
PRESETS: dict[str, tuple[str, str]] = {
    "openai": ("https://api.openai.com/v1", "gpt-4o-mini"),
    "openrouter": ("https://openrouter.ai/api/v1", "openai/gpt-4o-mini"),
    "mistral": ("https://api.mistral.ai/v1", "mistral-small-latest"),
    "groq": ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile"),
    "together": ("https://api.together.xyz/v1", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    "ollama": ("http://127.0.0.1:11434/v1", "llama3.2"),
    "lmstudio": ("http://127.0.0.1:1234/v1", "local-model"),
}


# A dataclass, validated by pydantic: callers build providers positionally and read them with asdict.
@pydantic_dataclasses.dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Provider:
    """An OpenAI-compatible endpoint and model; prices in USD per million tokens, when known."""

    name: StrictStr
    base_url: StrictStr
    model: StrictStr
    price_in_per_million: Annotated[StrictFloat, Field(ge=0)] | None = None
    price_out_per_million: Annotated[StrictFloat, Field(ge=0)] | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.price_in_per_million is None or self.price_out_per_million is None:
            return None
        return (
            prompt_tokens * self.price_in_per_million + completion_tokens * self.price_out_per_million
        ) / 1_000_000


class CloudConfig(ConfigModel):
    """cloud.json: providers, the one in use, the local-only switch and "always" consents; never a key."""

    error_type: ClassVar[type[UnderstudyError]] = EscalationError
    advice: ClassVar[str] = "fix it or delete it and add your providers again"
    entry_words: ClassVar[dict[str, str]] = {"providers": "provider"}

    providers: dict[str, Provider] = Field(default_factory=dict)
    active: str | None = None
    local_only: bool = False
    # [provider, task type] pairs
    always_allowed: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list
    )

    def provider(self, name: str | None = None) -> Provider:
        wanted = name or self.active
        if wanted is None:
            raise EscalationError(
                "no cloud provider is set up; add one with `understudy cloud add NAME --base-url URL "
                "--model MODEL` and choose it with `understudy cloud use NAME`"
            )
        try:
            return self.providers[wanted]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise EscalationError(f"no cloud provider '{wanted}'; configured: {known}") from None

    def is_always_allowed(self, provider: str, task_type: str) -> bool:
        return [provider, task_type] in self.always_allowed


def cloud_config_path() -> Path:
    return paths.data_dir() / "cloud.json"


def load_cloud_config() -> CloudConfig:
    return load_config(cloud_config_path(), CloudConfig)


def save_cloud_config(config: CloudConfig) -> None:
    save_config(cloud_config_path(), config)


@contextlib.contextmanager
def edit_cloud_config() -> Iterator[CloudConfig]:
    """The saved cloud config to change in place, locked until it is saved."""
    with edit_config(cloud_config_path(), CloudConfig) as config:
        yield config


def set_local_only(on: bool) -> None:
    """The switch that makes every send impossible; ``send`` reads it again right before sending."""
    with edit_cloud_config() as config:
        config.local_only = on


# Keys --------------------------------------------------------------------------------------------------


def _insecure_backend_name() -> str | None:
    """The name of the keyring backend when it would lose or expose keys, else None."""
    import keyring
    from keyring.backends import chainer, fail

    backend = keyring.get_keyring()
    candidates = backend.backends if isinstance(backend, chainer.ChainerBackend) else [backend]
    secure = [
        candidate
        for candidate in candidates
        if not isinstance(candidate, fail.Keyring)
        and "plaintext" not in type(candidate).__name__.lower()
        and "null" not in type(candidate).__module__.lower()
    ]
    return None if secure else f"{type(backend).__module__}.{type(backend).__name__}"


def store_key(provider: str, key: str) -> None:
    """Put an API key in the OS keychain; refuse when only a plaintext or null keyring exists."""
    key = key.strip()
    if not key:
        raise KeyringError("the key is empty; paste the provider's API key")
    insecure = _insecure_backend_name()
    if insecure:
        raise KeyringError(
            f"no secure keychain is available (keyring backend: {insecure}), so the key was not "
            "stored. Install and unlock one: GNOME Keyring or KWallet on Linux (Secret Service), "
            "Keychain on macOS, Credential Locker on Windows"
        )
    import keyring

    keyring.set_password(KEYRING_SERVICE, provider, key)


def load_key(provider: str) -> str | None:
    if _insecure_backend_name():
        return None
    import keyring

    return keyring.get_password(KEYRING_SERVICE, provider)


# Escalations --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Escalation:
    """One escalation as stored: the request, the user's decision and what came back.

    The payload is the redacted request exactly as it would be (or was) sent; ``placeholders`` maps
    each placeholder in it back to the user's original value, so it never leaves the machine.
    """

    id: int
    conversation_id: int | None
    turn_id: int | None  # the local turn it was asked from, when there is one
    created_utc: str
    status: EscalationStatus
    reason: str
    task_type: str
    provider: str
    model: str
    user_text: str  # the request as the user typed it, before redaction
    payload: dict[str, Any]
    placeholders: dict[str, str]
    estimated_cost_usd: float | None
    decided_by: str | None
    consent_utc: str | None
    sent_utc: str | None
    response_text: str | None  # the answer as it came, placeholders and all
    restored_text: str | None  # the answer with the user's details put back
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    error: str | None

    @property
    def decidable(self) -> bool:
        """Whether the user may still approve or deny it (a failed or partial send can be retried)."""
        return self.status in DECIDABLE

    def to_dict(self) -> dict[str, Any]:
        """The stable keys of `understudy escalations list|show --json`; never the placeholders."""
        keys = (
            "id", "status", "provider", "model", "reason", "task_type", "created_utc",
            "estimated_cost_usd", "decided_by", "consent_utc", "sent_utc", "prompt_tokens",
            "completion_tokens", "cost_usd", "error", "payload",
        )  # fmt: skip
        return {**{key: getattr(self, key) for key in keys}, "answer": self.restored_text}


def _escalation(row: dict[str, Any]) -> Escalation:
    """A stored row as a record, its JSON columns parsed."""
    fields = dict(row)
    payload = json.loads(fields.pop("payload_json"))
    placeholders = json.loads(fields.pop("placeholders_json"))
    return Escalation(**fields, payload=payload, placeholders=placeholders)


@dataclass
class SendResult:
    escalation_id: int
    turn_id: int | None  # the cloud answer's turn in the conversation
    conversation_id: int | None
    status: str
    answer: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


class Escalations:
    """Proposals, consent and sending; one per thread (it holds that thread's store)."""

    def __init__(self, store: Store):
        self.store = store

    def propose(
        self,
        messages: list[dict[str, str]],
        reason: str,
        conversation_id: int | None = None,
        turn_id: int | None = None,
        task_type: str = DEFAULT_TASK_TYPE,
        provider_name: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> int:
        """Record a pending escalation whose payload is the redacted request; return its id.

        With the local-only switch on this refuses; with an "always" consent for this provider and
        task type the record is approved at once (decided_by = "always").
        """
        from engine.redact import redact_many

        config = load_cloud_config()
        if config.local_only:
            raise EscalationError(
                "local-only mode is on, so nothing can go to the cloud; turn it off with "
                "`understudy cloud local-only off` (or untick Local only in the Escalations section) first"
            )
        provider = config.provider(provider_name)
        redacted, placeholders = redact_many([message["content"] for message in messages])
        payload = {
            "model": provider.model,
            "messages": [
                {"role": message["role"], "content": text}
                for message, text in zip(messages, redacted, strict=True)
            ],
            "max_tokens": max_tokens,
            "stream": True,
        }
        prompt_estimate = sum(len(text) for text in redacted) // 4 + 8 * len(redacted)
        always = config.is_always_allowed(provider.name, task_type)
        with self.store.transaction():
            return self.store.insert(
                "escalations",
                {
                    "conversation_id": conversation_id,
                    "turn_id": turn_id,
                    "created_utc": utc_now(),
                    "status": "approved" if always else "pending",
                    "reason": reason,
                    "task_type": task_type,
                    "provider": provider.name,
                    "model": provider.model,
                    "user_text": messages[-1]["content"],
                    "payload_json": json.dumps(payload, ensure_ascii=False),
                    "placeholders_json": json.dumps(placeholders, ensure_ascii=False),
                    "estimated_cost_usd": provider.cost(prompt_estimate, max_tokens),
                    "decided_by": "always" if always else None,
                    "consent_utc": utc_now() if always else None,
                },
            )

    def get(self, escalation_id: int) -> Escalation:
        rows = list(self.store.db.query("SELECT * FROM escalations WHERE id = ?", [escalation_id]))
        if not rows:
            raise EscalationError(
                f"there is no escalation {escalation_id}; `understudy escalations list` shows them"
            )
        return _escalation(rows[0])

    def recent(self, status: EscalationStatus | None = None, limit: int = 100) -> list[Escalation]:
        """The newest escalations first, all of them or those with ``status``."""
        where, parameters = ("WHERE status = ?", [status]) if status else ("", [])
        return [
            _escalation(row)
            for row in self.store.db.query(
                f"SELECT * FROM escalations {where} ORDER BY id DESC LIMIT ?", [*parameters, limit]
            )
        ]

    def total_spend(self) -> float:
        rows = list(self.store.db.query("SELECT COALESCE(SUM(cost_usd), 0) AS spend FROM escalations"))
        return float(rows[0]["spend"])

    def edit_payload(self, escalation_id: int, payload: dict[str, Any]) -> None:
        """Replace a pending payload with the user's edit; what is stored is what will be sent."""
        if self.get(escalation_id).status != "pending":
            raise EscalationError(f"escalation {escalation_id} is no longer pending; it can't be edited")
        if not isinstance(payload.get("messages"), list) or not payload.get("model"):
            raise EscalationError("an edited payload still needs 'model' and a list of 'messages'")
        payload = {**payload, "stream": True}
        with self.store.transaction():
            self.store.db.execute(
                "UPDATE escalations SET payload_json = ? WHERE id = ?",
                [json.dumps(payload, ensure_ascii=False), escalation_id],
            )

    def decide(self, escalation_id: int, decision: Decision, decided_by: str = "user") -> None:
        """Record the user's consent (allow once / always for this task type) or denial."""
        escalation = self.get(escalation_id)
        if not escalation.decidable:
            raise EscalationError(
                f"escalation {escalation_id} is already {escalation.status}; nothing to decide"
            )
        if decision == "always":
            pair = [escalation.provider, escalation.task_type]
            with edit_cloud_config() as config:
                if pair not in config.always_allowed:
                    config.always_allowed.append(pair)
        status = "denied" if decision == "deny" else "approved"
        with self.store.transaction():
            self.store.db.execute(
                "UPDATE escalations SET status = ?, decided_by = ?, consent_utc = ? WHERE id = ?",
                [status, decided_by, utc_now(), escalation_id],
            )

    def send(
        self, escalation_id: int, cancel: threading.Event | None = None
    ) -> Generator[str, None, SendResult]:
        """Send an approved escalation's stored payload, byte for byte, and stream the answer.

        Streamed pieces may contain placeholders; the result's answer has the originals restored.
        """
        from engine.redact import restore

        escalation = self.get(escalation_id)
        if escalation.status != "approved":
            raise EscalationError(
                f"escalation {escalation_id} is {escalation.status}, not approved: nothing was sent"
            )
        config = load_cloud_config()
        if config.local_only:
            raise EscalationError(
                f"local-only mode is on, so escalation {escalation_id} was not sent; turn it off with "
                "`understudy cloud local-only off` and approve it again"
            )
        provider = config.provider(escalation.provider)
        pieces: list[str] = []
        usage = None
        error_message = None
        try:
            for piece, chunk_usage in _stream_completion(provider, escalation.payload, cancel):
                if chunk_usage is not None:
                    usage = chunk_usage
                if piece:
                    pieces.append(piece)
                    yield piece
        except EscalationError as error:
            error_message = str(error)
        answer = "".join(pieces)
        restored = restore(answer, escalation.placeholders)
        payload_text = json.dumps(escalation.payload["messages"], ensure_ascii=False)
        prompt_tokens = usage[0] if usage else len(payload_text) // 4
        completion_tokens = usage[1] if usage else len(answer) // 4
        cost = provider.cost(prompt_tokens, completion_tokens)
        status = "sent" if error_message is None else ("partial" if answer else "failed")
        turn = TurnRecord(
            conversation_id=escalation.conversation_id,
            user_text=escalation.user_text,
            model_id=f"{provider.name}:{provider.model}",
            answer_text=restored,
            route="cloud",
            status="ok" if status == "sent" else "error",
            error=error_message,
            model_calls=[
                ModelCallRecord(
                    model_id=f"{provider.name}:{provider.model}",
                    backend="openai_compatible",
                    messages=escalation.payload["messages"],
                    response_text=answer,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    finish_reason="stop" if status == "sent" else "error",
                    error=error_message,
                )
            ],
        )
        turn_id = None
        with self.store.transaction():
            if status != "failed":
                turn_id = self.store.write_turn(turn)
            self.store.db.execute(
                "UPDATE escalations SET status = ?, sent_utc = ?, response_text = ?, restored_text = ?, "
                "prompt_tokens = ?, completion_tokens = ?, cost_usd = ?, error = ?, "
                "conversation_id = ? WHERE id = ?",
                [
                    status, utc_now(), answer, restored, prompt_tokens, completion_tokens, cost,
                    error_message, turn.conversation_id, escalation_id,
                ],
            )  # fmt: skip
            if status == "sent":
                self.store.insert(
                    "teacher_examples",
                    {
                        "escalation_id": escalation_id,
                        "task_type": escalation.task_type,
                        "request_text": escalation.user_text,
                        "payload_json": json.dumps(escalation.payload, ensure_ascii=False),
                        "answer_text": answer,
                        "created_utc": utc_now(),
                    },
                )
        if error_message is not None:
            kept = " The part that arrived is kept." if answer else ""
            raise EscalationError(
                f"{error_message}.{kept} Retry with `understudy escalations approve {escalation_id}`"
            )
        return SendResult(
            escalation_id,
            turn_id,
            turn.conversation_id,
            status,
            restored,
            prompt_tokens,
            completion_tokens,
            cost,
        )


def _stream_completion(
    provider: Provider, payload: dict[str, Any], cancel: threading.Event | None
) -> Generator[tuple[str, tuple[int, int] | None], None, None]:
    """Stream a chat completion with the official SDK; the body is exactly ``payload``."""
    import openai

    client = openai.OpenAI(
        base_url=provider.base_url,
        api_key=load_key(provider.name) or "no-key",
        max_retries=0,
        timeout=REQUEST_TIMEOUT_S,
    )
    finished = False
    try:
        stream = client.chat.completions.create(**payload)
        with stream:
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    raise EscalationError("stopped by you before the answer was complete")
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens) if chunk.usage else None
                text = chunk.choices[0].delta.content if chunk.choices else None
                finished = finished or bool(chunk.choices and chunk.choices[0].finish_reason)
                yield text or "", usage
    except openai.APITimeoutError as error:
        raise EscalationError(f"{provider.name} did not answer within {REQUEST_TIMEOUT_S:.0f} s") from error
    except openai.APIConnectionError as error:
        raise EscalationError(
            f"could not reach {provider.name} at {provider.base_url} (is it running, is the address "
            "right, is this machine online?)"
        ) from error
    except openai.RateLimitError as error:
        raise EscalationError(f"{provider.name} is rate-limiting requests (429); wait a moment") from error
    except openai.AuthenticationError as error:
        raise EscalationError(
            f"{provider.name} rejected the API key (401); set it again with "
            f"`understudy cloud key {provider.name}`"
        ) from error
    except openai.APIStatusError as error:
        raise EscalationError(
            f"{provider.name} answered with an error ({error.status_code}): {error.message}"
        ) from error
    except openai.APIError as error:
        raise EscalationError(f"{provider.name}'s answer broke off ({error})") from error
    if not finished:
        raise EscalationError(f"{provider.name}'s answer was cut off before it finished")
