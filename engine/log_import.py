"""Import chat history from before Understudy (OpenAI chat-format JSONL) so discovery can use it.

Each line is one record ``{"messages": [{"role": ..., "content": ...}, ...]}``, as exported by many
agents and tools (and by ``understudy logs export``), perhaps with an ``id`` and the ``model`` that
answered, as OpenAI chat-completion records carry. A record becomes one new conversation; each user
message answered by an assistant message becomes a turn, marked ``imported = 1`` with model and route
``imported``; the messages before it (system prompts included) are kept as the context its model call
saw. Where the answers came from (file, line, answering model, teacher or not) is kept with the record in
``imported_records`` and read back through ``Store.turn_provenance``.

Every record is kept, repeats included: a request made two hundred times is two hundred calls, and
repetition is what marks a task worth replacing. Only a record imported before is skipped, known by
its identity:

- A record with an ``id`` is that id together with its content hash (sha256 of its canonical JSON).
  The content keeps two tools' ids apart when both count from 1; the id keeps a record recognised when
  it moves (a rotated or merged log).
- Any other record is its line number plus its content hash, within its file's identity: the hash of
  the file's first record. A log that grew, or the same history exported again under another name,
  begins with the same record, so its old lines are recognised and only its new ones imported; another
  log holding an identical record on the same line begins differently, so it loses nothing. The path
  plays no part: a log moved elsewhere is the same log, and a path reused for another log is not. A
  record without an id that moved to another line is imported again; give records ids to avoid that.
- Records imported before this rule (schema migration m010) are known by path, line and content hash.

The answering model is ``teacher`` when given, and the answers count as a teacher's (a cloud model's);
otherwise it is the record's ``model``, a teacher unless it names a model of the local catalog.
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

Messages = list[dict[str, str]]


@dataclass
class ImportResult:
    path: str
    records: int = 0  # records imported now
    turns: int = 0
    distinct_requests: int = 0  # different requests among the turns imported now (repeats are kept)
    teacher_turns: int = 0  # turns imported now whose answer is a teacher's
    duplicates: int = 0  # records imported before, skipped
    empty: int = 0  # records with no answered user message, skipped
    errors: list[str] = field(default_factory=list)  # "line N: what is wrong", for skipped lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "records": self.records,
            "turns": self.turns,
            "distinct_requests": self.distinct_requests,
            "teacher_turns": self.teacher_turns,
            "duplicates": self.duplicates,
            "empty": self.empty,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class _Record:
    """One parsed line: its identity (see the module docstring) and what it adds to the log."""

    line: int
    identity: str
    identity_before_m010: str
    sha256: str
    answer_model: str | None
    turns: list[tuple[Messages, str, str]]


def import_chat_jsonl(
    store: Store, path: Path, skip_invalid: bool = False, teacher: str | None = None
) -> ImportResult:
    """Import every record of ``path`` in one transaction; ``teacher`` names the model that answered.

    A malformed line stops the import with every problem listed by line number and nothing written,
    unless ``skip_invalid`` is set: then the good lines are imported and the bad ones reported.
    """
    result = ImportResult(str(path))
    source = str(path.resolve())
    lines = _lines_of(path)
    file_identity = _file_identity(lines[0][1]) if lines else ""
    parsed: list[_Record] = []
    for number, text in lines:
        try:
            parsed.append(_record_of(number, text, file_identity, source, teacher))
        except ValueError as error:
            result.errors.append(f"line {number}: {error}")
    if result.errors and not skip_invalid:
        raise LogImportError(_summary(path, result.errors))
    local_models = _local_models() if not teacher and any(record.answer_model for record in parsed) else set()

    requests: set[str] = set()
    with store.transaction():
        seen = {row["identity"] for row in store.db.query("SELECT identity FROM imported_records")}
        for record in parsed:
            if not record.turns:
                result.empty += 1
                continue
            if record.identity in seen or record.identity_before_m010 in seen:
                result.duplicates += 1
                continue
            seen.add(record.identity)
            is_teacher = bool(teacher) or (
                record.answer_model is not None and record.answer_model not in local_models
            )
            conversation_id = None
            for context, request, answer in record.turns:
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
                requests.add(request)
            store.db.execute("UPDATE turns SET imported = 1 WHERE conversation_id = ?", [conversation_id])
            store.insert(
                "imported_records",
                {
                    "identity": record.identity,
                    "sha256": record.sha256,
                    "conversation_id": conversation_id,
                    "file": source,
                    "line": record.line,
                    "answer_model": record.answer_model,
                    "teacher": int(is_teacher),
                    "created_utc": utc_now(),
                },
            )
            result.records += 1
            result.turns += len(record.turns)
            result.teacher_turns += len(record.turns) if is_teacher else 0
    result.distinct_requests = len(requests)
    return result


def _lines_of(path: Path) -> list[tuple[int, str]]:
    """The file's non-blank lines with their line numbers."""
    try:
        with path.open(encoding="utf-8") as handle:
            return [(number, line) for number, line in enumerate(handle, start=1) if line.strip()]
    except OSError as error:
        raise LogImportError(f"cannot read {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise LogImportError(f"{path} is not UTF-8 text ({error.reason}); save it as UTF-8") from error


def _file_identity(first_line: str) -> str:
    """The hash of a file's first record (of its text, when that is not JSON)."""
    try:
        return _content_hash(json.loads(first_line))
    except ValueError:
        return hashlib.sha256(first_line.strip().encode()).hexdigest()


def _content_hash(record: Any) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _record_of(number: int, text: str, file_identity: str, source: str, teacher: str | None) -> _Record:
    """Raises ValueError saying what is wrong with a malformed line."""
    record = json.loads(text)
    turns = _turns_of(record)
    sha256 = _content_hash(record)
    record_id = record.get("id")
    if record_id is None:
        identity = f"line:{file_identity}:{number}:{sha256}"
    elif isinstance(record_id, str | int) and not isinstance(record_id, bool):
        identity = f"id:{record_id}:{sha256}"
    else:
        raise ValueError('its "id" is neither text nor a whole number')
    answer_model = teacher or record.get("model")
    if answer_model is not None and not isinstance(answer_model, str):
        raise ValueError('its "model" is not text')
    return _Record(
        line=number,
        identity=identity,
        identity_before_m010=f"path:{source}:{number}:{sha256}",
        sha256=sha256,
        answer_model=answer_model or None,
        turns=turns,
    )


def _local_models() -> set[str]:
    """The catalog's model ids: answers by one of these are a local model's, not a teacher's."""
    from engine.catalog import load_catalog

    return {entry.id for entry in load_catalog()}


def _summary(path: Path, errors: list[str]) -> str:
    shown = "; ".join(errors[:SHOWN_ERRORS])
    more = f"; and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
    return (
        f"{path} has {len(errors)} malformed line(s), so nothing was imported: {shown}{more}. Fix them, "
        "or pass --skip-invalid to import the other lines"
    )


def _turns_of(record: Any) -> list[tuple[Messages, str, str]]:
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
    context: Messages = []
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
