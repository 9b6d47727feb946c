"""What a tuning job reports as it runs, typed, and the one plain-words line a person reads for each.

A job's events are dataclasses inside the engine. At the edges that write JSON (the job's log,
``understudy tune --json``) each becomes one JSON object per line through ``to_dict``, whose keys are
stable for scripts; ``parse_event`` turns such a line back into its event (the app reads its worker's
stdout, ``jobs.read_log`` a log). ``describe`` is the renderer the command line and the desktop app
share, so an event reads the same wherever it is shown.

- The job's own events: ``StageStarted``, ``DatasetBuilt``, ``BaseScored``, ``BaseChosen``,
  ``RehearsalProgress``, ``CandidateRegistered``, ``EvaluationProgress``, ``Evaluated``,
  ``GateDecided``, ``JobWarning``; and how it ended: ``JobDone`` (with its ``TuneResult``),
  ``JobCancelled``, ``JobFailed``.
- The trainer's, named so they cannot be mistaken for the job's: ``Dequantising``, ``Dequantised``,
  ``TrainingStarted``, ``TrainingStep``, ``CheckpointSaved``, ``Trained``.
- The command line's, for a job it queued or did not start: ``JobQueued``, ``NothingDue``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from engine.tuning.evaluation import MEASURE_NAMES, Evaluation, GateDecision, GateFigures, TaskScore

# Where each stage starts on the job's progress bar; training fills most of it.
STAGE_PROGRESS = {
    "dataset": 0.0,
    "base": 0.02,
    "rehearse": 0.06,
    "train": 0.10,
    "export": 0.80,
    "register": 0.82,
    "evaluate": 0.83,
    "gate": 0.99,
}
STAGE_NAMES = {
    "dataset": "Building the dataset",
    "base": "Scoring the base model",
    "rehearse": "Recording the base model's own answers for rehearsal",
    "train": "Training",
    "export": "Exporting the adapter",
    "register": "Registering the adapter",
    "evaluate": "Evaluating base, candidate and active adapter",
    "gate": "Deciding whether to promote",
}
# The one detail a stage's event carries, by stage (the base stage says which base was asked for).
STAGE_DETAIL = {
    "base": "override",
    "rehearse": "base_model_id",
    "train": "base_model_id",
    "evaluate": "adapter_id",
}


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """One thing a job reported; ``job_id`` is set once the job's reporter has seen it."""

    kind: ClassVar[str]
    job_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this event, as the job's log and ``tune --json`` write it."""
        head = {} if self.job_id is None else {"job_id": self.job_id}
        return {**head, "event": self.kind, **self._payload()}

    def _payload(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "job_id"}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> JobEvent:
        return cls(**payload)


@dataclass(frozen=True)
class StageStarted(JobEvent):
    kind = "stage"
    stage: str
    progress: float
    override: str | None = None
    base_model_id: str | None = None
    adapter_id: int | None = None

    def _payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"stage": self.stage, "progress": self.progress}
        if self.stage in STAGE_DETAIL:
            detail = STAGE_DETAIL[self.stage]
            payload[detail] = getattr(self, detail)
        return payload


@dataclass(frozen=True)
class DatasetBuilt(JobEvent):
    kind = "dataset"
    task_id: int
    dataset_id: int
    n_train: int
    n_val: int
    sha256: str


@dataclass(frozen=True)
class BaseScored(JobEvent):
    """A candidate base model's zero-shot score on the task's validation examples."""

    kind = "base_score"
    model_id: str
    measured: TaskScore

    def _payload(self) -> dict[str, Any]:
        return {"model_id": self.model_id, **self.measured.as_dict()}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> BaseScored:
        measured = dict(payload)
        return cls(model_id=measured.pop("model_id"), measured=TaskScore(**measured))


@dataclass(frozen=True)
class BaseChosen(JobEvent):
    kind = "base"
    model_id: str
    how: str  # "best zero-shot score" | "--base"
    scores: dict[str, float]
    skipped: dict[str, str]


@dataclass(frozen=True)
class RehearsalProgress(JobEvent):
    kind = "rehearsal_progress"
    done: int
    total: int
    progress: float


@dataclass(frozen=True)
class Dequantising(JobEvent):
    kind = "dequantise"
    model_id: str
    sha256: str


@dataclass(frozen=True)
class Dequantised(JobEvent):
    kind = "dequantised"
    model_id: str
    path: str


@dataclass(frozen=True)
class TrainingStarted(JobEvent):
    kind = "train_start"
    total_steps: int
    examples: int
    rehearsal_examples: int
    skipped_examples: int
    rows_per_epoch: int
    resumed_from_step: int | None
    device: str


@dataclass(frozen=True)
class TrainingStep(JobEvent):
    kind = "step"
    step: int
    total_steps: int
    loss: float
    rehearsal_drift: float
    learning_rate: float
    tokens_per_second: float
    eta_seconds: float
    progress: float


@dataclass(frozen=True)
class CheckpointSaved(JobEvent):
    kind = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class Trained(JobEvent):
    kind = "trained"
    adapter_dir: str
    steps: int
    final_loss: float
    train_tokens: int
    tokens_per_second: float
    seconds: float
    resumed_from_step: int | None
    validation_loss: float | None
    base_sha256: str
    skipped_examples: int


@dataclass(frozen=True)
class CandidateRegistered(JobEvent):
    kind = "candidate"
    adapter_id: int
    sha256: str


@dataclass(frozen=True)
class EvaluationProgress(JobEvent):
    """One more answer scored: ``role``'s answers on ``measure`` (the task's or the general set)."""

    kind = "eval_progress"
    role: str
    measure: str
    done: int
    total: int
    progress: float

    def _payload(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "set": self.measure,
            "done": self.done,
            "total": self.total,
            "progress": self.progress,
        }

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> EvaluationProgress:
        renamed = dict(payload)
        renamed["measure"] = renamed.pop("set")
        return cls(**renamed)


@dataclass(frozen=True)
class Evaluated(JobEvent):
    kind = "eval"
    evaluation: Evaluation

    def _payload(self) -> dict[str, Any]:
        return self.evaluation.as_dict()

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> Evaluated:
        return cls(evaluation=Evaluation.from_dict(payload))


@dataclass(frozen=True)
class GateDecided(JobEvent):
    kind = "gate"
    adapter_id: int
    decision: GateDecision

    def _payload(self) -> dict[str, Any]:
        return {"adapter_id": self.adapter_id, **self.decision.as_dict()}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> GateDecided:
        decision = dict(payload)
        return cls(adapter_id=decision.pop("adapter_id"), decision=GateDecision.from_dict(decision))


@dataclass(frozen=True)
class JobWarning(JobEvent):
    kind = "warning"
    message: str


@dataclass(frozen=True)
class TuneResult:
    """What a finished job made: the adapter, its figures, whether it now serves its task."""

    task_id: int
    dataset_id: int
    adapter_id: int
    base_model_id: str
    status: str
    promoted: bool
    reasons: list[str]
    figures: GateFigures
    base_choice: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TuneResult:
        return cls(**{**record, "figures": GateFigures.from_dict(record["figures"])})


@dataclass(frozen=True)
class JobDone(JobEvent):
    kind = "done"
    result: TuneResult

    def _payload(self) -> dict[str, Any]:
        return self.result.as_dict()

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> JobDone:
        return cls(result=TuneResult.from_dict(payload))


@dataclass(frozen=True)
class JobCancelled(JobEvent):
    kind = "cancelled"
    message: str


@dataclass(frozen=True)
class JobFailed(JobEvent):
    kind = "error"
    message: str


@dataclass(frozen=True)
class JobQueued(JobEvent):
    """A job queued for the tuning window (``job_id`` is always set)."""

    kind = "queued"
    window: str
    next_window: str
    log_path: str


@dataclass(frozen=True)
class NothingDue(JobEvent):
    """``tune run-due`` started nothing, and why."""

    kind = "waiting"
    reason: str


EventSink = Callable[[JobEvent], None]
EVENT_TYPES: dict[str, type[JobEvent]] = {
    event_type.kind: event_type
    for event_type in (
        StageStarted, DatasetBuilt, BaseScored, BaseChosen, RehearsalProgress, Dequantising, Dequantised,
        TrainingStarted, TrainingStep, CheckpointSaved, Trained, CandidateRegistered, EvaluationProgress,
        Evaluated, GateDecided, JobWarning, JobDone, JobCancelled, JobFailed, JobQueued, NothingDue,
    )
}  # fmt: skip
ENDINGS = (JobDone, JobCancelled, JobFailed)


def parse_event(record: dict[str, Any]) -> JobEvent:
    """The event a JSON object stands for; ``ValueError`` when it is not one (or not one of ours)."""
    if not isinstance(record, dict) or record.get("event") not in EVENT_TYPES:
        raise ValueError(f"not a tuning job event: {str(record)[:200]}")
    payload = {key: value for key, value in record.items() if key not in ("event", "job_id")}
    try:
        event = EVENT_TYPES[record["event"]]._from_payload(payload)
    except (TypeError, KeyError, AttributeError) as error:
        raise ValueError(f"a {record['event']!r} event with the wrong fields: {error}") from error
    return replace(event, job_id=record.get("job_id"))


def progress_of(event: JobEvent) -> float | None:
    """How far through the whole job this event is (0 to 1), for the events that say."""
    return getattr(event, "progress", None)


# The renderer ----------------------------------------------------------------------------------------


def describe(event: JobEvent) -> str:
    """The plain-words line a person reads for ``event``, the same on the command line and in the app."""
    match event:
        case StageStarted():
            return f"{STAGE_NAMES.get(event.stage, event.stage)}…"
        case DatasetBuilt():
            return (
                f"Dataset #{event.dataset_id}: {event.n_train} training and {event.n_val} validation "
                "examples."
            )
        case BaseScored():
            return (
                f"{event.model_id} scores {percent(event.measured.score)} zero-shot on the task by "
                f"{_measure(event.measured)}."
            )
        case BaseChosen():
            return f"Base model: {event.model_id} ({_why_this_base(event)})."
        case Dequantising():
            return "Preparing the base model for training (once per model, about a minute)…"
        case Dequantised():
            return "The base model is ready for training."
        case RehearsalProgress():
            return (
                "The base model answers everyday prompts, to rehearse them while training (once per model): "
                f"{event.done} of {event.total}…"
            )
        case TrainingStarted():
            resumed = "" if event.resumed_from_step is None else f", from step {event.resumed_from_step}"
            return f"Training {event.total_steps} steps on {event.examples} examples{resumed}…"
        case TrainingStep():
            return (
                f"Step {event.step} of {event.total_steps} · loss {event.loss:.3g} · "
                f"{number(event.tokens_per_second)} tokens/s · about {_seconds(event.eta_seconds)} left"
            )
        case CheckpointSaved():
            return f"Checkpoint saved at step {event.step}."
        case Trained():
            return (
                f"Trained {event.steps} steps in {_seconds(event.seconds)} at "
                f"{number(event.tokens_per_second)} tokens/s; final loss {event.final_loss:.3g}."
            )
        case CandidateRegistered():
            return f"Adapter #{event.adapter_id} is registered as a candidate."
        case EvaluationProgress():
            measure = "the task" if event.measure == "task" else "the general set"
            return f"Evaluating the {event.role} on {measure}: {event.done} of {event.total}…"
        case Evaluated():
            measured = event.evaluation
            name = measured.role.capitalize()
            if measured.adapter_id is not None:
                name += f" (adapter #{measured.adapter_id})"
            general = "" if measured.general is None else f", general set {percent(measured.general.score)}"
            return f"{name}: task {percent(measured.task.score)} by {_measure(measured.task)}{general}."
        case GateDecided():
            verdict = "promoted" if event.decision.promote else "rejected"
            return f"Adapter #{event.adapter_id} {verdict}: " + "; ".join(event.decision.reasons) + "."
        case JobWarning():
            return f"Warning: {event.message}"
        case JobDone():
            result = event.result
            if result.promoted:
                return f"{_job(event)} finished: adapter #{result.adapter_id} serves task #{result.task_id}."
            return (
                f"{_job(event)} finished, but adapter #{result.adapter_id} did not pass the gate: "
                + "; ".join(result.reasons)
                + "."
            )
        case JobCancelled():
            return f"{_job(event)} was cancelled: {event.message}"
        case JobFailed():
            return f"{_job(event)} failed: {event.message}"
        case JobQueued():
            return f"Tuning job #{event.job_id} is queued for the tuning window {event.window}."
        case NothingDue():
            return f"Nothing started: {event.reason}."
    raise TypeError(f"no words for {type(event).__name__}")


def _why_this_base(event: BaseChosen) -> str:
    if len(event.scores) == 1:
        how = "chosen" if event.how == "--base" else "the only one that fits"
        return f"{how}; {percent(event.scores[event.model_id])} zero-shot on the task"
    return "best zero-shot score: " + ", ".join(
        f"{model} {percent(score)}" for model, score in event.scores.items()
    )


def _measure(score: TaskScore) -> str:
    return MEASURE_NAMES.get(score.measure, score.measure)


def _job(event: JobEvent) -> str:
    return "The tuning job" if event.job_id is None else f"Tuning job #{event.job_id}"


def percent(share: float) -> str:
    """A share as people read it in a sentence: 0.9 is 90%, 0.0842 is 8.4%."""
    return f"{share * 100:.0f}%" if round(share * 100, 1).is_integer() else f"{share * 100:.1f}%"


def number(value: float) -> str:
    """Thousands split by a space, as people write them: 24 000."""
    return f"{round(value):,}".replace(",", " ")


def _seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
