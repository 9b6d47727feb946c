"""The adapter registry: every LoRA adapter ever trained, which one serves each task, and its file.

An adapter's file lives at ``<data dir>/adapters/<id>/adapter.gguf``; its row in ``adapters`` records
the sha256, the base model, the dataset and the evaluation. Status moves
``candidate → active → retired`` or ``candidate → rejected``; the database's unique index allows at
most one active adapter per task.

Publishing is atomic, so a kill at any moment leaves the old adapter or the new one serving, never a
broken one:

1. ``register_candidate`` copies the file into a staging folder, then, inside the transaction that
   inserts the row, publishes the folder under its final name (``engine.files.publish``: synced, then
   renamed). A kill before the commit leaves an orphan folder that the next registration with that id
   replaces; a row never names a missing file.
2. ``promote`` checks the file's sha256 first, then retires the old active adapter and activates the
   new one in one transaction.

``serving_path`` checks the sha256 again before the backend loads the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from engine import files, paths
from engine.catalog import gguf_problem, remembered_sha256
from engine.errors import AdapterError
from engine.store import Store, utc_now
from engine.tuning.evaluation import AdapterEvaluation

ADAPTER_FILE = "adapter.gguf"
STAGING_PREFIX = ".staging-"
_CHUNK = 1024 * 1024


@dataclass
class Adapter:
    """One row of ``adapters``, with its JSON columns parsed (``training`` is the job's record of how
    it was trained, as the pipeline wrote it)."""

    id: int
    task_id: int | None
    dataset_id: int | None
    base_model_id: str
    path: Path
    sha256: str
    status: str
    created_utc: str
    promoted_utc: str | None = None
    evaluation: AdapterEvaluation = field(default_factory=AdapterEvaluation)
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def gate_passed(self) -> bool:
        return self.evaluation.passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "dataset_id": self.dataset_id,
            "base_model_id": self.base_model_id,
            "status": self.status,
            "path": str(self.path),
            "sha256": self.sha256,
            "created_utc": self.created_utc,
            "promoted_utc": self.promoted_utc,
            "evaluation": self.evaluation.as_dict(),
            "training": self.training,
        }


def adapters_dir() -> Path:
    folder = paths.data_dir() / "adapters"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Registering -------------------------------------------------------------------------------------


def register_candidate(
    store: Store,
    gguf_file: Path,
    base_model_id: str,
    task_id: int,
    dataset_id: int | None = None,
    training: dict[str, Any] | None = None,
) -> Adapter:
    """Copy an exported adapter into the registry and record it as a candidate for ``task_id``."""
    gguf_file = Path(gguf_file)
    problem = gguf_problem(gguf_file)
    if problem:
        raise AdapterError(f"adapter file: {problem}; export it again")
    root = adapters_dir()
    _clear_abandoned_staging(root)
    staging = root / f"{STAGING_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    staging.mkdir()
    try:
        digest = _copy_with_sha256(gguf_file, staging / ADAPTER_FILE)
        with store.transaction():
            adapter_id = store.insert(
                "adapters",
                {
                    "task_id": task_id,
                    "dataset_id": dataset_id,
                    "base_model_id": base_model_id,
                    "path": "",
                    "sha256": digest,
                    "status": "candidate",
                    "train_json": json.dumps(training or {}, ensure_ascii=False),
                    "created_utc": utc_now(),
                },
            )
            folder = root / str(adapter_id)
            # An existing folder was left by a registration killed before its commit: no row names it.
            files.publish(staging, folder)
            store.db.execute(
                "UPDATE adapters SET path = ? WHERE id = ?", [str(folder / ADAPTER_FILE), adapter_id]
            )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return get(store, adapter_id)


def _copy_with_sha256(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def _clear_abandoned_staging(root: Path) -> None:
    """Remove staging folders whose process is gone (killed while copying)."""
    for folder in root.glob(f"{STAGING_PREFIX}*"):
        pid_text = folder.name.removeprefix(STAGING_PREFIX).split("-")[0]
        if not pid_text.isdigit() or not psutil.pid_exists(int(pid_text)):
            shutil.rmtree(folder, ignore_errors=True)


# Reading -----------------------------------------------------------------------------------------


def get(store: Store, adapter_id: int) -> Adapter:
    rows = list(store.db.query("SELECT * FROM adapters WHERE id = ?", [adapter_id]))
    if not rows:
        raise AdapterError(f"there is no adapter {adapter_id}; `understudy adapters list` shows them")
    return _from_row(rows[0])


def list_adapters(store: Store, task_id: int | None = None) -> list[Adapter]:
    """Newest first; only ``task_id``'s when given."""
    if task_id is None:
        rows = store.db.query("SELECT * FROM adapters ORDER BY id DESC")
    else:
        rows = store.db.query("SELECT * FROM adapters WHERE task_id = ? ORDER BY id DESC", [task_id])
    return [_from_row(row) for row in rows]


def active_for_task(store: Store, task_id: int) -> Adapter | None:
    rows = list(store.db.query("SELECT * FROM adapters WHERE task_id = ? AND status = 'active'", [task_id]))
    return _from_row(rows[0]) if rows else None


def active_on_base(store: Store, base_model_id: str) -> list[Adapter]:
    """The specialists serving a task on ``base_model_id``, whose files a backend can read ahead."""
    rows = store.db.query(
        "SELECT * FROM adapters WHERE base_model_id = ? AND status = 'active' ORDER BY id", [base_model_id]
    )
    return [_from_row(row) for row in rows]


def _from_row(row: dict[str, Any]) -> Adapter:
    return Adapter(
        id=row["id"],
        task_id=row["task_id"],
        dataset_id=row["dataset_id"],
        base_model_id=row["base_model_id"],
        path=Path(row["path"]),
        sha256=row["sha256"],
        status=row["status"],
        created_utc=row["created_utc"],
        promoted_utc=row["promoted_utc"],
        evaluation=AdapterEvaluation.from_dict(json.loads(row["eval_json"] or "{}")),
        training=json.loads(row["train_json"] or "{}"),
    )


def verify(adapter: Adapter) -> Path:
    """The adapter's file, after checking it exists and its sha256 is the recorded one."""
    path = adapter.path
    try:
        digest = remembered_sha256(path)
    except OSError as error:
        raise AdapterError(
            f"adapter {adapter.id}'s file {path} is missing ({error.strerror}); roll its task back "
            f"(`understudy adapters rollback {adapter.task_id}`) or tune it again"
        ) from error
    if digest != adapter.sha256:
        raise AdapterError(
            f"adapter {adapter.id}'s file {path} has changed since it was registered (sha256 "
            f"{digest[:12]}…, expected {adapter.sha256[:12]}…); roll its task back "
            f"(`understudy adapters rollback {adapter.task_id}`) or tune it again"
        )
    return path


def serving_path(store: Store, adapter_id: int) -> tuple[Adapter, Path]:
    """The adapter and its verified file, ready to hand to a backend."""
    adapter = get(store, adapter_id)
    return adapter, verify(adapter)


# Changing status ---------------------------------------------------------------------------------


def record_evaluation(store: Store, adapter_id: int, evaluation: AdapterEvaluation) -> None:
    with store.transaction():
        store.db.execute(
            "UPDATE adapters SET eval_json = ? WHERE id = ?",
            [json.dumps(evaluation.as_dict(), ensure_ascii=False), adapter_id],
        )


def reject(store: Store, adapter_id: int) -> None:
    """Mark a candidate the gate turned down; its file stays for inspection and ``promote --force``."""
    with store.transaction():
        store.db.execute(
            "UPDATE adapters SET status = 'rejected' WHERE id = ? AND status = 'candidate'", [adapter_id]
        )


def promote(store: Store, adapter_id: int, force: bool = False) -> Adapter:
    """Make ``adapter_id`` its task's active adapter, retiring the one before, in one transaction.

    Only an adapter whose evaluation passed the gate is promoted, unless ``force``.
    """
    adapter = get(store, adapter_id)
    if adapter.status == "active":
        return adapter
    if adapter.task_id is None:
        raise AdapterError(f"adapter {adapter_id} belongs to no task, so it cannot serve one")
    if not force and not adapter.gate_passed:
        why = adapter.evaluation.reasons or "it was never evaluated"
        raise AdapterError(
            f"adapter {adapter_id} did not pass the evaluation gate ({why}); add --force to promote it anyway"
        )
    verify(adapter)
    with store.transaction():
        store.db.execute(
            "UPDATE adapters SET status = 'retired' WHERE task_id = ? AND status = 'active'",
            [adapter.task_id],
        )
        store.db.execute(
            "UPDATE adapters SET status = 'active', promoted_utc = ? WHERE id = ?", [utc_now(), adapter_id]
        )
    return get(store, adapter_id)


def rollback(store: Store, task_id: int) -> Adapter | None:
    """Retire the task's active adapter and reactivate the one promoted before it (checked first);
    with none before it, the task goes back to its base model. Returns the adapter now active."""
    current = active_for_task(store, task_id)
    if current is None:
        raise AdapterError(
            f"task {task_id} has no active adapter to roll back; it already uses its base model"
        )
    previous = None
    for row in store.db.query(
        "SELECT * FROM adapters WHERE task_id = ? AND status = 'retired' AND promoted_utc IS NOT NULL "
        "AND promoted_utc < ? ORDER BY promoted_utc DESC",
        [task_id, current.promoted_utc],
    ):
        candidate = _from_row(row)
        try:
            verify(candidate)
        except AdapterError:
            continue  # its file is gone or changed: skip it, never reactivate a broken adapter
        previous = candidate
        break
    with store.transaction():
        store.db.execute("UPDATE adapters SET status = 'retired' WHERE id = ?", [current.id])
        if previous is not None:
            store.db.execute("UPDATE adapters SET status = 'active' WHERE id = ?", [previous.id])
    return None if previous is None else get(store, previous.id)
