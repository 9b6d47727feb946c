"""Jobs: queued → running → finished, one at a time, stale workers detected, cancelling real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from tuning_records import tune_result

from engine.errors import TuningError
from engine.store import Store
from engine.tuning import jobs
from engine.tuning.events import StageStarted, TrainingStep


@pytest.fixture
def store(understudy_home):
    store = Store.open()
    yield store
    store.close()


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def wait_until_zombie(pid: int) -> None:
    process = psutil.Process(pid)
    deadline = time.monotonic() + 30
    while process.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the killed process never died"
        time.sleep(0.01)


def test_a_job_is_queued_then_runs_then_finishes(store):
    job = jobs.create(store, jobs.KIND_TUNE, {"dataset": "x.jsonl"})
    assert job.status == "queued"
    assert job.log_path.as_posix().endswith(f"jobs/{job.id}.log")
    assert jobs.next_queued(store).id == job.id
    running = jobs.start(store, job.id)
    assert (running.status, running.pid) == ("running", os.getpid())
    jobs.set_progress(store, job.id, 0.5)
    assert jobs.get(store, job.id).progress == 0.5
    done = jobs.finish(store, job.id, "succeeded", result=tune_result(adapter_id=3))
    assert (done.status, done.progress, done.result) == ("succeeded", 1.0, tune_result(adapter_id=3))
    assert done.outcome == "adapter #3 active"
    assert done.finished_utc is not None
    assert jobs.next_queued(store) is None
    assert jobs.list_jobs(store)[0].as_dict()["result"] == tune_result(adapter_id=3).as_dict()


def test_a_second_job_is_refused_while_one_runs(store):
    first = jobs.create(store, jobs.KIND_TUNE, {})
    second = jobs.create(store, jobs.KIND_TUNE, {})
    jobs.start(store, first.id)
    with pytest.raises(
        TuningError, match=rf"Job {first.id} is already running .*one tuning job runs at a time"
    ):
        jobs.start(store, second.id)
    jobs.finish(store, first.id, "failed", error="boom")
    assert jobs.start(store, second.id).status == "running"


def test_a_running_job_whose_worker_was_killed_is_marked_failed_and_frees_the_slot(store):
    worker = sleeper()
    stale = jobs.create(store, jobs.KIND_TUNE, {})
    jobs.start(store, stale.id, pid=worker.pid)
    assert [job.id for job in jobs.running(store)] == [stale.id]
    worker.kill()  # not waited for: the dead worker stays a zombie, which counts as gone
    wait_until_zombie(worker.pid)
    assert not jobs.process_alive(worker.pid, jobs.get(store, stale.id).started_utc)
    next_job = jobs.create(store, jobs.KIND_TUNE, {})
    assert jobs.start(store, next_job.id).status == "running"
    failed = jobs.get(store, stale.id)
    assert failed.status == "failed"
    assert "ended without finishing" in failed.error
    worker.wait()


def test_a_pid_reused_by_a_newer_process_is_not_the_worker():
    long_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    assert jobs.process_alive(os.getpid(), datetime.now(UTC).isoformat())
    assert not jobs.process_alive(os.getpid(), long_ago)
    assert not jobs.process_alive(None, None)


def test_cancelling_a_queued_job_is_immediate(store):
    job = jobs.create(store, jobs.KIND_TUNE, {})
    assert jobs.cancel(store, job.id).status == "cancelled"
    with pytest.raises(TuningError, match="already cancelled"):
        jobs.cancel(store, job.id)


def test_cancelling_a_running_job_asks_its_worker_to_stop_and_the_worker_records_it(store):
    job = jobs.create(store, jobs.KIND_TUNE, {})
    # A worker that stops between steps when asked, as `understudy tune` does.
    worker_code = textwrap.dedent(
        f"""
        import signal, threading, time
        from engine.store import Store
        from engine.tuning import jobs
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        store = Store.open()
        jobs.start(store, {job.id})
        print("started", flush=True)
        while not stop.wait(0.05):
            pass
        jobs.finish(store, {job.id}, "cancelled", error="cancelled by the user")
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", worker_code], stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "started"
    assert jobs.get(store, job.id).pid == worker.pid
    jobs.cancel(store, job.id)
    assert worker.wait(timeout=60) == 0
    worker.stdout.close()
    assert jobs.get(store, job.id).status == "cancelled"


def test_cancelling_a_job_whose_worker_is_gone_marks_it_failed(store):
    worker = sleeper()
    job = jobs.create(store, jobs.KIND_TUNE, {})
    jobs.start(store, job.id, pid=worker.pid)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert jobs.cancel(store, job.id).status == "failed"


def test_the_log_holds_one_json_event_per_line(store):
    job = jobs.create(store, jobs.KIND_TUNE, {})
    log = jobs.JobLog(job.log_path)
    stage = StageStarted("dataset", 0.0, job_id=job.id)
    step = TrainingStep(1, 20, 2.5, 0.0, 1e-4, 180.0, 60.0, 0.135, job_id=job.id)
    log.write(stage)
    log.write(step)
    with open(job.log_path, "a") as handle:
        handle.write('{"event": "st')  # a line being written right now
    log.close()
    assert job.log_path.read_text().splitlines()[0] == (
        f'{{"job_id": {job.id}, "event": "stage", "stage": "dataset", "progress": 0.0}}'
    )
    assert jobs.read_log(job) == [stage, step]


def test_jobs_are_listed_newest_first(store):
    ids = [jobs.create(store, jobs.KIND_TUNE, {"n": n}).id for n in range(3)]
    assert [job.id for job in jobs.list_jobs(store)] == ids[::-1]
    with pytest.raises(TuningError, match="no job 999"):
        jobs.get(store, 999)
