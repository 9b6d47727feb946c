"""Job events: every kind reads back from its JSON line and writes the very same line (scripts and the
app read them), and the renderer's words for each, which the command line and the app both show."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.tuning.events import (
    EVENT_TYPES,
    BaseChosen,
    Evaluated,
    JobDone,
    JobEvent,
    TrainingStep,
    describe,
    parse_event,
    percent,
)

RECORDED_JOB = Path(__file__).resolve().parents[2] / "support" / "recorded_tuning_job.jsonl"
MISTAKE = {
    "prompt": "Define snorfle.",
    "expected": "Snorfle means to laugh while eating.",
    "answer": "A bird.",
}
TASK_SCORE = {
    "examples": 2, "score": 0.1964, "exact_match": 0.0, "measure": "similarity", "json_examples": 0,
    "json_valid": None,
    "field_match": None, "similarity": 0.1964, "seconds": 0.4738, "mistakes": [MISTAKE],
}  # fmt: skip
GENERAL_SCORE = {"items": 47, "passed": 44, "score": 0.9362, "seconds": 12.5, "failed_prompts": ["2 + 2?"]}
FIGURES = {
    "task": {"base": 0.1964, "candidate": 1.0, "active": None, "examples": 2, "measure": "similarity"},
    "general": {"base": 0.9787, "candidate": 0.9362, "tolerance": 0.1, "items": 47},
}
REASONS = [
    "task (similarity): 100.0% beats the base's 19.6%",
    "general: 93.6% is within 10 points of the base's 97.9%",
]

# One line of each kind, as the job's log and `understudy tune --json` write it, with the renderer's words.
LINES = [
    (
        {"job_id": 3, "event": "stage", "stage": "dataset", "progress": 0.0},
        "Building the dataset…",
    ),
    (
        {"job_id": 3, "event": "stage", "stage": "base", "progress": 0.02, "override": None},
        "Scoring the base model…",
    ),
    (
        {"job_id": 3, "event": "stage", "stage": "train", "progress": 0.1, "base_model_id": "smollm2"},
        "Training…",
    ),
    (
        {"job_id": 3, "event": "stage", "stage": "evaluate", "progress": 0.83, "adapter_id": 4},
        "Evaluating base, candidate and active adapter…",
    ),
    (
        {"job_id": 3, "event": "dataset", "task_id": 1, "dataset_id": 2, "n_train": 10, "n_val": 2,
         "sha256": "4b5"},
        "Dataset #2: 10 training and 2 validation examples.",
    ),
    (
        {"job_id": 3, "event": "base_score", "model_id": "smollm2", **TASK_SCORE},
        "smollm2 scores 19.6% zero-shot on the task by similarity.",
    ),
    (
        {"job_id": 3, "event": "base", "model_id": "smollm2", "how": "--base", "scores": {"smollm2": 0.1964},
         "skipped": {}},
        "Base model: smollm2 (chosen; 19.6% zero-shot on the task).",
    ),
    (
        {"job_id": 3, "event": "rehearsal_progress", "done": 16, "total": 64, "progress": 0.07},
        "The base model answers everyday prompts, to rehearse them while training (once per model): "
        "16 of 64…",
    ),
    (
        {"job_id": 3, "event": "dequantise", "model_id": "smollm2", "sha256": "abc"},
        "Preparing the base model for training (once per model, about a minute)…",
    ),
    (
        {"job_id": 3, "event": "dequantised", "model_id": "smollm2", "path": "/cache/bases/abc"},
        "The base model is ready for training.",
    ),
    (
        {"job_id": 3, "event": "train_start", "total_steps": 20, "examples": 10, "rehearsal_examples": 64,
         "skipped_examples": 0, "rows_per_epoch": 1, "resumed_from_step": 3, "device": "cpu"},
        "Training 20 steps on 10 examples, from step 3…",
    ),
    (
        {"job_id": 3, "event": "step", "step": 4, "total_steps": 20, "loss": 2.3456,
         "rehearsal_drift": 0.00012, "learning_rate": 0.0009755282581475768, "tokens_per_second": 1234.5,
         "eta_seconds": 95.2, "progress": 0.24},
        "Step 4 of 20 · loss 2.35 · 1 234 tokens/s · about 2 min left",
    ),
    (
        {"job_id": 3, "event": "checkpoint", "step": 10, "path": "/data/training/x/checkpoints/step-000010"},
        "Checkpoint saved at step 10.",
    ),
    (
        {"job_id": 3, "event": "trained", "adapter_dir": "/data/training/x/adapter", "steps": 20,
         "final_loss": 0.0123, "train_tokens": 27950, "tokens_per_second": 190.4, "seconds": 146.8,
         "resumed_from_step": None, "validation_loss": 0.02, "base_sha256": "abc", "skipped_examples": 0},
        "Trained 20 steps in 2 min at 190 tokens/s; final loss 0.0123.",
    ),
    (
        {"job_id": 3, "event": "candidate", "adapter_id": 4, "sha256": "def"},
        "Adapter #4 is registered as a candidate.",
    ),
    (
        {"job_id": 3, "event": "eval_progress", "role": "candidate", "set": "general", "done": 12,
         "total": 47, "progress": 0.9},
        "Evaluating the candidate on the general set: 12 of 47…",
    ),
    (
        {"job_id": 3, "event": "eval", "role": "candidate", "model_id": "smollm2", "adapter_id": 4,
         "task": TASK_SCORE, "general": GENERAL_SCORE},
        "Candidate (adapter #4): task 19.6% by similarity, general set 93.6%.",
    ),
    (
        {"job_id": 3, "event": "eval", "role": "active", "model_id": "smollm2", "adapter_id": 2,
         "task": TASK_SCORE, "general": None},
        "Active (adapter #2): task 19.6% by similarity.",
    ),
    (
        {"job_id": 3, "event": "gate", "adapter_id": 4, "promote": True, "reasons": REASONS,
         "figures": FIGURES},
        "Adapter #4 promoted: task (similarity): 100.0% beats the base's 19.6%; general: 93.6% is within "
        "10 points of the base's 97.9%.",
    ),
    (
        {"job_id": 3, "event": "warning", "message": "the active adapter cannot be measured: gone"},
        "Warning: the active adapter cannot be measured: gone",
    ),
    (
        {"job_id": 3, "event": "done", "task_id": 1, "dataset_id": 2, "adapter_id": 4,
         "base_model_id": "smollm2", "status": "active", "promoted": True, "reasons": REASONS,
         "figures": FIGURES, "base_choice": {"model_id": "smollm2", "how": "--base",
         "scores": {"smollm2": 0.1964}, "skipped": {}},
         "training": {"steps": 20, "tokens_per_second": 190.4}},
        "Tuning job #3 finished: adapter #4 serves task #1.",
    ),
    (
        {"job_id": 3, "event": "cancelled", "message": "Training stopped at step 3 of 20."},
        "Tuning job #3 was cancelled: Training stopped at step 3 of 20.",
    ),
    (
        {"job_id": 3, "event": "error", "message": "tuning needs at least 10 examples"},
        "Tuning job #3 failed: tuning needs at least 10 examples",
    ),
    (
        {"job_id": 3, "event": "queued", "window": "01:00-06:00", "next_window": "2026-11-11T01:00+01:00",
         "log_path": "/data/jobs/3.log"},
        "Tuning job #3 is queued for the tuning window 01:00-06:00.",
    ),
    (
        {"event": "waiting", "reason": "no tuning job is queued"},
        "Nothing started: no tuning job is queued.",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("line", "words"), LINES, ids=[line["event"] for line, _ in LINES])
def test_each_kind_reads_back_from_its_json_line_and_writes_the_same_line(line, words):
    event = parse_event(json.loads(json.dumps(line)))
    assert type(event) is EVENT_TYPES[line["event"]]
    assert event.job_id == line.get("job_id")
    assert event.to_dict() == line
    assert list(event.to_dict()) == list(line)  # the keys in the same order, too
    assert describe(event) == words


def test_every_kind_has_a_line_here():
    assert {line["event"] for line, _ in LINES} == set(EVENT_TYPES)


def test_the_events_carry_typed_figures():
    done = parse_event(next(line for line, _ in LINES if line["event"] == "done"))
    assert isinstance(done, JobDone)
    assert (done.result.adapter_id, done.result.figures.task.candidate) == (4, 1.0)
    measured = parse_event(next(line for line, _ in LINES if line["event"] == "eval"))
    assert isinstance(measured, Evaluated)
    assert measured.evaluation.task.mistakes == [MISTAKE] and measured.evaluation.general.passed == 44


@pytest.mark.parametrize(
    "record",
    [
        {"event": "no_such_kind"},
        {"stage": "train"},
        ["stage"],
        {"event": "step", "step": 1},  # fields missing
        {"event": "checkpoint", "step": 1, "path": "x", "colour": "red"},  # a field it does not have
    ],
)
def test_what_is_not_an_event_is_refused(record):
    with pytest.raises(ValueError, match="event"):
        parse_event(record)


def test_a_base_chosen_among_several_names_each_score():
    chosen = BaseChosen("gemma3", "best zero-shot score", {"gemma3": 0.5, "smollm2": 0.1964}, {})
    assert describe(chosen) == "Base model: gemma3 (best zero-shot score: gemma3 50%, smollm2 19.6%)."
    alone = BaseChosen("smollm2", "best zero-shot score", {"smollm2": 0.25}, {"qwen": "not installed"})
    assert describe(alone) == "Base model: smollm2 (the only one that fits; 25% zero-shot on the task)."


def test_a_job_not_yet_known_is_the_tuning_job():
    done = parse_event(next(line for line, _ in LINES if line["event"] == "done"))
    rejected = JobDone(replace(done.result, promoted=False, status="rejected"))
    assert describe(rejected) == (
        "The tuning job finished, but adapter #4 did not pass the gate: " + "; ".join(REASONS) + "."
    )


def test_shares_read_as_people_write_them():
    assert [percent(share) for share in (0.9, 0.1964, 1.0, 0.0, 0.0842)] == [
        "90%",
        "19.6%",
        "100%",
        "0%",
        "8.4%",
    ]


def test_the_recorded_job_is_one_real_job_from_start_to_end():
    """The log the GUI tests replay: every line is an event, and together they are one whole job."""
    lines = [json.loads(line) for line in RECORDED_JOB.read_text(encoding="utf-8").splitlines()]
    events: list[JobEvent] = [parse_event(line) for line in lines]
    assert [event.to_dict() for event in events] == lines
    assert {event.job_id for event in events} == {1}
    stages = [line["stage"] for line in lines if line["event"] == "stage"]
    assert stages == ["dataset", "base", "rehearse", "train", "export", "register", "evaluate", "gate"]
    steps = [event.step for event in events if isinstance(event, TrainingStep)]
    assert steps == list(range(1, 21))
    assert isinstance(events[-1], JobDone) and events[-1].result.promoted
