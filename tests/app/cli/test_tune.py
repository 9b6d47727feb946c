"""`understudy adapters`, `jobs` and `tune` (schedule, run-due, usage): the registry and the queue from
the command line. The whole tuning job runs in tests/engine/test_tuning_pipeline.py."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
from click.testing import CliRunner
from tuning_records import FIGURES, gated, tune_result

from app.main import cli
from engine import catalog
from engine.bench.swap import write_random_adapter
from engine.store import Store
from engine.tuning import adapters, jobs
from engine.tuning.datasets import named_task
from engine.tuning.scheduler import load_schedule

BASE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def adapter_file(tmp_path_factory):
    weights = catalog.locate(catalog.load_catalog(user=catalog.shipped_catalog_path()).get(BASE))
    return write_random_adapter(weights, tmp_path_factory.mktemp("adapters") / "adapter.gguf")


def understudy(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def registered(adapter_file, understudy_home):
    """Task 1 with two candidates: one the gate passed, one it turned down."""
    store = Store.open()
    task_id = named_task(store, "invoices")
    passed = adapters.register_candidate(store, adapter_file, BASE, task_id)
    adapters.record_evaluation(store, passed.id, gated(True))
    turned_down = adapters.register_candidate(store, adapter_file, BASE, task_id)
    adapters.record_evaluation(store, turned_down.id, gated(False, ["general: broken"]))
    adapters.reject(store, turned_down.id)
    yield store, task_id, passed, turned_down
    store.close()


def test_adapters_are_listed_newest_first_with_their_figures(registered):
    _store, task_id, passed, turned_down = registered
    records = [json.loads(line) for line in understudy("adapters", "list", "--json").output.splitlines()]
    assert [r["id"] for r in records] == [turned_down.id, passed.id]
    assert records[1]["status"] == "candidate" and records[1]["figures"] == asdict(FIGURES)
    assert records[1]["evaluation"] == gated(True).as_dict()
    assert records[0]["base_model_id"] == BASE and records[0]["task_id"] == task_id
    lines = understudy("adapters", "list").output.splitlines()
    assert lines[0].startswith(f"#{turned_down.id}") and "rejected" in lines[0]
    assert "task (similarity) 20% → 90% · general 97% → 94%" in lines[1]


def test_adapters_list_names_the_measure_the_task_was_scored_by(adapter_file):
    store = Store.open()
    exact = replace(FIGURES, task=replace(FIGURES.task, base=0.0, candidate=0.69, measure="exact"))
    adapter = adapters.register_candidate(store, adapter_file, BASE, named_task(store, "isodate"))
    adapters.record_evaluation(store, adapter.id, gated(True, figures=exact))
    store.close()
    assert "task (exact match) 0% → 69% · general" in understudy("adapters", "list").output
    record = json.loads(understudy("adapters", "list", "--json").output)
    assert (record["measure"], record["figures"]["task"]["measure"]) == ("exact match", "exact")


def test_promote_needs_the_gate_unless_forced_and_rollback_goes_back(registered):
    store, task_id, passed, turned_down = registered
    assert (
        f"Adapter {passed.id} now serves task {task_id}"
        in understudy("adapters", "promote", str(passed.id)).output
    )
    refused = understudy("adapters", "promote", str(turned_down.id), code=1)
    assert "did not pass the evaluation gate (general: broken); add --force" in refused.output
    understudy("adapters", "promote", str(turned_down.id), "--force")
    assert adapters.active_for_task(store, task_id).id == turned_down.id
    assert f"back on adapter {passed.id}" in understudy("adapters", "rollback", str(task_id)).output
    assert "back on its base model" in understudy("adapters", "rollback", str(task_id)).output
    assert "no active adapter" in understudy("adapters", "rollback", str(task_id), code=1).output


def test_tune_needs_a_task_or_a_dataset():
    assert "--task ID (or name) or --dataset FILE" in understudy("tune", code=2).output


def test_the_schedule_is_shown_and_changed():
    assert "window 01:00-06:00 · waits for idle · waits for AC power" in understudy("tune", "schedule").output
    changed = understudy("tune", "schedule", "--window", "22:30-02:00", "--any-power").output
    assert "window 22:30-02:00 · waits for idle · any power" in changed
    assert (load_schedule().window_start, load_schedule().require_ac_power) == ("22:30", False)
    assert "HH:MM" in understudy("tune", "schedule", "--window", "25:00-02:00", code=1).output


def test_run_due_with_nothing_queued_says_so():
    assert understudy("tune", "run-due").output.strip() == "Nothing started: no tuning job is queued."
    assert json.loads(understudy("tune", "--scheduled", "--json").output) == {
        "event": "waiting",
        "reason": "no tuning job is queued",
    }


def test_jobs_lists_status_and_outcome(understudy_home):
    store = Store.open()
    job = jobs.create(store, jobs.KIND_TUNE, {"task": "invoices", "dataset_file": None})
    jobs.start(store, job.id)
    jobs.finish(store, job.id, "succeeded", result=tune_result(adapter_id=4, status="active"))
    [line] = understudy("jobs").output.splitlines()
    assert line.startswith(f"#{job.id}") and "succeeded" in line
    assert line.endswith("task invoices  adapter #4 active")
    listed = json.loads(understudy("jobs", "--json").output)
    assert listed["result"] == tune_result(adapter_id=4, status="active").as_dict()
    assert list(listed) == [
        "id", "kind", "task_id", "status", "progress", "pid", "created_utc", "started_utc", "finished_utc",
        "log_path", "error", "args", "result",
    ]  # fmt: skip
