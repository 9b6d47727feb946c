"""Work off the GUI thread: every engine or database call from the GUI runs here.

A job is a plain function run in the app's thread pool; its result, error and progress come back as Qt
signals, which Qt delivers on the GUI thread. Jobs never touch widgets. Each pool thread keeps its own
database connection (SQLite connections are per thread; WAL lets them read while another writes).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine import paths
from engine.errors import UnderstudyError

if TYPE_CHECKING:
    from engine.store import Store

log = logging.getLogger(__name__)
_thread_state = threading.local()
_pool: QThreadPool | None = None
# Jobs in flight, so Python keeps them (and their signal objects) alive until they report back.
_running: set[QRunnable] = set()


def job_pool() -> QThreadPool:
    """The pool every GUI job runs in (tests wait on it to prove no worker is left running)."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(4)
    return _pool


def thread_store() -> Store:
    """This thread's connection to the database in the current data dir.

    Imported here, in a pool thread, so sqlite-utils (and the numpy it pulls in) never slows start-up.
    """
    from engine.store import Store

    stores: dict[str, Store] = getattr(_thread_state, "stores", None) or {}
    _thread_state.stores = stores
    path = str(paths.database_path())
    if path not in stores:
        stores[path] = Store.open(path)
    return stores[path]


def describe_error(error: BaseException) -> str:
    """The message a user sees: the engine's own for its errors, a short line otherwise."""
    if isinstance(error, UnderstudyError):
        return str(error)
    return f"Something went wrong ({type(error).__name__}: {error}). Details are in the log."


class JobSignals(QObject):
    finished = Signal(object)
    failed = Signal(str)
    progress = Signal(object)


class Job(QRunnable):
    """Runs ``function(report_progress)`` in the pool and reports back through ``signals``."""

    def __init__(self, function: Callable[[Callable[[Any], None]], Any]):
        super().__init__()
        self.function = function
        self.signals = JobSignals()

    def run(self) -> None:
        try:
            result = self.function(self.signals.progress.emit)
        except Exception as error:
            if not isinstance(error, UnderstudyError):
                log.error("background job failed:\n%s", traceback.format_exc())
            self.signals.failed.emit(describe_error(error))
            return
        self.signals.finished.emit(result)


def run_in_background(
    function: Callable[..., Any],
    on_finished: Callable[[Any], None] | None = None,
    on_failed: Callable[[str], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    with_progress: bool = False,
) -> Job:
    """Start ``function()`` (or ``function(report_progress)`` when ``with_progress``) in the pool."""
    job = Job(function if with_progress else (lambda _report: function()))
    if on_finished is not None:
        job.signals.finished.connect(on_finished)
    if on_failed is not None:
        job.signals.failed.connect(on_failed)
    if on_progress is not None:
        job.signals.progress.connect(on_progress)
    _start(job)
    return job


def _start(job: Job | GenerationJob) -> None:
    job.setAutoDelete(False)
    _running.add(job)
    job.signals.finished.connect(lambda _result: _running.discard(job))
    job.signals.failed.connect(lambda _message: _running.discard(job))
    job_pool().start(job)


class GenerationSignals(QObject):
    token = Signal(str)
    tool_event = Signal(object)  # engine.tools.calling.ToolEvent
    finished = Signal(object)
    failed = Signal(str)


class GenerationJob(QRunnable):
    """One streamed turn: a ``token`` signal per piece, then ``finished(TurnResult)`` or ``failed``.

    ``cancel()`` is honoured between two tokens; the cancelled turn is still logged.
    """

    def __init__(self, run_turn: Callable[[Store, threading.Event], Any]):
        super().__init__()
        self.run_turn = run_turn
        self.signals = GenerationSignals()
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:
        try:
            stream = self.run_turn(thread_store(), self.cancel_event)
            while True:
                piece = next(stream)
                if isinstance(piece, str):
                    self.signals.token.emit(piece)
                else:
                    self.signals.tool_event.emit(piece)
        except StopIteration as finished:
            self.signals.finished.emit(finished.value)
        except Exception as error:
            if not isinstance(error, UnderstudyError):
                log.error("generation failed:\n%s", traceback.format_exc())
            self.signals.failed.emit(describe_error(error))


def start_generation(job: GenerationJob) -> GenerationJob:
    _start(job)
    return job
