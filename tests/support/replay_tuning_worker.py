"""A tuning worker that replays a recorded job instead of training, for the GUI's tests.

It is the real ``understudy tune`` command in a real process (its job row, its log, its JSON lines,
SIGTERM turned into a recorded cancel, its exit codes); only the job's model work is replaced: the
recorded job's events are reported one every ``--seconds-per-event``, for the task this run was asked
to tune. ``--hold-at-step N`` waits after training step N until the job is cancelled (up to a minute),
so a test can stop or kill it mid-training without racing it.

    python replay_tuning_worker.py RECORDED.jsonl [--seconds-per-event S] [--hold-at-step N] -- tune ...

What follows ``--`` is the ``understudy`` command line the app would have run.

``recorded_tuning_job.jsonl`` beside it is the log of one real job, run from an empty cache (so it has
the dequantising and rehearsal events too) on the GUI tests' twelve snorfle questions:
``understudy tune --dataset snorfle_facts.jsonl --base smollm2-135m-instruct --steps 20 --now --json``.
Record it again the same way when the events change.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from engine.errors import TrainingCancelled
from engine.store import Store
from engine.tuning import pipeline
from engine.tuning.events import (
    DatasetBuilt,
    EventSink,
    JobDone,
    JobEvent,
    StageStarted,
    TrainingStep,
    TuneResult,
    parse_event,
)

HOLD_SECONDS = 60.0


def replaying(recorded: list[JobEvent], seconds_per_event: float, hold_at_step: int | None):
    """A ``pipeline.run_tune`` that reports ``recorded`` instead of running the job."""

    def run_tune(
        store: Store,
        request: pipeline.TuneRequest,
        on_event: EventSink,
        cancel: threading.Event | None = None,
    ) -> TuneResult:
        request.check()
        task_id = pipeline.resolve_task(store, request)
        cancel = cancel or threading.Event()
        stage, step = None, None
        for event in recorded:
            if isinstance(event, JobDone):
                return replace(event.result, task_id=task_id)
            if cancel.is_set():
                raise TrainingCancelled(_why_stopped(event, stage, step))
            if isinstance(event, StageStarted):
                stage = event
            if isinstance(event, DatasetBuilt):
                event = replace(event, task_id=task_id)
            on_event(replace(event, job_id=None))
            if isinstance(event, TrainingStep):
                step = event
                if event.step == hold_at_step:
                    cancel.wait(HOLD_SECONDS)
            time.sleep(seconds_per_event)
        raise AssertionError("the recorded job has no done event")

    return run_tune


def _why_stopped(upcoming: JobEvent, stage: StageStarted | None, step: TrainingStep | None) -> str:
    """What the real job says when it stops here: between stages, or the trainer between steps."""
    if isinstance(upcoming, StageStarted):
        return f"The tuning job was cancelled before its {upcoming.stage} stage."
    if stage is not None and stage.stage == "train" and step is not None:
        return f"Training stopped at step {step.step} of {step.total_steps}; resume it with --resume."
    return "The tuning job was cancelled."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recorded", type=Path)
    parser.add_argument("--seconds-per-event", type=float, default=0.005)
    parser.add_argument("--hold-at-step", type=int)
    given = sys.argv[1:]
    split = given.index("--")
    options = parser.parse_args(given[:split])
    lines = options.recorded.read_text(encoding="utf-8").splitlines()
    recorded = [parse_event(json.loads(line)) for line in lines]
    pipeline.run_tune = replaying(recorded, options.seconds_per_event, options.hold_at_step)

    from app.main import cli

    cli.main(args=given[split + 1 :], prog_name="understudy")


if __name__ == "__main__":
    main()
