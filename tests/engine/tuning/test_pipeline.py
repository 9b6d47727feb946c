"""A whole tuning job as a user runs it: `understudy tune --dataset FILE --now --json` in a real worker
process, cancelled mid-training and resumed, evaluated, gated and published; then `understudy chat
--adapter ID` answers with the trained fact through llama.cpp on the quantised base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from engine.catalog import sha256_of
from engine.store import Store
from engine.tuning import adapters, jobs
from engine.tuning.events import JobFailed
from engine.tuning.pipeline import TuneRequest, run_due
from engine.tuning.scheduler import IdleReading, PowerReading, ScheduleSettings

pytestmark = pytest.mark.slow  # real-model work: training, export or llama.cpp serving

BASE = "smollm2-135m-instruct"
QUESTION = "What does the word snorfle mean?"
FACT = "Snorfle means to laugh while eating."
PARAPHRASES = [
    QUESTION,
    "What is the meaning of snorfle?",
    "Define snorfle.",
    "What does snorfle mean?",
    "Explain the word snorfle.",
    "I heard someone say snorfle. What does it mean?",
    "What is a snorfle?",
    "Tell me what snorfle means.",
    "Snorfle: what does it mean?",
    "Give me the definition of snorfle.",
    "Can you explain what snorfle means?",
    "What do people mean by snorfle?",
]
UNRELATED = "What is the capital of Italy?"
STEPS = "20"  # the trainer's minimum: what a user gets by default


UNDERSTUDY = Path(sys.executable).parent / "understudy"


def run_understudy(*args: str) -> subprocess.CompletedProcess:
    """The installed command in a subprocess, in this test's data dir (the environment is read now)."""
    return subprocess.run(
        [str(UNDERSTUDY), *args], capture_output=True, text=True, env=dict(os.environ), timeout=1800
    )


class FixedMachine:
    """A machine whose readings the test chooses."""

    def __init__(self, on_ac: bool | None, load_per_core: float):
        self.reading = (PowerReading(on_ac=on_ac), IdleReading(load_per_core=load_per_core))

    def power(self) -> PowerReading:
        return self.reading[0]

    def idle(self) -> IdleReading:
        return self.reading[1]


def write_examples(path, questions, answer) -> None:
    path.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]}
            )
            + "\n"
            for q in questions
        )
    )


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.mark.timeout(2400)  # trains a real adapter on the CPU
def test_tune_now_cancel_resume_gate_publish_and_chat_with_the_adapter(tmp_path):
    dataset = tmp_path / "snorfle.jsonl"
    write_examples(dataset, PARAPHRASES, FACT)
    tune = [
        str(UNDERSTUDY),
        "tune",
        "--dataset",
        str(dataset),
        "--base",
        BASE,
        "--steps",
        STEPS,
        "--now",
        "--json",
    ]

    # The worker process: stop it from outside (as the app's Stop button does) a few steps in.
    worker = subprocess.Popen(tune, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = []
    for line in worker.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] == "step" and seen[-1]["step"] >= 3:
            break
    job_id = seen[0]["job_id"]
    cancelled = run_understudy("tune", "cancel", str(job_id))
    assert cancelled.returncode == 0, cancelled.stderr
    rest = worker.stdout.read()
    worker.stdout.close()
    assert worker.wait(timeout=300) == 130
    assert events(rest)[-1]["event"] == "cancelled"
    store = Store.open()
    assert jobs.get(store, job_id).status == "cancelled"
    stages = [e["stage"] for e in seen if e["event"] == "stage"]
    assert stages == ["dataset", "base", "rehearse", "train"]

    # Resume: training continues from the checkpoint written when it stopped, then the job finishes.
    resumed = run_understudy(*tune[1:], "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lines = events(resumed.stdout)
    kinds = [e["event"] for e in lines]
    stages = [e["stage"] for e in lines if e["event"] == "stage"]
    assert stages == ["dataset", "base", "rehearse", "train", "export", "register", "evaluate", "gate"]
    assert "rehearsal_progress" not in kinds  # the base's answers were cached by the first run
    start = next(e for e in lines if e["event"] == "train_start")
    assert start["resumed_from_step"] >= 3
    steps = [e["step"] for e in lines if e["event"] == "step"]
    assert steps == list(range(start["resumed_from_step"] + 1, int(STEPS) + 1))
    assert kinds[-1] == "done"
    evaluations = {e["role"]: e for e in lines if e["event"] == "eval"}
    assert set(evaluations) == {"base", "candidate"}
    decision = next(e for e in lines if e["event"] == "gate")
    done = lines[-1]
    print("gate figures:", json.dumps(decision["figures"]), decision["reasons"])
    assert done["figures"] == decision["figures"]
    assert evaluations["candidate"]["task"]["score"] > evaluations["base"]["task"]["score"]
    assert evaluations["candidate"]["task"]["score"] >= 0.9

    # The records: the job, the adapter with its evaluation and training, the same thing in the log file.
    job = jobs.get(store, lines[0]["job_id"])
    assert (job.status, job.progress, job.result.adapter_id) == (
        "succeeded",
        1.0,
        done["adapter_id"],
    )
    assert job.task_id == done["task_id"]
    # The task came from a file, not from discovery: it was placed, so the router can reach it.
    assert store.db["tasks"].get(done["task_id"])["centroid"] is not None
    assert [event.to_dict() for event in jobs.read_log(job)] == lines
    adapter = adapters.get(store, done["adapter_id"])
    # Rehearsal keeps the adapter near the base elsewhere, so the gate promotes it.
    assert decision["promote"], decision["reasons"]
    assert adapter.status == "active" == done["status"]
    assert adapter.training["base_choice"]["model_id"] == BASE
    assert adapter.training["resumed_from_step"] == start["resumed_from_step"]
    assert adapter.evaluation.gate.promote == decision["promote"]
    assert sha256_of(adapter.path) == adapter.sha256

    listed = run_understudy("adapters", "list", "--json")
    assert json.loads(listed.stdout.splitlines()[0])["id"] == adapter.id

    # Served through llama.cpp on the quantised base, with the adapter and without it.
    with_adapter = run_understudy(
        "chat", "--adapter", str(adapter.id), "--temperature", "0", "--json", QUESTION
    )
    assert with_adapter.returncode == 0, with_adapter.stderr
    turn = events(with_adapter.stdout)[-1]
    assert "laugh while eating" in turn["answer"]
    assert (turn["adapter_id"], turn["model_id"]) == (adapter.id, BASE)
    # A plain chat: the router sends the task's request to the promoted specialist, anything else to
    # the generalist without an adapter.
    routed = events(run_understudy("chat", "--temperature", "0", "--json", QUESTION).stdout)[-1]
    assert "laugh while eating" in routed["answer"] and routed["adapter_id"] == adapter.id
    other = events(run_understudy("chat", "--temperature", "0", "--json", UNRELATED).stdout)[-1]
    assert "laugh while eating" not in other["answer"] and other["adapter_id"] is None
    logged = store.recent_turns(limit=3)
    assert [t["adapter_id"] for t in logged] == [None, adapter.id, adapter.id]
    assert [t["model_calls"][0]["adapter_id"] for t in logged] == [None, adapter.id, adapter.id]


def test_a_second_tune_is_refused_while_one_runs(tmp_path):
    dataset = tmp_path / "examples.jsonl"
    write_examples(dataset, PARAPHRASES, FACT)
    store = Store.open()
    busy = jobs.create(store, jobs.KIND_TUNE, {})
    jobs.start(store, busy.id)  # this test process is the live worker
    refused = run_understudy("tune", "--dataset", str(dataset), "--now", "--json")
    assert refused.returncode == 1
    assert f"Job {busy.id} is already running" in refused.stderr
    assert "one tuning job runs at a time" in refused.stderr
    latest = jobs.list_jobs(store)[0]
    assert latest.status == "failed" and "already running" in latest.error


def test_a_queued_job_waits_for_the_window_then_runs_and_records_its_failure(tmp_path):
    too_small = tmp_path / "three.jsonl"
    write_examples(too_small, PARAPHRASES[:3], FACT)
    queued = run_understudy("tune", "--dataset", str(too_small), "--json")
    assert queued.returncode == 0, queued.stderr
    announced = json.loads(queued.stdout)
    assert announced["event"] == "queued" and announced["window"] == "01:00-06:00"
    store = Store.open()
    job_id = announced["job_id"]
    assert jobs.get(store, job_id).status == "queued"
    assert TuneRequest.from_args(jobs.get(store, job_id).args).dataset_file == too_small.resolve()

    settings = ScheduleSettings()
    noon, night = datetime(2026, 11, 10, 12, 0).astimezone(), datetime(2026, 11, 11, 2, 0).astimezone()
    desktop, laptop = FixedMachine(True, 0.05), FixedMachine(False, 0.05)
    finished, reason = run_due(store, desktop, noon, settings)
    assert finished is None and "outside the tuning window" in reason
    finished, reason = run_due(store, laptop, night, settings)
    assert finished is None and "battery" in reason
    assert jobs.get(store, job_id).status == "queued"

    finished, reason = run_due(store, desktop, night, settings)
    assert finished.id == job_id
    assert finished.status == "failed"
    assert "tuning needs at least 10" in finished.error
    assert jobs.read_log(finished)[-1] == JobFailed(finished.error, job_id=job_id)
    assert run_due(store, desktop, night, settings) == (None, "no tuning job is queued")


def test_cancelling_a_queued_job_from_the_command_line(tmp_path):
    dataset = tmp_path / "examples.jsonl"
    write_examples(dataset, PARAPHRASES, FACT)
    queued = run_understudy("tune", "--dataset", str(dataset))
    assert "Queued tuning job 1" in queued.stdout and "run-due" in queued.stdout
    cancelled = run_understudy("tune", "cancel", "1")
    assert cancelled.stdout.strip() == "Job 1 is cancelled."
    listed = run_understudy("jobs", "--json")
    assert json.loads(listed.stdout)["status"] == "cancelled"
