"""Task datasets (S2 + S4): the examples a specialist is trained and validated on.

An example is one chat record in OpenAI format, ``{"messages": [...]}``, ending with the answer to
learn. Only that last answer is trained on; the messages before it are its context.

From the log, a turn becomes an example when it completed (status ok), is current (not replaced by a
regenerated or edited turn) and was *kept* by the user:

- rated up (thumbs up), or
- accepted: not rated down, and the user went on with the conversation afterwards (a later current
  turn exists). A regenerated answer is replaced, so it never counts as accepted; the last unrated
  turn of a conversation is left out because nothing says the user was satisfied with it.

Approved cloud answers (``teacher_examples``) join the examples of the task their escalation belongs
to: the escalation's turn is in the task, its task type equals the task's label, or its conversation is
one of those selected.

A turn's context is its conversation's system messages plus up to ``CONTEXT_MESSAGES`` earlier messages
(``CONTEXT_CHARS`` characters at most), so a follow-up question still makes sense; older context is
dropped. Every example is then scrubbed with ``engine.redact.scrub_for_training`` (realistic fakes,
the same in the question and the answer, so the task stays learnable; secrets removed) and what it
replaced is kept in the row's source under "redaction". Duplicates (same normalised messages) are
dropped, and a seeded shuffle splits train from validation. The files are written under
``<data dir>/datasets/<sha256 prefix>/`` and described by a ``datasets`` row.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine import files, paths
from engine.errors import TuningError
from engine.redact import scrub_for_training
from engine.store import Store, utc_now

MIN_EXAMPLES = 10
VALIDATION_FRACTION = 0.15
CONTEXT_MESSAGES = 4
CONTEXT_CHARS = 2000
ROLES = frozenset({"system", "user", "assistant"})

Messages = list[dict[str, str]]


@dataclass
class TaskDataset:
    """A dataset on disk (train.jsonl and val.jsonl in ``folder``) and its ``datasets`` row."""

    id: int
    task_id: int | None
    folder: Path
    train_path: Path
    val_path: Path
    n_train: int
    n_val: int
    sha256: str
    source: dict[str, Any] = field(default_factory=dict)


# Reading and checking chat records ---------------------------------------------------------------


def read_records(path: Path) -> list[Messages]:
    """The messages of each ``{"messages": [...]}`` line; a malformed line is an error naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise TuningError(f"Cannot read the dataset file {path}: {error}.") from error
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise TuningError(
                f"{path}, line {number} is not JSON ({error}). Each line must be one "
                '{"messages": [{"role": ..., "content": ...}, ...]} object.'
            ) from error
        problem = _record_problem(value)
        if problem:
            raise TuningError(
                f"{path}, line {number}: {problem}. Each line must be one "
                '{"messages": [{"role": "user", "content": ...}, ..., {"role": "assistant", '
                '"content": ...}]} object, the format `understudy logs export --jsonl` writes.'
            )
        records.append([{"role": m["role"], "content": m["content"]} for m in value["messages"]])
    return records


def _record_problem(value: Any) -> str | None:
    """What is wrong with one parsed line, or None when it is a usable example."""
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        return 'expected an object with a "messages" list'
    messages = value["messages"]
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f'message {index + 1} needs a "role" of system, user or assistant'
        if not isinstance(message.get("content"), str):
            return f'message {index + 1} needs its "content" as text'
    if not messages or messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        return "the last message must be the assistant's answer, and not empty"
    if not any(message["role"] == "user" for message in messages):
        return "there is no user message"
    return None


# Building -----------------------------------------------------------------------------------------


def build_from_log(
    store: Store,
    task_id: int | None = None,
    conversation_ids: list[int] | None = None,
    min_examples: int = MIN_EXAMPLES,
    seed: int = 0,
) -> TaskDataset:
    """A dataset from the kept turns of a task (``turns.cluster_id``) or of the given conversations.

    With ``conversation_ids`` their turns are used (and the dataset is recorded for ``task_id``, if
    given); otherwise the turns assigned to ``task_id``.
    """
    if task_id is None and not conversation_ids:
        raise TuningError("Say which examples to use: a task id or a list of conversation ids.")
    label = _task_label(store, task_id) if task_id is not None else None
    turns = _candidate_turns(store, task_id, conversation_ids)
    counts: Counter[str] = Counter(turns_considered=len(turns))
    examples: list[Messages] = []
    for turn in turns:
        if turn["rating"] == -1:
            counts["rated_down"] += 1
        elif not turn["answer_text"].strip():
            counts["empty_answer"] += 1
        elif turn["rating"] == 1:
            counts["rated_up"] += 1
            examples.append(_turn_example(store, turn))
        elif turn["continued"]:
            counts["accepted"] += 1
            examples.append(_turn_example(store, turn))
        else:
            counts["not_kept"] += 1
    teacher = _teacher_examples(store, task_id, label, conversation_ids)
    counts["teacher_examples"] = len(teacher)
    source = {
        "from": "log",
        "task_id": task_id,
        "conversation_ids": sorted(conversation_ids) if conversation_ids else None,
        **counts,
    }
    return _finish(store, examples + teacher, task_id, source, min_examples, seed)


def build_from_jsonl(
    store: Store,
    file: Path,
    task_id: int | None = None,
    min_examples: int = MIN_EXAMPLES,
    seed: int = 0,
) -> TaskDataset:
    """A dataset from a JSONL file of chat records (see ``read_records``)."""
    records = read_records(file)
    source = {"from": "jsonl", "file": str(Path(file).resolve()), "records": len(records)}
    return _finish(store, records, task_id, source, min_examples, seed)


def named_task(store: Store, label: str, source: str = "named") -> int:
    """The id of the live task with this label (case-insensitive), created if there is none."""
    label = " ".join(label.split())
    if not label:
        raise TuningError("A task needs a name; give at least one word.")
    if source not in ("named", "dataset"):
        raise TuningError(f"A named task's source is 'named' or 'dataset', not {source!r}.")
    with store.transaction():
        rows = list(
            store.db.query(
                "SELECT id FROM tasks WHERE label = ? COLLATE NOCASE AND retired_utc IS NULL ORDER BY id",
                [label],
            )
        )
        if rows:
            return rows[0]["id"]
        now = utc_now()
        return store.insert(
            "tasks", {"label": label, "source": source, "created_utc": now, "updated_utc": now}
        )


def load_dataset(store: Store, dataset_id: int) -> TaskDataset:
    """A dataset recorded earlier, by its id."""
    rows = list(store.db.query("SELECT * FROM datasets WHERE id = ?", [dataset_id]))
    if not rows:
        raise TuningError(f"There is no dataset {dataset_id}; build one from a task or a JSONL file.")
    row = rows[0]
    folder = Path(row["path"])
    dataset = TaskDataset(
        id=row["id"],
        task_id=row["task_id"],
        folder=folder,
        train_path=folder / "train.jsonl",
        val_path=folder / "val.jsonl",
        n_train=row["n_train"],
        n_val=row["n_val"],
        sha256=row["sha256"],
        source=json.loads(row["source_json"]),
    )
    if not dataset.train_path.exists() or not dataset.val_path.exists():
        raise TuningError(f"Dataset {dataset_id}'s files are missing from {folder}; build the dataset again.")
    return dataset


def _task_label(store: Store, task_id: int) -> str:
    rows = list(store.db.query("SELECT label FROM tasks WHERE id = ?", [task_id]))
    if not rows:
        raise TuningError(f"There is no task {task_id}; `understudy tasks` lists them.")
    return rows[0]["label"]


def _candidate_turns(
    store: Store, task_id: int | None, conversation_ids: list[int] | None
) -> list[dict[str, Any]]:
    """Completed, current turns of the selection, with their rating and whether the user went on."""
    if conversation_ids:
        marks = ", ".join("?" for _ in conversation_ids)
        where, parameters = f"turns.conversation_id IN ({marks})", list(conversation_ids)
    else:
        where, parameters = "turns.cluster_id = ?", [task_id]
    return [
        dict(row)
        for row in store.db.query(
            "SELECT turns.id, turns.conversation_id, turns.user_text, turns.answer_text, feedback.rating, "
            "EXISTS (SELECT 1 FROM turns AS later WHERE later.conversation_id = turns.conversation_id "
            "  AND later.id > turns.id AND later.replaced_by IS NULL AND later.status = 'ok') AS continued, "
            "(SELECT messages_json FROM model_calls WHERE model_calls.turn_id = turns.id "
            "  ORDER BY model_calls.id DESC LIMIT 1) AS messages_json "
            "FROM turns LEFT JOIN feedback ON feedback.turn_id = turns.id "
            f"WHERE {where} AND turns.status = 'ok' AND turns.replaced_by IS NULL ORDER BY turns.id",
            parameters,
        )
    ]


def _turn_example(store: Store, turn: dict[str, Any]) -> Messages:
    """The turn's system messages, its recent context, the question and the kept answer."""
    seen = json.loads(turn["messages_json"]) if turn["messages_json"] else []
    system = [
        {"role": "system", "content": m["content"]}
        for m in seen
        if isinstance(m, dict) and m.get("role") == "system" and isinstance(m.get("content"), str)
    ]
    history = store.conversation_history(turn["conversation_id"], before_turn_id=turn["id"])
    question = [{"role": "user", "content": turn["user_text"]}]
    answer = [{"role": "assistant", "content": turn["answer_text"]}]
    return system + _recent(history) + question + answer


def _recent(history: Messages) -> Messages:
    """The newest whole exchanges of ``history`` within the context limits."""
    kept: Messages = []
    size = 0
    for start in range(len(history) - 2, -1, -2):
        exchange = history[start : start + 2]
        size += sum(len(m["content"]) for m in exchange)
        if len(kept) + 2 > CONTEXT_MESSAGES or size > CONTEXT_CHARS:
            break
        kept = exchange + kept
    return kept


def _teacher_examples(
    store: Store, task_id: int | None, label: str | None, conversation_ids: list[int] | None
) -> list[Messages]:
    """Approved cloud answers for the selection, as the (already redacted) request plus the answer."""
    conditions, parameters = [], []
    if task_id is not None:
        conditions.append("turns.cluster_id = ?")
        parameters.append(task_id)
    if label is not None:
        conditions.append("teacher_examples.task_type = ? COLLATE NOCASE")
        parameters.append(label)
    if conversation_ids:
        conditions.append(f"escalations.conversation_id IN ({', '.join('?' for _ in conversation_ids)})")
        parameters += list(conversation_ids)
    rows = store.db.query(
        "SELECT teacher_examples.payload_json, teacher_examples.answer_text FROM teacher_examples "
        "JOIN escalations ON escalations.id = teacher_examples.escalation_id "
        "LEFT JOIN turns ON turns.id = escalations.turn_id "
        f"WHERE {' OR '.join(conditions)} ORDER BY teacher_examples.id",
        parameters,
    )
    examples = []
    for row in rows:
        sent = json.loads(row["payload_json"]).get("messages", [])
        messages = [
            {"role": m["role"], "content": m["content"]}
            for m in sent
            if isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
        ]
        if messages and messages[-1]["role"] == "user" and row["answer_text"].strip():
            system = [m for m in messages if m["role"] == "system"]
            others = [m for m in messages[:-1] if m["role"] != "system"]
            answer = {"role": "assistant", "content": row["answer_text"]}
            examples.append(system + _recent(others) + [messages[-1], answer])
    return examples


# Scrub, dedupe, split, write ----------------------------------------------------------------------


def _finish(
    store: Store,
    records: list[Messages],
    task_id: int | None,
    source: dict[str, Any],
    min_examples: int,
    seed: int,
) -> TaskDataset:
    scrubbed, redaction = _scrub(records, seed)
    unique: dict[str, Messages] = {}
    for messages in scrubbed:
        unique.setdefault(_dedupe_key(messages), messages)
    source |= {
        "redaction": redaction,
        "duplicates_dropped": len(scrubbed) - len(unique),
        "examples": len(unique),
        "seed": seed,
    }
    if len(unique) < min_examples:
        raise TuningError(_too_few(source, len(unique), min_examples))
    ordered = [unique[key] for key in sorted(unique, key=lambda k: hashlib.sha256(k.encode()).digest())]
    random.Random(seed).shuffle(ordered)
    n_val = max(1, round(len(ordered) * VALIDATION_FRACTION))
    val, train = ordered[:n_val], ordered[n_val:]
    train_text, val_text = _jsonl(train), _jsonl(val)
    digest = hashlib.sha256(f"{train_text}\0{val_text}".encode()).hexdigest()
    folder = _write_folder(digest, {"train.jsonl": train_text, "val.jsonl": val_text})
    return _record(store, task_id, folder, digest, len(train), len(val), source)


def _scrub(records: list[Messages], seed: int) -> tuple[list[Messages], dict[str, Any]]:
    """Each record with personal data faked and secrets removed; a record that fails is dropped."""
    texts, summary = scrub_for_training([[m["content"] for m in messages] for messages in records], seed)
    scrubbed = [
        [{"role": m["role"], "content": text} for m, text in zip(messages, contents, strict=True)]
        for messages, contents in zip(records, texts, strict=True)
        if contents is not None
    ]
    return scrubbed, asdict(summary)


def _dedupe_key(messages: Messages) -> str:
    return "\x1e".join(f"{m['role']}\x1f{' '.join(m['content'].casefold().split())}" for m in messages)


def _too_few(source: dict[str, Any], have: int, need: int) -> str:
    dropped = []
    if source.get("duplicates_dropped"):
        dropped.append(f"{source['duplicates_dropped']} duplicates")
    if source.get("rated_down"):
        dropped.append(f"{source['rated_down']} rated down")
    if source.get("not_kept"):
        dropped.append(f"{source['not_kept']} neither rated up nor followed by another turn")
    why = f" (left out: {', '.join(dropped)})" if dropped else ""
    return (
        f"Only {have} usable example{'s' if have != 1 else ''}{why}; tuning needs at least {need}. "
        "Rate good answers with a thumbs up, approve more cloud answers for this task, or give a JSONL "
        "file of examples (understudy tune --dataset FILE)."
    )


def _jsonl(records: list[Messages]) -> str:
    return "".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in records)


def _write_folder(digest: str, contents: dict[str, str]) -> Path:
    """Write the files into ``datasets/<digest prefix>`` atomically; an identical folder is reused."""
    folder = paths.data_dir() / "datasets" / digest[:16]
    if folder.exists():
        return folder
    with files.publishing(folder) as partial:
        partial.mkdir()
        for name, text in contents.items():
            (partial / name).write_text(text, encoding="utf-8")
    return folder


def _record(
    store: Store,
    task_id: int | None,
    folder: Path,
    digest: str,
    n_train: int,
    n_val: int,
    source: dict[str, Any],
) -> TaskDataset:
    """The ``datasets`` row for these files; the same files for the same task reuse their row."""
    with store.transaction():
        rows = list(
            store.db.query(
                "SELECT id FROM datasets WHERE sha256 = ? AND task_id IS ? ORDER BY id DESC LIMIT 1",
                [digest, task_id],
            )
        )
        if rows:
            dataset_id = rows[0]["id"]
        else:
            dataset_id = store.insert(
                "datasets",
                {
                    "task_id": task_id,
                    "path": str(folder),
                    "sha256": digest,
                    "n_train": n_train,
                    "n_val": n_val,
                    "source_json": json.dumps(source, ensure_ascii=False),
                    "created_utc": utc_now(),
                },
            )
    return TaskDataset(
        id=dataset_id,
        task_id=task_id,
        folder=folder,
        train_path=folder / "train.jsonl",
        val_path=folder / "val.jsonl",
        n_train=n_train,
        n_val=n_val,
        sha256=digest,
        source=source,
    )
