"""A tuning job's worker process, seen from the GUI: ``understudy tune ... --json`` started with QProcess,
so a crash or a kill of the trainer never hurts the app.

- ``QtTuneProcess``: each JSON line the worker prints becomes a typed event (``event`` signal), its end
  a ``JobOutcome`` (``ended``); stop it politely (SIGTERM, recorded as cancelled) or on closing.
- ``WorkerCommand`` and ``worker_command``: which program runs ``understudy <arguments>``; the Tuning
  section takes another one in tests (a worker that replays a recorded job).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QObject, QProcess, QProcessEnvironment, QTimer, Signal

from engine.tuning import jobs
from engine.tuning.events import ENDINGS, JobDone, JobEvent, TuneResult, parse_event

KILL_AFTER_MS = 120_000  # a worker asked to stop that is still running then is killed
STDERR_KEPT_CHARS = 8000
# The program and its arguments that run ``understudy <arguments>``.
WorkerCommand = Callable[[list[str]], tuple[str, list[str]]]


def worker_command(arguments: list[str]) -> tuple[str, list[str]]:
    """The program and arguments that run ``understudy <arguments>`` with this very Python."""
    script = Path(sys.executable).with_name("understudy")
    if script.exists():
        return str(script), arguments
    return sys.executable, ["-m", "app", *arguments]


def worker_environment() -> QProcessEnvironment:
    """The app's environment, with OpenMP told to wait passively (unless the user set it).

    The worker trains beside the app's own llama.cpp threads on a machine that may have two cores:
    spinning OpenMP threads then crawl (measured 4 training tokens/s spinning against 35 passive), and
    OpenMP reads the setting only from the environment, so the child process is given it.
    """
    environment = QProcessEnvironment.systemEnvironment()
    if not environment.contains("OMP_WAIT_POLICY"):
        environment.insert("OMP_WAIT_POLICY", "PASSIVE")
    return environment


@dataclass(frozen=True)
class JobOutcome:
    """How a worker process ended: ``status`` is succeeded, failed, cancelled or waiting (nothing ran);
    ``ending`` is the job's own last word (done, cancelled or error) when it said one."""

    status: str
    job_id: int | None = None
    message: str = ""
    ending: JobEvent | None = None

    @property
    def result(self) -> TuneResult | None:
        return self.ending.result if isinstance(self.ending, JobDone) else None


class QtTuneProcess(QObject):
    """One ``understudy tune ... --json`` process: each event it prints is an ``event(JobEvent)``, its
    end an ``ended(JobOutcome)``. Nothing it does (crash, kill, garbage output) can raise in the app."""

    event = Signal(object)
    ended = Signal(object)

    def __init__(
        self, arguments: list[str], command: WorkerCommand = worker_command, parent: QObject | None = None
    ):
        super().__init__(parent)
        self.job_id: int | None = None
        self.stop_requested = False
        self._buffer = b""
        self._stderr = ""
        self._ending: JobEvent | None = None
        self._ended = False
        self.process = QProcess(self)
        program, program_arguments = command(arguments)
        self.process.setProgram(program)
        self.process.setArguments(program_arguments)
        self.process.setProcessEnvironment(worker_environment())
        self.process.readyReadStandardOutput.connect(self._on_stdout)
        self.process.readyReadStandardError.connect(self._on_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.process.kill)

    def start(self) -> None:
        self.process.start()

    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def stop(self) -> None:
        """Ask the worker to stop between two steps; kill it if it is still running much later.

        SIGTERM waits until the worker has taken its job (its first event): only from then on does
        it turn the signal into a recorded cancel instead of dying with the job still queued.
        """
        self.stop_requested = True
        if self.job_id is not None and self.running():
            self.process.terminate()
            self._kill_timer.start(KILL_AFTER_MS)

    def stop_and_wait(self, wait_ms: int) -> None:
        """Stop the worker before the app exits: let it take its job first (or SIGTERM would leave the
        job queued for the night), ask it to stop, and kill it if it has not stopped within ``wait_ms``."""
        self.stop_requested = True
        waited = QElapsedTimer()
        waited.start()
        while self.job_id is None and self.running() and waited.elapsed() < wait_ms:
            self.process.waitForReadyRead(500)
        self.process.terminate()
        if not self.process.waitForFinished(wait_ms):
            self.process.kill()
            self.process.waitForFinished(3000)

    def _on_stdout(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._take_line(line)

    def _take_line(self, line: bytes) -> None:
        try:
            event = parse_event(json.loads(line.decode("utf-8", errors="replace")))
        except ValueError:
            return  # not one of ours (a library printing to stdout)
        if self.job_id is None and event.job_id is not None:
            self.job_id = event.job_id
            if self.stop_requested:
                self.stop()
        if isinstance(event, ENDINGS):
            self._ending = event
        self.event.emit(event)

    def _on_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", errors="replace")
        self._stderr = (self._stderr + text)[-STDERR_KEPT_CHARS:]

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._end(
                JobOutcome(
                    "failed",
                    message=f"Could not start the tuning process ({self.process.errorString()}).",
                )
            )

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._on_stdout()
        if self._buffer.strip():
            self._take_line(self._buffer)
            self._buffer = b""
        self._on_stderr()
        self._end(self._outcome(exit_code, exit_status))

    def _outcome(self, exit_code: int, exit_status: QProcess.ExitStatus) -> JobOutcome:
        ending = self._ending
        if ending is not None:
            status = {"done": "succeeded", "cancelled": "cancelled", "error": "failed"}[ending.kind]
            return JobOutcome(status, self.job_id, getattr(ending, "message", ""), ending)
        if exit_status == QProcess.ExitStatus.CrashExit:
            how = (
                "was stopped by force" if self.stop_requested else "stopped unexpectedly (killed or crashed)"
            )
            last_words = self._error_line()
            return JobOutcome(
                "failed",
                self.job_id,
                f"The tuning process {how}." + (f" It said: {last_words}" if last_words else ""),
            )
        if exit_code == 0:
            return JobOutcome("waiting" if self.job_id is None else "succeeded", self.job_id)
        if exit_code == jobs.CANCELLED_EXIT_CODE:
            return JobOutcome("cancelled", self.job_id, "The tuning job was cancelled.")
        return JobOutcome(
            "failed",
            self.job_id,
            self._error_line() or f"The tuning process ended with exit code {exit_code}.",
        )

    def _error_line(self) -> str:
        """The last error the worker wrote to stderr (click's "Error: ..." or an exception's last line),
        not the progress bars libraries draw there."""
        lines = self._stderr.replace("\r", "\n").splitlines()
        return next((line.strip() for line in reversed(lines) if "Error" in line), "")

    def _end(self, outcome: JobOutcome) -> None:
        if self._ended:
            return
        self._ended = True
        self._kill_timer.stop()
        self.ended.emit(outcome)
