"""Import chat history from before Understudy (OpenAI chat-format JSONL) so discovery can use it.

Each line is one record ``{"messages": [{"role": ..., "content": ...}, ...]}``, as exported by many
agents and tools (and by ``understudy logs export``). A record becomes one new conversation; each user
message answered by an assistant message becomes a turn, marked ``imported = 1`` with model and route
``imported``; the messages before it (system prompts included) are kept as the context its model call
saw. A record already imported (same canonical JSON, by sha256) is skipped, so importing a file twice
adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import LogImportError
from engine.store import ModelCallRecord, Store, TurnRecord, utc_now

IMPORTED = "imported"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
SHOWN_ERRORS = 20


@dataclass
class ImportResult:
    path: str
    records: int = 0  # records imported now
    turns: int = 0
    duplicates: int = 0  # records imported before, skipped
    empty: int = 0  # records with no answered user message, skipped
    errors: list[str] = field(default_factory=list)  # "line N: what is wrong", for skipped lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "records": self.records,
            "turns": self.turns,
            "duplicates": self.duplicates,
            "empty": self.empty,
            "errors": self.errors,
        }


def import_chat_jsonl(store: Store, path: Path, skip_invalid: bool = False) -> ImportResult:
    """Import every record of ``path`` in one transaction.

    A malformed line stops the import with every problem listed by line number and nothing written,
    unless ``skip_invalid`` is set: then the good lines are imported and the bad ones reported.
    """
    result = ImportResult(str(path))
    parsed: list[tuple[int, str, list[tuple[list[dict[str, str]], str, str]]]] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise LogImportError(f"cannot read {path}: {error.strerror or error}") from error
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                turns = _turns_of(record)
            except ValueError as error:
                result.errors.append(f"line {number}: {error}")
                continue
            digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
            parsed.append((number, digest, turns))
    if result.errors and not skip_invalid:
        raise LogImportError(_summary(path, result.errors))

    source = str(path.resolve())
    with store.transaction():
        seen = {row["sha256"] for row in store.db.query("SELECT sha256 FROM imported_records")}
        for number, digest, turns in parsed:
            if digest in seen:
                result.duplicates += 1
                continue
            seen.add(digest)
            if not turns:
                result.empty += 1
                continue
            conversation_id = None
            for context, request, answer in turns:
                turn = TurnRecord(
                    conversation_id=conversation_id,
                    user_text=request,
                    model_id=IMPORTED,
                    answer_text=answer,
                    route=IMPORTED,
                    model_calls=[
                        ModelCallRecord(
                            model_id=IMPORTED,
                            backend=IMPORTED,
                            messages=[*context, {"role": "user", "content": request}],
                            response_text=answer,
                            finish_reason="stop",
                        )
                    ],
                )
                store.write_turn(turn)
                conversation_id = turn.conversation_id
                result.turns += 1
            store.db.execute("UPDATE turns SET imported = 1 WHERE conversation_id = ?", [conversation_id])
            store.insert(
                "imported_records",
                {
                    "sha256": digest,
                    "conversation_id": conversation_id,
                    "source": source,
                    "line": number,
                    "created_utc": utc_now(),
                },
            )
            result.records += 1
    return result


def _summary(path: Path, errors: list[str]) -> str:
    shown = "; ".join(errors[:SHOWN_ERRORS])
    more = f"; and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
    return (
        f"{path} has {len(errors)} malformed line(s), so nothing was imported: {shown}{more}. Fix them, "
        "or pass --skip-invalid to import the other lines"
    )


def _turns_of(record: Any) -> list[tuple[list[dict[str, str]], str, str]]:
    """(context messages, request, answer) for each answered user message of a record.

    Raises ValueError saying what is wrong with a malformed record.
    """
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise ValueError('expected an object with a "messages" list')
    messages = []
    for index, message in enumerate(record["messages"]):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"message {index + 1} has no known role (one of {', '.join(ROLES)})")
        messages.append({"role": message["role"], "content": _text_of(message.get("content"), index)})
    if not any(message["role"] == "user" for message in messages):
        raise ValueError("there is no user message")

    turns = []
    context: list[dict[str, str]] = []
    pending: list[str] = []  # user messages not answered yet (several in a row are one request)
    for message in messages:
        if message["role"] == "user":
            pending.append(message["content"])
        elif message["role"] == "assistant" and pending:
            request = "\n\n".join(pending)
            turns.append((list(context), request, message["content"]))
            context += [{"role": "user", "content": request}, message]
            pending = []
        else:
            context.append(message)
    return turns


def _text_of(content: Any, index: int) -> str:
    """A message's text: a string, or the text parts of a list of content parts; none is ''."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    raise ValueError(f"message {index + 1} has content that is neither text nor a list of parts")
