"""Background jobs (tuning runs) in the ``jobs`` table, one running at a time.

A job (``Job``, one row) is ``queued`` until a worker process takes it (``start``: ``running`` with the
worker's pid), then ends ``succeeded`` (with its ``TuneResult``), ``failed`` or ``cancelled``. Its
progress events are JSON lines in ``<data dir>/jobs/<id>.log`` (``JobLog``), which the GUI and
``understudy jobs`` read while it runs (``read_log``).

A worker killed outright (SIGKILL, a crash, a power cut) cannot record its end, so a ``running`` job
whose process is gone is marked failed the next time anyone looks (``reap_stale``), which also frees
the one-job slot. ``cancel`` sends the worker SIGTERM; the worker stops between training steps and
records ``cancelled`` itself.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from engine import paths
from engine.errors import TuningError
from engine.store import Store, utc_now
from engine.tuning.events import JobEvent, TuneResult, parse_event

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
KIND_TUNE = "tune"
# How a tuning process that was cancelled exits (the shell's code for SIGINT), so its parent can tell.
CANCELLED_EXIT_CODE = 130
# How much later than the job's start a live process with its pid may have started (clock granularity).
START_SLACK_SECONDS = 5.0


@dataclass(frozen=True)
class Job:
    """One row of ``jobs``: ``args`` are the tune request's, ``result`` is set once it succeeded."""

    id: int
    kind: str
    task_id: int | None
    status: str
    progress: float
    pid: int | None
    created_utc: str
    started_utc: str | None
    finished_utc: str | None
    log_path: Path | None
    error: str | None
    args: dict[str, Any] = field(default_factory=dict)
    result: TuneResult | None = None

    @property
    def outcome(self) -> str:
        """What the job came to, in a few words: the adapter it made, or its error."""
        if self.result is not None:
            return f"adapter #{self.result.adapter_id} {self.result.status}"
        return self.error or ""

    @property
    def subject(self) -> str:
        """What the job tunes, as its request named it: a dataset file, or a task."""
        if self.args.get("dataset_file"):
            return Path(self.args["dataset_file"]).name
        return f"task {self.args.get('task')}"

    def as_dict(self) -> dict[str, Any]:
        """The row as ``understudy jobs --json`` prints it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "task_id": self.task_id,
            "status": self.status,
            "progress": self.progress,
            "pid": self.pid,
            "created_utc": self.created_utc,
            "started_utc": self.started_utc,
            "finished_utc": self.finished_utc,
            "log_path": None if self.log_path is None else str(self.log_path),
            "error": self.error,
            "args": self.args,
            "result": None if self.result is None else self.result.as_dict(),
        }


def jobs_dir() -> Path:
    folder = paths.data_dir() / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def create(store: Store, kind: str, args: dict[str, Any], task_id: int | None = None) -> Job:
    """Queue a job; it runs when a worker ``start``s it."""
    with store.transaction():
        job_id = store.insert(
            "jobs",
            {
                "kind": kind,
                "task_id": task_id,
                "status": "queued",
                "args_json": json.dumps(args, ensure_ascii=False),
                "created_utc": utc_now(),
            },
        )
        store.db.execute(
            "UPDATE jobs SET log_path = ? WHERE id = ?", [str(jobs_dir() / f"{job_id}.log"), job_id]
        )
    return get(store, job_id)


def get(store: Store, job_id: int) -> Job:
    rows = list(store.db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
    if not rows:
        raise TuningError(f"There is no job {job_id}; `understudy jobs` lists them.")
    return _parsed(rows[0])


def list_jobs(store: Store, limit: int = 50) -> list[Job]:
    """Newest first, with stale running jobs already marked failed."""
    reap_stale(store)
    return [_parsed(row) for row in store.db.query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", [limit])]


def running(store: Store) -> list[Job]:
    reap_stale(store)
    return [_parsed(row) for row in store.db.query("SELECT * FROM jobs WHERE status = 'running'")]


def next_queued(store: Store, kind: str = KIND_TUNE) -> Job | None:
    rows = list(
        store.db.query("SELECT * FROM jobs WHERE status = 'queued' AND kind = ? ORDER BY id LIMIT 1", [kind])
    )
    return _parsed(rows[0]) if rows else None


def queued_count(store: Store) -> int:
    return next(iter(store.db.query("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'")))["n"]


def _parsed(row: dict[str, Any]) -> Job:
    result = json.loads(row["result_json"] or "null")
    return Job(
        id=row["id"],
        kind=row["kind"],
        task_id=row["task_id"],
        status=row["status"],
        progress=row["progress"],
        pid=row["pid"],
        created_utc=row["created_utc"],
        started_utc=row["started_utc"],
        finished_utc=row["finished_utc"],
        log_path=None if row["log_path"] is None else Path(row["log_path"]),
        error=row["error"],
        args=json.loads(row["args_json"] or "{}"),
        result=None if result is None else TuneResult.from_dict(result),
    )


# The worker's side -------------------------------------------------------------------------------


def start(store: Store, job_id: int, pid: int | None = None) -> Job:
    """Mark a queued job running in process ``pid`` (this one by default).

    Refused while another job runs: the check and the change are one transaction, so two workers
    starting at once cannot both win.
    """
    pid = pid or os.getpid()
    with store.transaction():
        _reap_stale_locked(store)
        job = get(store, job_id)
        if job.status != "queued":
            raise TuningError(f"Job {job_id} is {job.status}, not queued, so it cannot start.")
        busy = list(store.db.query("SELECT id, pid FROM jobs WHERE status = 'running'"))
        if busy:
            raise TuningError(
                f"Job {busy[0]['id']} is already running (process {busy[0]['pid']}); one tuning job runs "
                f"at a time. Wait for it, or stop it with `understudy tune cancel {busy[0]['id']}`."
            )
        store.db.execute(
            "UPDATE jobs SET status = 'running', pid = ?, started_utc = ? WHERE id = ?",
            [pid, utc_now(), job_id],
        )
    return get(store, job_id)


def set_progress(store: Store, job_id: int, progress: float) -> None:
    with store.transaction():
        store.db.execute(
            "UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'",
            [max(0.0, min(1.0, progress)), job_id],
        )


def set_task(store: Store, job_id: int, task_id: int) -> None:
    """Record the task a job works on, once it is known (a dataset file may create it)."""
    with store.transaction():
        store.db.execute("UPDATE jobs SET task_id = ? WHERE id = ?", [task_id, job_id])


def finish(
    store: Store, job_id: int, status: str, result: TuneResult | None = None, error: str | None = None
) -> Job:
    if status not in FINISHED:
        raise TuningError(f"A job finishes as one of {', '.join(FINISHED)}, not {status!r}.")
    with store.transaction():
        store.db.execute(
            "UPDATE jobs SET status = ?, finished_utc = ?, result_json = ?, error = ?, "
            "progress = CASE WHEN ? = 'succeeded' THEN 1.0 ELSE progress END WHERE id = ?",
            [
                status,
                utc_now(),
                None if result is None else json.dumps(result.as_dict(), ensure_ascii=False),
                error,
                status,
                job_id,
            ],
        )
    return get(store, job_id)


class JobLog:
    """Appends a job's events to its log file as JSON lines, flushed one by one for live readers."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")

    def write(self, event: JobEvent) -> None:
        self._handle.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def read_log(job: Job) -> list[JobEvent]:
    """A job's events so far (a line being written when read is skipped)."""
    if job.log_path is None or not job.log_path.exists():
        return []
    events = []
    for line in job.log_path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(parse_event(json.loads(line)))
        except ValueError:
            continue
    return events


# Stale jobs and cancelling -----------------------------------------------------------------------


def process_alive(pid: int | None, started_utc: str | None) -> bool:
    """Whether the process that took a job is still running: not gone, not a zombie, and not a newer
    process that happens to reuse its pid."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    if started_utc:
        started = datetime.fromisoformat(started_utc).timestamp()
        return created <= started + START_SLACK_SECONDS
    return True


def reap_stale(store: Store) -> list[int]:
    """Mark failed every running job whose worker process is gone; return their ids."""
    with store.transaction():
        return _reap_stale_locked(store)


def _reap_stale_locked(store: Store) -> list[int]:
    stale = [
        row
        for row in store.db.query("SELECT id, pid, started_utc FROM jobs WHERE status = 'running'")
        if not process_alive(row["pid"], row["started_utc"])
    ]
    for row in stale:
        store.db.execute(
            "UPDATE jobs SET status = 'failed', finished_utc = ?, error = ? WHERE id = ?",
            [
                utc_now(),
                f"the worker process {row['pid']} ended without finishing (killed or crashed); "
                "run the tune again with --resume to continue from its last checkpoint",
                row["id"],
            ],
        )
    return [row["id"] for row in stale]


def cancel(store: Store, job_id: int) -> Job:
    """Cancel a queued job at once; ask a running one's worker to stop (SIGTERM)."""
    with store.transaction():
        job = get(store, job_id)
        if job.status == "queued":
            store.db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_utc = ? WHERE id = ?", [utc_now(), job_id]
            )
            return get(store, job_id)
        if job.status != "running":
            raise TuningError(f"Job {job_id} is already {job.status}; there is nothing to cancel.")
        if not process_alive(job.pid, job.started_utc):
            _reap_stale_locked(store)
            return get(store, job_id)
    try:
        os.kill(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        reap_stale(store)
    return get(store, job_id)
