"""S1, the log: one SQLite database in the data dir, opened through sqlite-utils.

Every turn and the model calls made for it are written in a single transaction after the answer is
complete, so logging never interrupts decoding and a crash never leaves half a turn behind.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from engine import paths
from engine.errors import StoreError
from engine.store.migrations import migrate

if TYPE_CHECKING:
    from engine.backends import Completion

BUSY_TIMEOUT_MS = 5000


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class ModelCallRecord:
    """One call to a model, with the exact messages it saw (after any context trimming)."""

    model_id: str
    backend: str
    messages: list[dict[str, str]]
    response_text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    duration_ms: float | None = None
    decode_tok_s: float | None = None
    finish_reason: str | None = None
    trimmed_messages: int = 0
    n_threads: int | None = None
    n_ctx: int | None = None
    gpu_layers: int | None = None
    adapter_id: int | None = None
    error: str | None = None

    def take(self, completion: Completion) -> None:
        """Copy what a finished model call produced: the messages it saw, its text, usage and timings."""
        self.messages = completion.messages
        self.response_text = completion.text
        self.prompt_tokens = completion.prompt_tokens
        self.completion_tokens = completion.completion_tokens
        self.ttft_ms = completion.ttft_ms
        self.duration_ms = completion.duration_ms
        self.decode_tok_s = completion.decode_tokens_per_second
        self.finish_reason = completion.finish_reason
        self.trimmed_messages = completion.trimmed_messages


@dataclass
class ToolCallRecord:
    tool: str
    arguments_json: str  # exactly what the model produced (or its repair), never re-serialised
    risk: str
    decision: str  # allowed | denied | invalid
    decided_by: str  # policy | user | always-rule | deny-list | validation
    result: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: float | None = None


@dataclass
class TurnRecord:
    """A turn to log; a None conversation_id starts a new conversation in the same transaction."""

    conversation_id: int | None
    user_text: str
    model_id: str
    answer_text: str = ""
    status: str = "ok"
    route: str = "local"
    error: str | None = None
    adapter_id: int | None = None
    model_calls: list[ModelCallRecord] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    # Turns this one replaces (a regenerated answer, or an edited question and what followed it).
    replaces: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class TurnProvenance:
    """Where a turn's answer came from, so datasets can tell a teacher's answers from a local model's."""

    source: str  # "live": answered through Understudy; "import": read from another tool's log
    answer_model: str | None  # the model that wrote the answer, when known
    teacher: bool  # that model is a teacher (a cloud model) rather than a local one
    file: str | None = None  # the imported file's absolute path
    line: int | None = None  # the record's line in it


class Store:
    """The database connection plus the queries the app needs. One per thread."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None):
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path | str | None = None) -> Store:
        """Open (creating if needed) and migrate the database; ``":memory:"`` for tests of the schema."""
        if path is None:
            path = paths.database_path()
        in_memory = str(path) == ":memory:"
        try:
            # isolation_level=None: transactions are ours (BEGIN/COMMIT), not the sqlite3 module's.
            connection = sqlite3.connect(str(path), isolation_level=None)
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not in_memory:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            store = cls(sqlite_utils.Database(connection), None if in_memory else Path(path))
            migrate(store.db)
        except sqlite3.DatabaseError as error:
            raise StoreError(_explain(error, path)) from error
        return store

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction; rolled back whole on any error."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as error:
            raise StoreError(_explain(error, self.path)) from error
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as error:
            self.db.execute("ROLLBACK")
            if isinstance(error, sqlite3.DatabaseError):
                raise StoreError(_explain(error, self.path)) from error
            raise

    def insert(self, table: str, row: dict[str, Any]) -> int:
        # Plain SQL: sqlite-utils' insert() commits on its own, which would split the turn's transaction.
        columns = ", ".join(row)
        placeholders = ", ".join("?" for _ in row)
        cursor = self.db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", list(row.values())
        )
        return cursor.lastrowid

    # Conversations ------------------------------------------------------------------------------

    def create_conversation(self, title: str) -> int:
        with self.transaction():
            return self.insert("conversations", {"title": _title_from(title), "created_utc": utc_now()})

    def latest_conversation_id(self) -> int | None:
        rows = list(self.db.query("SELECT id FROM conversations ORDER BY id DESC LIMIT 1"))
        return rows[0]["id"] if rows else None

    def conversation_exists(self, conversation_id: int) -> bool:
        return bool(list(self.db.query("SELECT 1 FROM conversations WHERE id = ?", [conversation_id])))

    def conversation_history(
        self, conversation_id: int, before_turn_id: int | None = None
    ) -> list[dict[str, str]]:
        """The completed, current exchanges of a conversation as chat messages, oldest first.

        ``before_turn_id`` stops before that turn, for regenerating or editing it.
        """
        history: list[dict[str, str]] = []
        for row in self.db.query(
            "SELECT user_text, answer_text FROM turns WHERE conversation_id = ? AND status = 'ok' "
            "AND replaced_by IS NULL AND id < ? ORDER BY id",
            [conversation_id, before_turn_id or 2**62],
        ):
            history.append({"role": "user", "content": row["user_text"]})
            history.append({"role": "assistant", "content": row["answer_text"]})
        return history

    # Turns --------------------------------------------------------------------------------------

    def log_turn(self, turn: TurnRecord) -> int:
        """Write a turn and its model calls in one transaction; return the turn id."""
        with self.transaction():
            return self.write_turn(turn)

    def write_turn(self, turn: TurnRecord) -> int:
        """Write a turn inside the caller's transaction (for records that must commit with it)."""
        if turn.conversation_id is None:
            turn.conversation_id = self.insert(
                "conversations", {"title": _title_from(turn.user_text), "created_utc": utc_now()}
            )
        turn_id = self.insert(
            "turns",
            {
                "conversation_id": turn.conversation_id,
                "created_utc": utc_now(),
                "user_text": turn.user_text,
                "answer_text": turn.answer_text,
                "route": turn.route,
                "model_id": turn.model_id,
                "adapter_id": turn.adapter_id,
                "status": turn.status,
                "error": turn.error,
            },
        )
        for call in turn.model_calls:
            row = asdict(call)
            row["messages_json"] = json.dumps(row.pop("messages"), ensure_ascii=False)
            row["turn_id"] = turn_id
            self.insert("model_calls", row)
        for call in turn.tool_calls:
            self.insert(
                "tool_calls",
                {
                    "turn_id": turn_id,
                    "tool": call.tool,
                    "args_json": call.arguments_json,
                    "risk": call.risk,
                    "decision": call.decision,
                    "decided_by": call.decided_by,
                    "result_json": None
                    if call.result is None
                    else json.dumps(call.result, ensure_ascii=False),
                    "error": call.error,
                    "duration_ms": call.duration_ms,
                },
            )
        for replaced in turn.replaces:
            self.db.execute("UPDATE turns SET replaced_by = ? WHERE id = ?", [turn_id, replaced])
        return turn_id

    def recent_turns(self, limit: int = 10, query: str | None = None) -> list[dict[str, Any]]:
        """Newest turns first, each with its rating and model calls; ``query`` is full-text search."""
        if query:
            where = "JOIN turns_fts ON turns_fts.rowid = turns.id WHERE turns_fts MATCH ?"
            parameters: list[Any] = [_fts_query(query), limit]
        else:
            where, parameters = "", [limit]
        sql = (
            "SELECT turns.*, feedback.rating, feedback.comment AS rating_comment FROM turns "
            f"LEFT JOIN feedback ON feedback.turn_id = turns.id {where} ORDER BY turns.id DESC LIMIT ?"
        )
        turns = [dict(row) for row in self.db.query(sql, parameters)]
        for turn in turns:
            turn["model_calls"] = [
                dict(call)
                for call in self.db.query(
                    "SELECT * FROM model_calls WHERE turn_id = ? ORDER BY id", [turn["id"]]
                )
            ]
        return turns

    def turn_provenance(self, turn_ids: Iterable[int]) -> dict[int, TurnProvenance]:
        """Where each of these turns' answers came from; ids of no turn are left out.

        A live turn's answer is its model's, a teacher's when it went to the cloud; an imported turn's
        is what its record said (``engine.log_import``).
        """
        rows = self.db.query(
            "SELECT turns.id, turns.imported, turns.model_id, turns.route, imported_records.file, "
            "imported_records.line, imported_records.answer_model, imported_records.teacher FROM turns "
            "LEFT JOIN imported_records ON turns.imported = 1 "
            "AND imported_records.conversation_id = turns.conversation_id "
            "WHERE turns.id IN (SELECT value FROM json_each(?))",
            [json.dumps(list(turn_ids))],
        )
        provenance = {}
        for row in rows:
            if row["imported"]:
                provenance[row["id"]] = TurnProvenance(
                    source="import",
                    answer_model=row["answer_model"],
                    teacher=bool(row["teacher"]),
                    file=row["file"],
                    line=row["line"],
                )
            else:
                provenance[row["id"]] = TurnProvenance(
                    source="live", answer_model=row["model_id"], teacher=row["route"] == "cloud"
                )
        return provenance

    def iter_chat_records(self) -> Iterator[dict[str, list[dict[str, str]]]]:
        """Completed turns in OpenAI chat format, one ``{"messages": [...]}`` per turn.

        Each record holds the messages the model actually saw followed by its answer, so it can
        serve as a fine-tuning example as it is.
        """
        for row in self.db.query(
            "SELECT turns.answer_text, model_calls.messages_json FROM turns "
            "JOIN model_calls ON model_calls.id = ("
            "  SELECT MAX(id) FROM model_calls WHERE turn_id = turns.id) "
            "WHERE turns.status = 'ok' AND turns.replaced_by IS NULL ORDER BY turns.id"
        ):
            messages = json.loads(row["messages_json"])
            messages.append({"role": "assistant", "content": row["answer_text"]})
            yield {"messages": messages}

    # What the GUI shows -------------------------------------------------------------------------

    def list_conversations(self) -> list[dict[str, Any]]:
        """Conversations not deleted, most recently active first."""
        return [
            dict(row)
            for row in self.db.query(
                "SELECT conversations.id, conversations.title, conversations.created_utc, "
                "MAX(turns.created_utc) AS last_turn_utc, COUNT(turns.id) AS turn_count "
                "FROM conversations LEFT JOIN turns ON turns.conversation_id = conversations.id "
                "AND turns.replaced_by IS NULL WHERE conversations.deleted_utc IS NULL "
                "GROUP BY conversations.id "
                "ORDER BY COALESCE(MAX(turns.created_utc), conversations.created_utc) DESC, "
                "conversations.id DESC"
            )
        ]

    def current_turns_from(self, turn_id: int) -> tuple[int, list[int]]:
        """The conversation of ``turn_id`` and the ids of its current turns from that one on."""
        rows = list(self.db.query("SELECT conversation_id FROM turns WHERE id = ?", [turn_id]))
        if not rows:
            raise StoreError(f"there is no turn {turn_id}")
        conversation_id = rows[0]["conversation_id"]
        ids = [
            row["id"]
            for row in self.db.query(
                "SELECT id FROM turns WHERE conversation_id = ? AND id >= ? AND replaced_by IS NULL",
                [conversation_id, turn_id],
            )
        ]
        return conversation_id, ids

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        title = title.strip()
        if not title:
            raise StoreError("a conversation needs a title; type at least one character")
        with self.transaction():
            self.db.execute("UPDATE conversations SET title = ? WHERE id = ?", [title[:200], conversation_id])

    def delete_conversation(self, conversation_id: int) -> None:
        """Hide a conversation; ``restore_conversation`` undoes it until ``purge_deleted`` runs."""
        with self.transaction():
            self.db.execute(
                "UPDATE conversations SET deleted_utc = ? WHERE id = ?", [utc_now(), conversation_id]
            )

    def restore_conversation(self, conversation_id: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE conversations SET deleted_utc = NULL WHERE id = ?", [conversation_id])

    def purge_deleted(self) -> int:
        """Remove deleted conversations and everything logged in them for good."""
        with self.transaction():
            cursor = self.db.execute("DELETE FROM conversations WHERE deleted_utc IS NOT NULL")
        return cursor.rowcount

    def conversation_turns(self, conversation_id: int) -> list[dict[str, Any]]:
        """The current turns of a conversation with their last model call's numbers, rating, routing
        decision and tool calls."""
        turns = [
            dict(row)
            for row in self.db.query(
                "SELECT turns.*, feedback.rating, model_calls.prompt_tokens, "
                "model_calls.completion_tokens, model_calls.ttft_ms, model_calls.decode_tok_s, "
                "model_calls.finish_reason, model_calls.trimmed_messages, "
                "route_decisions.target AS route_target, route_decisions.reason AS route_reason, "
                "tasks.label AS task_label FROM turns "
                "LEFT JOIN feedback ON feedback.turn_id = turns.id "
                "LEFT JOIN model_calls ON model_calls.id = ("
                "  SELECT MAX(id) FROM model_calls WHERE turn_id = turns.id) "
                "LEFT JOIN route_decisions ON route_decisions.id = ("
                "  SELECT MIN(id) FROM route_decisions WHERE turn_id = turns.id) "
                "LEFT JOIN tasks ON tasks.id = route_decisions.task_id "
                "WHERE turns.conversation_id = ? AND turns.replaced_by IS NULL ORDER BY turns.id",
                [conversation_id],
            )
        ]
        for turn in turns:
            turn["tool_calls"] = [
                dict(call)
                for call in self.db.query(
                    "SELECT * FROM tool_calls WHERE turn_id = ? ORDER BY id", [turn["id"]]
                )
            ]
        return turns

    def set_feedback(self, turn_id: int, rating: int | None, comment: str = "") -> None:
        """Thumbs up (1) or down (-1) on an answer; None takes the rating back."""
        with self.transaction():
            if rating is None:
                self.db.execute("DELETE FROM feedback WHERE turn_id = ?", [turn_id])
                return
            if rating not in (-1, 1):
                raise StoreError(f"a rating is 1 (good) or -1 (bad), not {rating!r}")
            if not list(self.db.query("SELECT 1 FROM turns WHERE id = ?", [turn_id])):
                raise StoreError(f"there is no turn {turn_id}; `understudy logs` shows turns with their ids")
            self.db.execute(
                "INSERT INTO feedback (turn_id, rating, comment, created_utc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(turn_id) DO UPDATE SET rating = excluded.rating, "
                "comment = excluded.comment, created_utc = excluded.created_utc",
                [turn_id, rating, comment, utc_now()],
            )

    def search_conversations(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Full-text search over every turn; one hit per matching turn, with a highlighted snippet."""
        return [
            dict(row)
            for row in self.db.query(
                "SELECT turns.id AS turn_id, turns.conversation_id, conversations.title, "
                "snippet(turns_fts, -1, '[', ']', '…', 12) AS snippet FROM turns_fts "
                "JOIN turns ON turns.id = turns_fts.rowid "
                "JOIN conversations ON conversations.id = turns.conversation_id "
                "WHERE turns_fts MATCH ? AND conversations.deleted_utc IS NULL "
                "ORDER BY rank LIMIT ?",
                [_fts_query(query), limit],
            )
        ]

    def export_conversation(self, conversation_id: int) -> dict[str, Any]:
        """A conversation and its current turns, for saving as JSON or Markdown."""
        rows = list(self.db.query("SELECT * FROM conversations WHERE id = ?", [conversation_id]))
        if not rows:
            raise StoreError(f"there is no conversation {conversation_id}")
        conversation = rows[0]
        turns = [
            {
                key: turn[key]
                for key in (
                    "id",
                    "created_utc",
                    "user_text",
                    "answer_text",
                    "model_id",
                    "status",
                    "rating",
                    "prompt_tokens",
                    "completion_tokens",
                    "ttft_ms",
                    "decode_tok_s",
                )
            }
            for turn in self.conversation_turns(conversation_id)
        ]
        return {
            "id": conversation["id"],
            "title": conversation["title"],
            "created_utc": conversation["created_utc"],
            "turns": turns,
        }


def conversation_markdown(export: dict[str, Any]) -> str:
    """A conversation export as a Markdown document."""
    lines = [f"# {export['title']}", "", f"_Started {export['created_utc']}_", ""]
    for turn in export["turns"]:
        lines += ["## You", "", turn["user_text"], "", f"## {turn['model_id']}", ""]
        lines += [turn["answer_text"] or f"_({turn['status']})_", ""]
    return "\n".join(lines)


def _title_from(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else "New conversation"
    return first_line[:60] + ("…" if len(first_line) > 60 else "")


def _fts_query(text: str) -> str:
    """Quote each word so user text (hyphens, colons, quotes) is never read as FTS syntax."""
    words = [word.replace('"', '""') for word in text.split()]
    return " ".join(f'"{word}"' for word in words)


def _explain(error: sqlite3.DatabaseError, path: Path | str | None) -> str:
    message = str(error)
    where = f"the database {path}" if path else "the database"
    if "disk is full" in message or "disk I/O error" in message:
        return (
            f"could not write to {where}: the disk is full ({message}). Free some space and try "
            "again; nothing already logged was lost"
        )
    if "locked" in message or "busy" in message:
        return f"{where} is busy in another process ({message}); close it or try again"
    if "not a database" in message or "malformed" in message:
        return (
            f"{where} is damaged ({message}); move it aside to start a fresh log (the old file keeps "
            "its data for recovery)"
        )
    return f"{where}: {message}"
