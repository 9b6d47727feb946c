"""Numbered schema migrations, applied in order and recorded in ``_migrations``.

Append new migrations at the end; never edit one that has shipped. Each runs inside one transaction
together with the row that records it, so a crash leaves the schema either before or after it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[Migration] = []


def migration(function: Migration) -> Migration:
    MIGRATIONS.append(function)
    return function


@migration
def m001_log(db: sqlite_utils.Database) -> None:
    """S1: conversations, their turns, and every model call made for a turn."""
    db.execute(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            created_utc TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            created_utc TEXT NOT NULL,
            user_text TEXT NOT NULL,
            answer_text TEXT NOT NULL DEFAULT '',
            route TEXT NOT NULL DEFAULT 'local',
            model_id TEXT NOT NULL,
            adapter_id INTEGER,
            cluster_id INTEGER,
            status TEXT NOT NULL CHECK (status IN ('ok', 'cancelled', 'error')),
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX turns_by_conversation ON turns(conversation_id, id)")
    db.execute(
        """
        CREATE TABLE model_calls (
            id INTEGER PRIMARY KEY,
            turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            model_id TEXT NOT NULL,
            adapter_id INTEGER,
            backend TEXT NOT NULL,
            messages_json TEXT NOT NULL,
            response_text TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            ttft_ms REAL,
            duration_ms REAL,
            decode_tok_s REAL,
            finish_reason TEXT,
            trimmed_messages INTEGER NOT NULL DEFAULT 0,
            n_threads INTEGER,
            n_ctx INTEGER,
            gpu_layers INTEGER,
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX model_calls_by_turn ON model_calls(turn_id)")


@migration
def m002_turns_fts(db: sqlite_utils.Database) -> None:
    """Full-text search over what was asked and answered, kept in step by triggers."""
    db.execute(
        """
        CREATE VIRTUAL TABLE turns_fts USING fts5(
            user_text, answer_text, content='turns', content_rowid='id'
        )
        """
    )
    db.execute(
        """
        CREATE TRIGGER turns_ai AFTER INSERT ON turns BEGIN
            INSERT INTO turns_fts(rowid, user_text, answer_text)
            VALUES (new.id, new.user_text, new.answer_text);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER turns_ad AFTER DELETE ON turns BEGIN
            INSERT INTO turns_fts(turns_fts, rowid, user_text, answer_text)
            VALUES ('delete', old.id, old.user_text, old.answer_text);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER turns_au AFTER UPDATE ON turns BEGIN
            INSERT INTO turns_fts(turns_fts, rowid, user_text, answer_text)
            VALUES ('delete', old.id, old.user_text, old.answer_text);
            INSERT INTO turns_fts(rowid, user_text, answer_text)
            VALUES (new.id, new.user_text, new.answer_text);
        END
        """
    )


@migration
def m003_conversation_care(db: sqlite_utils.Database) -> None:
    """Undoable deletes, turns replaced by a regenerate or an edit, and the user's thumbs up/down."""
    db.execute("ALTER TABLE conversations ADD COLUMN deleted_utc TEXT")
    db.execute("ALTER TABLE turns ADD COLUMN replaced_by INTEGER REFERENCES turns(id) ON DELETE SET NULL")
    db.execute(
        """
        CREATE TABLE feedback (
            turn_id INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
            rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
            comment TEXT NOT NULL DEFAULT '',
            created_utc TEXT NOT NULL
        )
        """
    )


@migration
def m004_escalations(db: sqlite_utils.Database) -> None:
    """Consent-gated cloud calls: every proposal, its decision, the exact payload and what came back;
    approved answers become teacher examples for tuning."""
    db.execute(
        """
        CREATE TABLE escalations (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER REFERENCES conversations(id) ON DELETE SET NULL,
            turn_id INTEGER REFERENCES turns(id) ON DELETE SET NULL,
            created_utc TEXT NOT NULL,
            status TEXT NOT NULL CHECK (
                status IN ('pending', 'approved', 'denied', 'sent', 'partial', 'failed')
            ),
            reason TEXT NOT NULL,
            task_type TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            user_text TEXT NOT NULL,
            payload_json TEXT NOT NULL,
            placeholders_json TEXT NOT NULL DEFAULT '{}',
            estimated_cost_usd REAL,
            decided_by TEXT,
            consent_utc TEXT,
            sent_utc TEXT,
            response_text TEXT,
            restored_text TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost_usd REAL,
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX escalations_by_status ON escalations(status, id)")
    db.execute(
        """
        CREATE TABLE teacher_examples (
            id INTEGER PRIMARY KEY,
            escalation_id INTEGER NOT NULL REFERENCES escalations(id) ON DELETE CASCADE,
            task_type TEXT NOT NULL,
            request_text TEXT NOT NULL,
            payload_json TEXT NOT NULL,
            answer_text TEXT NOT NULL,
            created_utc TEXT NOT NULL
        )
        """
    )


@migration
def m005_tool_calls(db: sqlite_utils.Database) -> None:
    """Every tool call a turn made: arguments verbatim, the permission decision and who made it."""
    db.execute(
        """
        CREATE TABLE tool_calls (
            id INTEGER PRIMARY KEY,
            turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            tool TEXT NOT NULL,
            args_json TEXT NOT NULL,
            risk TEXT NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('allowed', 'denied', 'invalid')),
            decided_by TEXT NOT NULL,
            result_json TEXT,
            error TEXT,
            duration_ms REAL
        )
        """
    )
    db.execute("CREATE INDEX tool_calls_by_turn ON tool_calls(turn_id)")


@migration
def m006_tasks_tuning_routing(db: sqlite_utils.Database) -> None:
    """S3 to S6: task types (discovered clusters or named by the user), request embeddings, routing
    decisions, training datasets, LoRA adapters and background jobs.

    ``turns.cluster_id`` (from m001) holds the task id a turn was assigned to.
    """
    db.execute(
        """
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            label TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('discovered', 'named', 'dataset')),
            keywords_json TEXT NOT NULL DEFAULT '[]',
            examples_json TEXT NOT NULL DEFAULT '[]',
            centroid BLOB,
            size INTEGER NOT NULL DEFAULT 0,
            pin TEXT NOT NULL DEFAULT 'auto' CHECK (
                pin IN ('auto', 'always_local', 'always_ask_cloud', 'never_cloud')
            ),
            confidence_threshold REAL,
            created_utc TEXT NOT NULL,
            updated_utc TEXT NOT NULL,
            retired_utc TEXT
        )
        """
    )
    db.execute("ALTER TABLE turns ADD COLUMN imported INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX turns_by_task ON turns(cluster_id)")
    db.execute(
        """
        CREATE TABLE embeddings (
            turn_id INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
            encoder TEXT NOT NULL,
            vector BLOB NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE route_decisions (
            id INTEGER PRIMARY KEY,
            turn_id INTEGER REFERENCES turns(id) ON DELETE SET NULL,
            created_utc TEXT NOT NULL,
            task_id INTEGER REFERENCES tasks(id) ON DELETE SET NULL,
            distance REAL,
            target TEXT NOT NULL CHECK (target IN ('specialist', 'generalist', 'cloud')),
            adapter_id INTEGER,
            escalation_id INTEGER REFERENCES escalations(id) ON DELETE SET NULL,
            reason TEXT NOT NULL,
            confidence REAL,
            decision_ms REAL NOT NULL,
            features_json TEXT NOT NULL DEFAULT '{}',
            outcome TEXT
        )
        """
    )
    db.execute("CREATE INDEX route_decisions_by_turn ON route_decisions(turn_id)")
    db.execute(
        """
        CREATE TABLE datasets (
            id INTEGER PRIMARY KEY,
            task_id INTEGER REFERENCES tasks(id) ON DELETE SET NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            n_train INTEGER NOT NULL,
            n_val INTEGER NOT NULL,
            source_json TEXT NOT NULL DEFAULT '{}',
            created_utc TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE adapters (
            id INTEGER PRIMARY KEY,
            task_id INTEGER REFERENCES tasks(id) ON DELETE SET NULL,
            dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
            base_model_id TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'retired', 'rejected')),
            eval_json TEXT NOT NULL DEFAULT '{}',
            train_json TEXT NOT NULL DEFAULT '{}',
            created_utc TEXT NOT NULL,
            promoted_utc TEXT
        )
        """
    )
    # At most one active adapter per task: promotion is a single transaction that retires the old one.
    db.execute("CREATE UNIQUE INDEX one_active_adapter_per_task ON adapters(task_id) WHERE status = 'active'")
    db.execute(
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            task_id INTEGER REFERENCES tasks(id) ON DELETE SET NULL,
            status TEXT NOT NULL CHECK (
                status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')
            ),
            progress REAL NOT NULL DEFAULT 0,
            args_json TEXT NOT NULL DEFAULT '{}',
            pid INTEGER,
            created_utc TEXT NOT NULL,
            started_utc TEXT,
            finished_utc TEXT,
            log_path TEXT,
            result_json TEXT,
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX jobs_by_status ON jobs(status, id)")


@migration
def m009_discovery(db: sqlite_utils.Database) -> None:
    """S3: which encoder a task's centroid lives in and the task's radius (the cosine distance within
    which a request belongs to it), and the records already imported from other tools' logs, so a
    second import of the same file adds nothing."""
    db.execute("ALTER TABLE tasks ADD COLUMN encoder TEXT")
    db.execute("ALTER TABLE tasks ADD COLUMN radius REAL")
    db.execute(
        """
        CREATE TABLE imported_records (
            sha256 TEXT PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            line INTEGER NOT NULL,
            created_utc TEXT NOT NULL
        )
        """
    )


@migration
def m010_import_identity(db: sqlite_utils.Database) -> None:
    """Imported records keyed by their identity rather than their content, so a request repeated in a
    log is imported as often as it was made; each record also keeps the model that answered it and
    whether that model is a teacher (a cloud model rather than a local one).

    Records imported before had no identity beyond their content; they keep one made of their path,
    line and content hash (``path:...``), which ``engine.log_import`` still recognises.
    """
    db.execute("ALTER TABLE imported_records RENAME TO imported_records_before_m010")
    db.execute(
        """
        CREATE TABLE imported_records (
            id INTEGER PRIMARY KEY,
            identity TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            file TEXT NOT NULL,
            line INTEGER NOT NULL,
            answer_model TEXT,
            teacher INTEGER NOT NULL DEFAULT 0 CHECK (teacher IN (0, 1)),
            created_utc TEXT NOT NULL
        )
        """
    )
    db.execute(
        "INSERT INTO imported_records (identity, sha256, conversation_id, file, line, created_utc) "
        "SELECT 'path:' || source || ':' || line || ':' || sha256, sha256, conversation_id, source, line, "
        "created_utc FROM imported_records_before_m010 ORDER BY rowid"
    )
    db.execute("DROP TABLE imported_records_before_m010")
    db.execute("CREATE UNIQUE INDEX imported_records_by_identity ON imported_records(identity)")
    # One record per imported conversation, so a turn's provenance is found by its conversation.
    db.execute("CREATE UNIQUE INDEX imported_records_by_conversation ON imported_records(conversation_id)")


@migration
def m011_dataset_choices(db: sqlite_utils.Database) -> None:
    """The user's say over a task's dataset: one example (a turn, or an escalation's cloud answer) kept or
    left out, or a whole source left out; every later build of the task honours it."""
    db.execute(
        """
        CREATE TABLE dataset_choices (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            turn_id INTEGER REFERENCES turns(id) ON DELETE CASCADE,
            escalation_id INTEGER REFERENCES escalations(id) ON DELETE CASCADE,
            source TEXT,
            included INTEGER NOT NULL CHECK (included IN (0, 1)),
            created_utc TEXT NOT NULL,
            CHECK ((turn_id IS NOT NULL) + (escalation_id IS NOT NULL) + (source IS NOT NULL) = 1)
        )
        """
    )
    db.execute("CREATE UNIQUE INDEX dataset_choices_by_turn ON dataset_choices(task_id, turn_id)")
    db.execute("CREATE UNIQUE INDEX dataset_choices_by_escalation ON dataset_choices(task_id, escalation_id)")
    db.execute("CREATE UNIQUE INDEX dataset_choices_by_source ON dataset_choices(task_id, source)")


@migration
def m012_gateway_calls(db: sqlite_utils.Database) -> None:
    """A turn asked through the OpenAI-compatible gateway: which client asked, the request exactly as
    sent (messages, tools, options), where it was answered and the function calls returned."""
    db.execute(
        """
        CREATE TABLE gateway_calls (
            turn_id INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
            created_utc TEXT NOT NULL,
            client TEXT NOT NULL,
            user_agent TEXT NOT NULL,
            requested_model TEXT NOT NULL,
            answered_by TEXT NOT NULL,
            route TEXT NOT NULL,
            request_json TEXT NOT NULL,
            function_calls_json TEXT NOT NULL,
            finish_reason TEXT
        )
        """
    )


def applied(db: sqlite_utils.Database) -> set[str]:
    if "_migrations" not in db.table_names():
        return set()
    return {row["name"] for row in db.query("SELECT name FROM _migrations")}


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply every pending migration, each in its own transaction; return the names applied now.

    ``BEGIN IMMEDIATE`` takes the write lock first, so two processes starting at once apply each
    migration exactly once.
    """
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)")
    newly_applied = []
    for step in MIGRATIONS:
        if step.__name__ in applied(db):
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if step.__name__ not in applied(db):
                step(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_utc) VALUES (?, ?)",
                    [step.__name__, datetime.now(UTC).isoformat(timespec="seconds")],
                )
                newly_applied.append(step.__name__)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return newly_applied
