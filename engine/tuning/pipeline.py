"""One tuning job from start to end: dataset → base choice → rehearsal answers → training → export →
candidate → evaluation → gate → promoted or rejected.

``run_tune`` is the job itself; ``run_job`` runs it as a row of the ``jobs`` table (one at a time,
progress and result recorded, every event appended to the job's log). Each stage reports typed events
(``engine.tuning.events``) through ``on_event``: ``StageStarted`` when a stage begins,
``RehearsalProgress`` for each rehearsal answer the base makes (once per model), the trainer's own
events (``TrainingStep`` with loss, tokens/s and ETA; ``CheckpointSaved``), ``Evaluated`` for each model
measured, ``GateDecided`` with the decision, and ``JobDone`` (or ``JobFailed`` / ``JobCancelled``) at
the end. ``JobReporter`` is the edge that writes them as JSON lines.

A kill at any moment is safe: training checkpoints and the adapter publish are atomic, and the job row
of a killed worker is marked failed by the next reader (``jobs.reap_stale``). ``resume`` continues
training from the last checkpoint of the same dataset and base.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from engine import backends, catalog, paths
from engine.errors import TrainingCancelled, TuningError, UnderstudyError
from engine.store import Store
from engine.tuning import adapters, jobs
from engine.tuning.base_choice import choose_base
from engine.tuning.datasets import build_from_jsonl, build_from_log, named_task, read_records
from engine.tuning.evaluation import (
    AdapterEvaluation,
    Evaluation,
    evaluate_general,
    evaluate_task,
    gate,
    load_general_set,
)
from engine.tuning.events import (
    STAGE_PROGRESS,
    BaseChosen,
    CandidateRegistered,
    DatasetBuilt,
    Evaluated,
    EvaluationProgress,
    EventSink,
    GateDecided,
    JobCancelled,
    JobDone,
    JobEvent,
    JobFailed,
    JobWarning,
    RehearsalProgress,
    StageStarted,
    TuneResult,
    parse_event,
    progress_of,
)
from engine.tuning.scheduler import Machine, ScheduleSettings, should_start


def _through(stage: str, fraction: float) -> float:
    """The job's progress ``fraction`` of the way through ``stage`` (up to where the next one starts)."""
    names = list(STAGE_PROGRESS)
    start = STAGE_PROGRESS[stage]
    end = STAGE_PROGRESS[names[names.index(stage) + 1]] if stage != names[-1] else 1.0
    return round(start + (end - start) * min(1.0, fraction), 4)


TRAIN_OPTIONS = ("rank", "alpha", "learning_rate", "epochs", "max_steps", "seed")
PROGRESS_WRITE_SECONDS = 1.0


@dataclass
class TuneRequest:
    """What to tune: a task (id or name) from the log, or a JSONL file (for that task, or a new one
    named after the file); ``base`` overrides the base choice; ``train`` overrides trainer settings."""

    task: int | str | None = None
    dataset_file: Path | None = None
    base: str | None = None
    resume: bool = False
    train: dict[str, Any] = field(default_factory=dict)

    def as_args(self) -> dict[str, Any]:
        args = asdict(self)
        args["dataset_file"] = None if self.dataset_file is None else str(Path(self.dataset_file).resolve())
        return args

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> TuneRequest:
        request = cls(**args)
        if request.dataset_file is not None:
            request.dataset_file = Path(request.dataset_file)
        return request

    def check(self) -> None:
        if self.task is None and self.dataset_file is None:
            raise TuningError("Say what to tune: --task ID (or name) or --dataset FILE.")
        unknown = set(self.train) - set(TRAIN_OPTIONS)
        if unknown:
            raise TuningError(f"Unknown training setting(s): {', '.join(sorted(unknown))}.")


def training_dir(dataset_sha256: str, base_model_id: str) -> Path:
    """Where a dataset's training on a base keeps its checkpoints and outputs (stable, for --resume)."""
    return paths.data_dir() / "training" / f"{dataset_sha256[:16]}-{base_model_id}"


def resolve_task(store: Store, request: TuneRequest) -> int:
    if isinstance(request.task, int) or (isinstance(request.task, str) and request.task.isdigit()):
        task_id = int(request.task)
        if not list(store.db.query("SELECT 1 FROM tasks WHERE id = ?", [task_id])):
            raise TuningError(f"There is no task {task_id}; give a task's id or name.")
        return task_id
    if request.task:
        return named_task(store, request.task)
    return named_task(store, Path(request.dataset_file).stem.replace("_", " "), source="dataset")


def run_tune(
    store: Store,
    request: TuneRequest,
    on_event: EventSink,
    cancel: threading.Event | None = None,
) -> TuneResult:
    """Run the whole job; return its result (the adapter, the figures, whether it was promoted)."""
    request.check()
    model_catalog = catalog.load_catalog()

    def stage(name: str, **details: Any) -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled(f"The tuning job was cancelled before its {name} stage.")
        on_event(StageStarted(name, STAGE_PROGRESS[name], **details))

    stage("dataset")
    task_id = resolve_task(store, request)
    if request.dataset_file is not None:
        dataset = build_from_jsonl(store, Path(request.dataset_file), task_id=task_id)
    else:
        dataset = build_from_log(store, task_id=task_id)
    validation = read_records(dataset.val_path)
    # A task the user named or built from a file has no centroid from discovery: place it from its
    # examples now, so the router can send its requests to the specialist this job makes.
    if store.db["tasks"].get(task_id)["source"] != "discovered":
        from engine.discovery import place_task

        place_task(store, task_id)
    on_event(DatasetBuilt(task_id, dataset.id, dataset.n_train, dataset.n_val, dataset.sha256))

    stage("base", override=request.base)
    choice = choose_base(model_catalog, validation, override=request.base, cancel=cancel, on_event=on_event)
    base_entry = model_catalog.get(choice.model_id)
    on_event(BaseChosen(**choice.as_dict()))

    stage("rehearse", base_model_id=base_entry.id)
    from engine.tuning.rehearsal import rehearsal_file

    rehearsal = rehearsal_file(base_entry, cancel=cancel, on_answer=_rehearsal_events(on_event))

    stage("train", base_model_id=base_entry.id)
    from engine.tuning.trainer import TrainConfig, train

    output_dir = training_dir(dataset.sha256, base_entry.id)
    config = TrainConfig(
        base_model_id=base_entry.id,
        dataset_folder=dataset.folder,
        output_dir=output_dir,
        rehearsal_file=rehearsal,
        resume=request.resume,
        **request.train,
    )
    trained = train(config, on_progress=_training_events(on_event), cancel=cancel)

    stage("export")
    from engine.tuning.export import export_gguf_adapter

    exported = output_dir / "adapter.gguf"
    export_gguf_adapter(trained.adapter_dir, base_entry, exported)

    stage("register")
    training_record = {
        "steps": trained.steps,
        "final_loss": round(trained.final_loss, 4),
        "validation_loss": None if trained.validation_loss is None else round(trained.validation_loss, 4),
        "train_tokens": trained.train_tokens,
        "tokens_per_second": round(trained.tokens_per_second, 1),
        "seconds": round(trained.seconds, 1),
        "resumed_from_step": trained.resumed_from_step,
        "settings": {name: getattr(config, name) for name in TRAIN_OPTIONS},
        "base_choice": choice.as_dict(),
    }
    candidate = adapters.register_candidate(
        store, exported, base_entry.id, task_id, dataset_id=dataset.id, training=training_record
    )
    on_event(CandidateRegistered(candidate.id, candidate.sha256))

    stage("evaluate", adapter_id=candidate.id)
    decision, evaluations = _evaluate(store, candidate, base_entry.id, choice, validation, on_event, cancel)

    stage("gate")
    adapters.record_evaluation(
        store, candidate.id, AdapterEvaluation(**{e.role: e for e in evaluations}, gate=decision)
    )
    if decision.promote:
        adapters.promote(store, candidate.id)
    else:
        adapters.reject(store, candidate.id)
    on_event(GateDecided(candidate.id, decision))
    return TuneResult(
        task_id=task_id,
        dataset_id=dataset.id,
        adapter_id=candidate.id,
        base_model_id=base_entry.id,
        status=adapters.get(store, candidate.id).status,
        promoted=decision.promote,
        reasons=decision.reasons,
        figures=decision.figures,
        base_choice=choice.as_dict(),
        training=training_record,
    )


def _rehearsal_events(on_event: EventSink) -> Callable[[int, int], None]:
    """Each rehearsal answer the base made, as a ``RehearsalProgress`` along its stage's span."""

    def answered(done: int, total: int) -> None:
        on_event(RehearsalProgress(done, total, _through("rehearse", done / total)))

    return answered


def _training_events(on_event: EventSink) -> Callable[[dict[str, Any]], None]:
    """The trainer's events (plain dicts, as a library reports them) typed, named so they cannot be
    mistaken for the job's own, with the job's progress on each step."""
    renamed = {"start": "train_start", "done": "trained"}

    def forward(event: dict[str, Any]) -> None:
        event = {**event, "event": renamed.get(event["event"], event["event"])}
        if event["event"] == "step":
            event["progress"] = _through("train", event["step"] / event["total_steps"])
        on_event(parse_event(event))

    return forward


def _evaluate(store, candidate, base_model_id, choice, validation, on_event, cancel):
    """Base, candidate and active adapter on the task; base and candidate on the general set."""
    model_catalog = catalog.load_catalog()
    backend = backends.load(model_catalog.get(base_model_id))
    candidate_path = adapters.verify(candidate)
    current = adapters.active_for_task(store, candidate.task_id)
    general_items = load_general_set()
    answers = 2 * len(general_items) + len(validation) * (2 if current is not None else 1)
    count = _EvaluationProgress(on_event, answers)
    base = Evaluation("base", base_model_id, None, choice.scores[base_model_id])
    base.general = evaluate_general(
        backend, items=general_items, cancel=cancel, on_progress=count.of("base", "general")
    )
    on_event(Evaluated(base))
    measured = Evaluation(
        "candidate",
        base_model_id,
        candidate.id,
        evaluate_task(
            backend,
            validation,
            adapter=candidate_path,
            cancel=cancel,
            on_progress=count.of("candidate", "task"),
        ),
        evaluate_general(
            backend,
            adapter=candidate_path,
            items=general_items,
            cancel=cancel,
            on_progress=count.of("candidate", "general"),
        ),
    )
    on_event(Evaluated(measured))
    active = None
    if current is not None:
        try:
            current_path = adapters.verify(current)
        except UnderstudyError as error:
            on_event(JobWarning(f"the active adapter cannot be measured: {error}"))
        else:
            active_backend = backends.load(model_catalog.get(current.base_model_id))
            active = Evaluation(
                "active",
                current.base_model_id,
                current.id,
                evaluate_task(
                    active_backend,
                    validation,
                    adapter=current_path,
                    cancel=cancel,
                    on_progress=count.of("active", "task"),
                ),
            )
            on_event(Evaluated(active))
    evaluations = [e for e in (base, measured, active) if e is not None]
    return gate(measured, base, active), evaluations


class _EvaluationProgress:
    """Turns each answer scored into an ``EvaluationProgress`` along the evaluate stage's span."""

    def __init__(self, on_event: EventSink, answers: int):
        self.on_event = on_event
        self.answers = max(1, answers)
        self.scored = 0

    def of(self, role: str, measure: str) -> Callable[[int, int], None]:
        def scored(done: int, total: int) -> None:
            self.scored += 1
            self.on_event(
                EvaluationProgress(
                    role, measure, done, total, _through("evaluate", self.scored / self.answers)
                )
            )

        return scored


# Running a job -----------------------------------------------------------------------------------


class JobReporter:
    """Every event goes to the job's log and to ``echo``; progress goes to the jobs row (at most once a
    second, so a fast training loop does not hammer the database)."""

    def __init__(self, store: Store, job: jobs.Job, echo: EventSink | None = None):
        self.store = store
        self.job_id = job.id
        self.log = jobs.JobLog(job.log_path)
        self.echo = echo
        self._written_at = 0.0

    def __call__(self, event: JobEvent) -> None:
        event = replace(event, job_id=self.job_id)
        self.log.write(event)
        if self.echo is not None:
            self.echo(event)
        if isinstance(event, DatasetBuilt):
            jobs.set_task(self.store, self.job_id, event.task_id)
        progress = progress_of(event)
        now = time.monotonic()
        if progress is not None and (
            isinstance(event, StageStarted) or now - self._written_at >= PROGRESS_WRITE_SECONDS
        ):
            jobs.set_progress(self.store, self.job_id, progress)
            self._written_at = now

    def close(self) -> None:
        self.log.close()


def run_job(
    store: Store, job_id: int, echo: EventSink | None = None, cancel: threading.Event | None = None
) -> jobs.Job:
    """Take a queued job and run it in this process; return the finished job row.

    Refuses (``TuningError``) when another job is running. A failure is recorded on the job and
    reported as an ``error`` event; it is not raised, so the caller decides the exit code.
    """
    job = jobs.start(store, job_id)
    reporter = JobReporter(store, job, echo)
    try:
        result = run_tune(store, TuneRequest.from_args(job.args), reporter, cancel)
        reporter(JobDone(result))
        return jobs.finish(store, job_id, "succeeded", result=result)
    except TrainingCancelled as error:
        reporter(JobCancelled(str(error)))
        return jobs.finish(store, job_id, "cancelled", error=str(error))
    except UnderstudyError as error:
        reporter(JobFailed(str(error)))
        return jobs.finish(store, job_id, "failed", error=str(error))
    except BaseException as error:
        jobs.finish(store, job_id, "failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        reporter.close()


def run_due(
    store: Store,
    machine: Machine,
    now: datetime,
    settings: ScheduleSettings,
    echo: EventSink | None = None,
    cancel: threading.Event | None = None,
) -> tuple[jobs.Job | None, str]:
    """Run the oldest queued job if the schedule allows it now; return (finished job or None, why)."""
    queued = jobs.next_queued(store)
    if queued is None:
        return None, "no tuning job is queued"
    allowed, reason = should_start(now, machine.power(), machine.idle(), len(jobs.running(store)), settings)
    if not allowed:
        return None, reason
    return run_job(store, queued.id, echo, cancel), reason
