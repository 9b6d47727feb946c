"""Where tuning stands, as the Tuning section shows it: tasks with their datasets, adapters and jobs, the
speed measured here, how long a job takes in words, and a job's training read back from its log."""

from __future__ import annotations

import json

import pytest
from tuning_records import gated, tune_result

from engine import catalog
from engine.bench.swap import write_random_adapter
from engine.store import Store, utc_now
from engine.tuning import adapters, jobs
from engine.tuning.datasets import build_from_jsonl, named_task
from engine.tuning.events import StageStarted, TrainingStep
from engine.tuning.overview import (
    DEFAULT_TOKENS_PER_SECOND,
    TaskOverview,
    TrainingSpeed,
    how_long,
    read_overview,
    training_history,
)
from engine.tuning.scheduler import ScheduleSettings

BASE = "smollm2-135m-instruct"
FACT = "Snorfle means to laugh while eating."


@pytest.fixture
def store(understudy_home):
    store = Store.open()
    yield store
    store.close()


def test_the_statement_of_how_long_names_its_figures():
    task = TaskOverview(
        id=4,
        label="snorfle",
        source="dataset",
        requests=0,
        train_tokens=24_000,
        tokens_from="from its dataset",
    )
    speed = TrainingSpeed(160.0, "measured in job #7", True)
    assert how_long(task, speed) == (
        "About 3 minutes of training on this machine (160 tokens/s, measured in job #7; about 24 000 tokens, "
        "from its dataset). Scoring the base and evaluating the new adapter add a few minutes."
    )
    nothing = TaskOverview(id=5, label="empty", source="named", requests=0)
    assert how_long(nothing, speed).startswith("Task #5 has nothing to train on yet")


def test_the_overview_reads_tasks_adapters_jobs_and_the_speed(store, model_catalog, tmp_path):
    examples = tmp_path / "snorfle_facts.jsonl"
    examples.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"Question {n}?"}, {"role": "assistant",
                                                                                   "content": FACT}]})
            + "\n"
            for n in range(12)
        )
    )  # fmt: skip
    from_file = named_task(store, "snorfle facts", source="dataset")
    build_from_jsonl(store, examples, task_id=from_file)
    from_log = named_task(store, "recipes")
    with store.transaction():
        conversation = store.insert("conversations", {"title": "x", "created_utc": utc_now()})
        for _ in range(3):
            store.insert(
                "turns",
                {"conversation_id": conversation, "created_utc": utc_now(), "user_text": "a" * 80,
                 "answer_text": "b" * 120, "model_id": BASE, "cluster_id": from_log, "status": "ok"},
            )  # fmt: skip
    weights = catalog.locate(model_catalog.get(BASE))
    adapter = adapters.register_candidate(
        store, write_random_adapter(weights, tmp_path / "adapter.gguf"), BASE, from_file
    )
    adapters.record_evaluation(store, adapter.id, gated(True))
    adapters.promote(store, adapter.id)
    finished = jobs.create(store, jobs.KIND_TUNE, {"task": from_file}, task_id=from_file)
    jobs.start(store, finished.id)
    jobs.finish(store, finished.id, "succeeded", result=tune_result(adapter.id, task_id=from_file))
    queued = jobs.create(store, jobs.KIND_TUNE, {"task": from_log}, task_id=from_log)

    overview = read_overview(store)
    shown = overview.task(from_file)
    assert (shown.label, shown.source, shown.n_train, shown.n_val) == ("snorfle facts", "dataset", 10, 2)
    assert shown.dataset_file == str(examples.resolve())
    assert (shown.active_adapter_id, shown.active_score) == (adapter.id, 0.9)
    assert shown.last_job.id == finished.id and shown.tokens_from == "from its dataset"
    recipes = overview.task(from_log)
    assert (recipes.requests, recipes.active_adapter_id, recipes.last_job.id) == (3, None, queued.id)
    assert recipes.tokens_from == "estimated from its requests in the log" and recipes.train_tokens > 0
    assert [listed.id for listed in overview.adapters[from_file]] == [adapter.id]
    assert [job.id for job in overview.jobs] == [queued.id, finished.id]
    assert overview.queued == 1 and overview.running_job() is None
    # The finished job's result has no training record, so nothing here was measured yet.
    assert overview.speed == TrainingSpeed(DEFAULT_TOKENS_PER_SECOND, overview.speed.source, False)
    assert (overview.schedule, overview.schedule_problem) == (ScheduleSettings(), None)


def test_a_broken_schedule_file_is_reported_and_the_defaults_apply(store, understudy_home):
    understudy_home.mkdir(parents=True, exist_ok=True)
    (understudy_home / "tuning.json").write_text("{not json")
    overview = read_overview(store)
    assert overview.schedule == ScheduleSettings()
    assert "tuning.json" in overview.schedule_problem and "JSON" in overview.schedule_problem


def test_a_jobs_training_is_read_back_from_its_log(store):
    job = jobs.create(store, jobs.KIND_TUNE, {})
    assert training_history(job).summary() == ""
    log = jobs.JobLog(job.log_path)
    log.write(StageStarted("train", 0.1, base_model_id=BASE, job_id=job.id))
    for step, loss in ((1, 3.1449), (2, 2.5)):
        log.write(TrainingStep(step, 20, loss, 0.0, 1e-3, 182.4, 60.0, 0.1 + step * 0.035, job_id=job.id))
    log.close()
    history = training_history(job)
    assert history.loss_points == [(1, 3.1449), (2, 2.5)]
    assert history.summary() == "Trained 2 of 20 steps at 182 tokens/s; last loss 2.5."
