"""Task datasets (S2 + S4): the examples a specialist is trained and validated on.

An example is one chat record in OpenAI format, ``{"messages": [...]}``, ending with the answer to
learn. Only that last answer is trained on; the messages before it are its context.

From the log, examples are curated without asking for a rating of every turn (``dataset_examples``):

- Teacher answers are kept: approved cloud answers (escalations that were sent), cloud answers in the
  chat, and imported turns whose answer came from a teacher model (``Store.turn_provenance``).
- Local answers are kept when the user accepted them: rated up, or with no negative signal (no thumbs
  down, no Regenerate, no edit-and-resend, no Ask the cloud, no failed tool call) and passing automatic
  checks against the task's teacher answers: valid JSON of the teacher's top-level keys when most
  teacher answers are JSON, else a length within half the shortest and twice the longest; not cut at
  the length limit (finish reason "length"). A rating up is the user's word, so it skips the checks.
- An example that nearly repeats one kept before it is left out (teachers are kept first).
- The user's choices (``choose_examples``, ``understudy datasets include|exclude``) override the rules,
  for one example or a whole source.

Every candidate records why it is in or left out; a built dataset counts them in its source.

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
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from engine import files, paths
from engine.errors import TuningError
from engine.redact import scrub_for_training
from engine.store import Store, TurnProvenance, utc_now

MIN_EXAMPLES = 10
VALIDATION_FRACTION = 0.15
CONTEXT_MESSAGES = 4
CONTEXT_CHARS = 2000
ROLES = frozenset({"system", "user", "assistant"})
SOURCES = ("escalation", "cloud", "import", "local")
NEAR_DUPLICATE = 0.9  # the share of word pairs two examples share to count as one

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
    """A dataset from the examples ``dataset_examples`` keeps for a task or for the given conversations.

    With ``conversation_ids`` their turns are used (and the dataset is recorded for ``task_id``, if
    given); otherwise the turns assigned to ``task_id``.
    """
    examples = dataset_examples(store, task_id, conversation_ids)
    kept = [example for example in examples if example.included]
    source = {
        "from": "log",
        "task_id": task_id,
        "conversation_ids": sorted(conversation_ids) if conversation_ids else None,
        "candidates": len(examples),
        "kept": dict(Counter(example.category for example in kept)),
        "left_out": dict(Counter(example.category for example in examples if not example.included)),
    }
    return _finish(store, [example.messages for example in kept], task_id, source, min_examples, seed)


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


# Curation: which candidates become examples, and why ---------------------------------------------


@dataclass(frozen=True)
class DatasetExample:
    """One candidate example of a dataset: where it came from, and why it is in or left out.

    ``source`` is one of ``SOURCES``: "escalation" (an approved cloud answer), "cloud" (a cloud answer
    in the chat), "import" (a turn imported from another tool's log) or "local" (a local model's
    answer). ``category`` names the rule that decided; a built dataset counts its examples by it.
    """

    turn_id: int | None  # the log turn; an escalation's is the cloud answer's turn, when there is one
    source: str
    reason: str
    included: bool
    category: str
    escalation_id: int | None = None
    messages: Messages = field(default_factory=list, repr=False)

    @property
    def question(self) -> str:
        return self.messages[-2]["content"] if len(self.messages) > 1 else ""

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"] if self.messages else ""

    def to_dict(self) -> dict[str, Any]:
        """The stable keys of `understudy datasets show --json`."""
        keys = ("turn_id", "escalation_id", "source", "included", "category", "reason")
        return {**{key: getattr(self, key) for key in keys}, "question": self.question, "answer": self.answer}


def dataset_examples(
    store: Store, task_id: int | None = None, conversation_ids: list[int] | None = None
) -> list[DatasetExample]:
    """Every candidate example of a task (or of the given conversations), each kept or left out.

    The rules, in order (the module docstring says why):

    1. Left out on a negative signal: replaced (regenerated, or edited and resent), not completed, rated
       down, an empty answer, the user asked the cloud instead, a failed tool call.
    2. The user's choices (``choose_examples``) for the task: one example's choice beats its source's;
       both beat the rules.
    3. Kept as teachers: approved cloud answers (escalations), cloud answers in the chat and imported
       turns whose answer came from a teacher model.
    4. Kept as accepted: local answers rated up, and local answers with no negative signal that pass
       the checks against the teachers' answers (see ``_check_answer``).
    5. Left out as a near-duplicate of an example kept before it (teachers are considered first).
    """
    if task_id is None and not conversation_ids:
        raise TuningError("Say which examples to use: a task id or a list of conversation ids.")
    label = _task_label(store, task_id) if task_id is not None else None
    examples = _escalation_examples(store, task_id, label, conversation_ids)
    linked = {example.turn_id for example in examples}
    turns = [turn for turn in _candidate_turns(store, task_id, conversation_ids) if turn["id"] not in linked]
    provenance = store.turn_provenance(turn["id"] for turn in turns)
    examples += [_judge_turn(store, turn, provenance[turn["id"]]) for turn in turns]
    if task_id is not None:
        examples = _apply_choices(examples, _choices(store, task_id))
    teacher_answers = [e.answer for e in examples if e.included and e.category == "teacher"]
    examples = [
        _check_answer(example, teacher_answers) if example.category == "accepted" else example
        for example in examples
    ]
    return _without_near_duplicates(examples)


def choose_examples(
    store: Store,
    task_id: int,
    included: bool,
    turn_id: int | None = None,
    escalation_id: int | None = None,
    source: str | None = None,
) -> None:
    """Keep or leave out one example (by turn or escalation) or leave out a whole source, in every
    later build of the task's dataset. Including a source takes back its exclusion: its examples go
    back to the rules (and to any choice made for one of them)."""
    if (turn_id is not None) + (escalation_id is not None) + (source is not None) != 1:
        raise TuningError("Say which examples: one turn id, one escalation id or one source.")
    if source is not None and source not in SOURCES:
        raise TuningError(f"A dataset source is one of {', '.join(SOURCES)}, not {source!r}.")
    _task_label(store, task_id)
    for table, row_id in (("turns", turn_id), ("escalations", escalation_id)):
        if row_id is not None and not list(store.db.query(f"SELECT 1 FROM {table} WHERE id = ?", [row_id])):
            raise TuningError(
                f"There is no {table[:-1]} {row_id}; `understudy datasets show {task_id}` lists the examples."
            )
    with store.transaction():
        if source is not None and included:
            store.db.execute(
                "DELETE FROM dataset_choices WHERE task_id = ? AND source = ?", [task_id, source]
            )
            return
        key = "turn_id" if turn_id is not None else "escalation_id" if escalation_id is not None else "source"
        store.db.execute(
            "INSERT INTO dataset_choices (task_id, turn_id, escalation_id, source, included, created_utc) "
            f"VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(task_id, {key}) DO UPDATE SET "
            "included = excluded.included, created_utc = excluded.created_utc",
            [task_id, turn_id, escalation_id, source, int(included), utc_now()],
        )


def _candidate_turns(
    store: Store, task_id: int | None, conversation_ids: list[int] | None
) -> list[dict[str, Any]]:
    """Every turn of the selection with the signals that judge it: rating, replacement, escalation,
    failed tool call, and the last model call's messages and finish reason."""
    if conversation_ids:
        marks = ", ".join("?" for _ in conversation_ids)
        where, parameters = f"turns.conversation_id IN ({marks})", list(conversation_ids)
    else:
        where, parameters = "turns.cluster_id = ?", [task_id]
    return [
        dict(row)
        for row in store.db.query(
            "SELECT turns.id, turns.conversation_id, turns.user_text, turns.answer_text, turns.status, "
            "turns.replaced_by, feedback.rating, replacement.user_text AS replacement_text, "
            "(SELECT MIN(id) FROM escalations WHERE escalations.turn_id = turns.id) AS escalation_id, "
            "(SELECT tool || ': ' || COALESCE(error, 'invalid arguments') FROM tool_calls "
            "  WHERE tool_calls.turn_id = turns.id AND (error IS NOT NULL OR decision = 'invalid') "
            "  ORDER BY id LIMIT 1) AS tool_failure, "
            "last_call.messages_json, last_call.finish_reason FROM turns "
            "LEFT JOIN feedback ON feedback.turn_id = turns.id "
            "LEFT JOIN turns AS replacement ON replacement.id = turns.replaced_by "
            "LEFT JOIN model_calls AS last_call ON last_call.id = "
            "  (SELECT MAX(id) FROM model_calls WHERE model_calls.turn_id = turns.id) "
            f"WHERE {where} ORDER BY turns.id",
            parameters,
        )
    ]


def _judge_turn(store: Store, turn: dict[str, Any], provenance: TurnProvenance) -> DatasetExample:
    """A turn kept as a teacher's or an accepted answer, or left out on a negative signal."""
    source = "import" if provenance.source == "import" else "cloud" if provenance.teacher else "local"
    messages = _turn_example(store, turn)

    def verdict(category: str, reason: str, included: bool = False) -> DatasetExample:
        return DatasetExample(turn["id"], source, reason, included, category, messages=messages)

    if turn["replaced_by"] is not None:
        if turn["replacement_text"] == turn["user_text"]:
            return verdict("replaced", f"regenerated (replaced by turn {turn['replaced_by']})")
        return verdict("replaced", f"edited and resent (replaced by turn {turn['replaced_by']})")
    if turn["status"] != "ok":
        return verdict("not_completed", f"not completed ({turn['status']})")
    if turn["rating"] == -1:
        return verdict("rated_down", "rated down")
    if not turn["answer_text"].strip():
        return verdict("empty_answer", "the answer is empty")
    if turn["escalation_id"] is not None:
        return verdict("asked_cloud", f"the cloud was asked instead (escalation #{turn['escalation_id']})")
    if turn["tool_failure"] is not None:
        return verdict("tool_failed", f"a tool call failed ({turn['tool_failure']})")
    model = provenance.answer_model or "an unnamed model"
    if provenance.teacher:
        how = "imported from" if source == "import" else "cloud answer from"
        return verdict("teacher", f"teacher: {how} {model}", included=True)
    if turn["rating"] == 1:
        return verdict("rated_up", "accepted: rated up", included=True)
    if turn["finish_reason"] == "length":
        return verdict("cut_at_limit", "cut at the length limit (finish reason 'length')")
    what = f"imported local answer ({model})" if source == "import" else "local answer"
    return verdict("accepted", f"accepted: {what}, no negative signal", included=True)


def _escalation_examples(
    store: Store, task_id: int | None, label: str | None, conversation_ids: list[int] | None
) -> list[DatasetExample]:
    """Approved cloud answers for the selection, as the (already redacted) request plus the answer.

    An escalation belongs to a task when the turn it was asked from is in the task, or its task type
    is the task's label or ``task <id>``; to a selection of conversations when it was asked in one.
    """
    conditions, parameters = [], []
    if task_id is not None:
        conditions += ["origin.cluster_id = ?", "teacher_examples.task_type = ? COLLATE NOCASE"]
        parameters += [task_id, f"task {task_id}"]
    if label is not None:
        conditions.append("teacher_examples.task_type = ? COLLATE NOCASE")
        parameters.append(label)
    if conversation_ids:
        conditions.append(f"escalations.conversation_id IN ({', '.join('?' for _ in conversation_ids)})")
        parameters += list(conversation_ids)
    rows = store.db.query(
        "SELECT teacher_examples.payload_json, teacher_examples.answer_text, escalations.id, "
        "escalations.provider, escalations.model, "
        "(SELECT answer.id FROM turns AS answer WHERE answer.route = 'cloud' "
        "  AND answer.conversation_id = escalations.conversation_id "
        "  AND answer.user_text = escalations.user_text ORDER BY answer.id DESC LIMIT 1) AS answer_turn_id "
        "FROM teacher_examples JOIN escalations ON escalations.id = teacher_examples.escalation_id "
        "LEFT JOIN turns AS origin ON origin.id = escalations.turn_id "
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
            examples.append(
                DatasetExample(
                    turn_id=row["answer_turn_id"],
                    source="escalation",
                    reason=f"teacher: escalation #{row['id']} ({row['provider']}:{row['model']})",
                    included=True,
                    category="teacher",
                    escalation_id=row["id"],
                    messages=system + _recent(others) + [messages[-1], answer],
                )
            )
    return examples


def _choices(store: Store, task_id: int) -> dict[tuple[str, Any], bool]:
    """The user's choices for a task, keyed ("turn", id), ("escalation", id) or ("source", name)."""
    choices = {}
    for row in store.db.query("SELECT * FROM dataset_choices WHERE task_id = ?", [task_id]):
        if row["turn_id"] is not None:
            choices["turn", row["turn_id"]] = bool(row["included"])
        elif row["escalation_id"] is not None:
            choices["escalation", row["escalation_id"]] = bool(row["included"])
        else:
            choices["source", row["source"]] = bool(row["included"])
    return choices


def _apply_choices(
    examples: list[DatasetExample], choices: dict[tuple[str, Any], bool]
) -> list[DatasetExample]:
    """Each example as the user chose: its own choice first, then its source's, else as the rules said."""
    chosen = []
    for example in examples:
        choice = choices.get(("escalation", example.escalation_id), choices.get(("turn", example.turn_id)))
        mark = ""
        if choice is None:
            choice, mark = choices.get(("source", example.source)), f" (all of source '{example.source}')"
        if choice is None:
            chosen.append(example)
        elif choice:
            was = "" if example.included else f"; the rules left it out: {example.reason}"
            chosen.append(
                replace(example, included=True, category="included_by_user", reason=f"included by you{was}")
            )
        else:
            chosen.append(
                replace(example, included=False, category="excluded_by_user", reason=f"excluded by you{mark}")
            )
    return chosen


def _check_answer(example: DatasetExample, teacher_answers: list[str]) -> DatasetExample:
    """An accepted local answer checked against the task's teacher answers, when there are any.

    When most teacher answers are JSON, the answer must be valid JSON of the same kind, and an object
    must have the top-level keys of one of the teacher's objects. Otherwise its length must lie between
    half the shortest and twice the longest teacher answer.
    """
    if not teacher_answers:
        return replace(example, reason=f"{example.reason} (no teacher answers to compare with)")
    teacher_values = [_json_value(answer) for answer in teacher_answers]
    if sum(value is not None for value in teacher_values) * 2 > len(teacher_values):
        value = _json_value(example.answer)
        if value is None:
            return replace(
                example,
                included=False,
                category="invalid_json",
                reason="not valid JSON, and the teacher's answers are",
            )
        shapes = {_json_shape(teacher) for teacher in teacher_values if teacher is not None}
        if _json_shape(value) not in shapes:
            return replace(
                example,
                included=False,
                category="wrong_shape",
                reason=f"JSON shaped {_json_shape(value)}, the teacher's {' or '.join(sorted(shapes))}",
            )
        return replace(example, reason=f"{example.reason}, valid JSON, the teacher's shape")
    lengths = [len(answer) for answer in teacher_answers]
    low, high = min(lengths) // 2, max(lengths) * 2
    if not low <= len(example.answer) <= high:
        return replace(
            example,
            included=False,
            category="wrong_shape",
            reason=f"{len(example.answer)} characters, the teacher's answers take {low}-{high}",
        )
    return replace(example, reason=f"{example.reason}, as long as the teacher's answers")


def _json_value(text: str) -> Any:
    """The JSON object or array ``text`` holds, else None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def _json_shape(value: dict | list) -> str:
    """An object's sorted top-level keys, or "array": what a task's answers must share."""
    return "{" + ", ".join(sorted(value)) + "}" if isinstance(value, dict) else "array"


def _without_near_duplicates(examples: list[DatasetExample]) -> list[DatasetExample]:
    """Left out: a kept example whose question and answer nearly repeat one kept before it.

    Near means the word pairs of the two (question plus answer) overlap by ``NEAR_DUPLICATE`` or more
    (Jaccard). Examples the user included stay; teachers are considered before accepted answers.
    """
    order = {"included_by_user": 0, "teacher": 1, "rated_up": 2}
    considered = sorted(
        (index for index, example in enumerate(examples) if example.included),
        key=lambda index: order.get(examples[index].category, 3),
    )
    kept: list[tuple[DatasetExample, frozenset[str]]] = []
    result = list(examples)
    for index in considered:
        example = examples[index]
        pairs = _word_pairs(f"{example.question} {example.answer}")
        twin = next(
            (other for other, other_pairs in kept if _similarity(pairs, other_pairs) >= NEAR_DUPLICATE), None
        )
        if twin is not None and example.category != "included_by_user":
            named = (
                f"turn {twin.turn_id}" if twin.turn_id is not None else f"escalation #{twin.escalation_id}"
            )
            result[index] = replace(
                example, included=False, category="near_duplicate", reason=f"a near-duplicate of {named}"
            )
        else:
            kept.append((example, pairs))
    return result


def _word_pairs(text: str) -> frozenset[str]:
    words = "".join(c if c.isalnum() else " " for c in text.casefold()).split()
    return frozenset(" ".join(pair) for pair in pairwise(words)) or frozenset(words)


def _similarity(first: frozenset[str], second: frozenset[str]) -> float:
    if (
        not first
        or not second
        or min(len(first), len(second)) < NEAR_DUPLICATE * max(len(first), len(second))
    ):
        return 0.0
    return len(first & second) / len(first | second)


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
    dropped = [
        f"{count} {category.replace('_', ' ')}" for category, count in source.get("left_out", {}).items()
    ]
    if source.get("duplicates_dropped"):
        dropped.append(f"{source['duplicates_dropped']} duplicates")
    why = f" (left out: {', '.join(dropped)})" if dropped else ""
    task = source.get("task_id")
    review = f" `understudy datasets show {task} --left-out` says why each was left out." if task else ""
    return (
        f"Only {have} usable example{'s' if have != 1 else ''}{why}; tuning needs at least {need}.{review} "
        "Import history answered by a cloud model (understudy logs import --teacher MODEL), approve more "
        "cloud answers for this task, or give a JSONL file of examples (understudy tune --dataset FILE)."
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
