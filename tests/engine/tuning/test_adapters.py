"""The adapter registry: registering copies and checks files, promotion and rollback keep exactly one
active adapter per task, and a publish killed at any moment never leaves a broken one active."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time

import pytest
from tuning_records import gated

from engine import catalog
from engine.bench.swap import write_random_adapter
from engine.errors import AdapterError
from engine.store import Store
from engine.tuning import adapters
from engine.tuning.datasets import named_task

BASE = "smollm2-135m-instruct"
PASSED = gated(True, ["task: better"])


@pytest.fixture(scope="module")
def adapter_files(model_catalog, tmp_path_factory):
    """Two real GGUF LoRA adapters shaped for SmolLM2 (random weights: the registry never reads them)."""
    folder = tmp_path_factory.mktemp("adapter-files")
    weights = catalog.locate(model_catalog.get(BASE))
    return [write_random_adapter(weights, folder / f"adapter-{seed}.gguf", seed=seed) for seed in (1, 2, 3)]


@pytest.fixture
def store(understudy_home):
    store = Store.open()
    yield store
    store.close()


def passed_candidate(store, file, task_id):
    adapter = adapters.register_candidate(store, file, BASE, task_id, training={"steps": 1})
    adapters.record_evaluation(store, adapter.id, PASSED)
    return adapter


def test_a_candidate_is_copied_into_the_data_dir_with_its_sha256(store, adapter_files, understudy_home):
    task_id = named_task(store, "invoices")
    adapter = adapters.register_candidate(store, adapter_files[0], BASE, task_id, training={"rank": 8})
    assert adapter.status == "candidate"
    assert adapter.path == understudy_home / "adapters" / str(adapter.id) / "adapter.gguf"
    assert adapter.path.read_bytes() == adapter_files[0].read_bytes()
    assert adapter.sha256 == catalog.sha256_of(adapter_files[0])
    assert adapter.training == {"rank": 8}
    assert not list((understudy_home / "adapters").glob(".staging-*"))
    assert adapters.serving_path(store, adapter.id) == (adapter, adapter.path)


def test_a_file_that_is_not_a_gguf_is_refused(store, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(AdapterError, match="is not a GGUF file"):
        adapters.register_candidate(store, text, BASE, named_task(store, "x"))
    assert adapters.list_adapters(store) == []


def test_promotion_needs_the_gate_unless_forced(store, adapter_files):
    task_id = named_task(store, "invoices")
    adapter = adapters.register_candidate(store, adapter_files[0], BASE, task_id)
    with pytest.raises(AdapterError, match="did not pass the evaluation gate .*--force"):
        adapters.promote(store, adapter.id)
    adapters.record_evaluation(store, adapter.id, gated(False, ["task: worse"]))
    with pytest.raises(AdapterError, match="task: worse"):
        adapters.promote(store, adapter.id)
    assert adapters.promote(store, adapter.id, force=True).status == "active"


def test_promoting_retires_the_old_adapter_and_rollback_walks_back_to_the_base(store, adapter_files):
    task_id, other_task = named_task(store, "invoices"), named_task(store, "emails")
    first, second, third = (passed_candidate(store, file, task_id) for file in adapter_files)
    elsewhere = passed_candidate(store, adapter_files[0], other_task)
    adapters.promote(store, elsewhere.id)
    for adapter in (first, second, third):
        adapters.promote(store, adapter.id)
        assert adapters.active_for_task(store, task_id).id == adapter.id
    statuses = {a.id: a.status for a in adapters.list_adapters(store, task_id)}
    assert statuses == {third.id: "active", second.id: "retired", first.id: "retired"}
    assert [a.id for a in adapters.list_adapters(store)] == [elsewhere.id, third.id, second.id, first.id]

    assert adapters.rollback(store, task_id).id == second.id
    assert adapters.rollback(store, task_id).id == first.id
    assert adapters.rollback(store, task_id) is None
    assert adapters.active_for_task(store, task_id) is None
    with pytest.raises(AdapterError, match="no active adapter to roll back"):
        adapters.rollback(store, task_id)
    assert adapters.active_for_task(store, other_task).id == elsewhere.id


def test_rollback_skips_an_adapter_whose_file_changed(store, adapter_files):
    task_id = named_task(store, "invoices")
    first, second = (passed_candidate(store, file, task_id) for file in adapter_files[:2])
    adapters.promote(store, first.id)
    adapters.promote(store, second.id)
    with first.path.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\0\0\0\0")
    assert adapters.rollback(store, task_id) is None


def test_a_changed_or_missing_file_is_never_served(store, adapter_files):
    task_id = named_task(store, "invoices")
    adapter = passed_candidate(store, adapter_files[0], task_id)
    adapters.serving_path(store, adapter.id)
    with adapter.path.open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(AdapterError, match="has changed since it was registered"):
        adapters.serving_path(store, adapter.id)
    with pytest.raises(AdapterError, match="has changed"):
        adapters.promote(store, adapter.id)
    adapter.path.unlink()
    with pytest.raises(AdapterError, match="is missing"):
        adapters.serving_path(store, adapter.id)


def test_a_rejected_candidate_stays_listed_and_inactive(store, adapter_files):
    task_id = named_task(store, "invoices")
    adapter = adapters.register_candidate(store, adapter_files[0], BASE, task_id)
    adapters.reject(store, adapter.id)
    assert adapters.get(store, adapter.id).status == "rejected"
    assert adapters.active_for_task(store, task_id) is None
    with pytest.raises(AdapterError, match="no adapter 99"):
        adapters.get(store, 99)


PUBLISHER = textwrap.dedent(
    """
    import sys
    from engine.store import Store
    from engine.tuning import adapters
    from engine.tuning.evaluation import AdapterEvaluation
    store = Store.open()
    passed = AdapterEvaluation.from_dict({"gate": {"promote": True, "reasons": [], "figures": {
        "task": {"base": 0.2, "candidate": 0.9, "active": None, "examples": 10},
        "general": {"base": 0.97, "candidate": 0.94, "tolerance": 0.1, "items": 35},
    }}})
    task_id, files = int(sys.argv[1]), sys.argv[2:]
    print("ready", flush=True)
    for round in range(1000):
        file = files[round % len(files)]
        candidate = adapters.register_candidate(store, file, "smollm2-135m-instruct", task_id)
        adapters.record_evaluation(store, candidate.id, passed)
        adapters.promote(store, candidate.id)
    """
)


def test_a_publish_killed_at_any_moment_leaves_one_valid_active_adapter(
    store, adapter_files, understudy_home
):
    task_id = named_task(store, "invoices")
    adapters.promote(store, passed_candidate(store, adapter_files[0], task_id).id)
    chance = random.Random(6)
    kills = 20
    for _ in range(kills):
        publisher = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(task_id), *map(str, adapter_files)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert publisher.stdout.readline().strip() == "ready"
        time.sleep(chance.uniform(0.0, 0.6))
        publisher.kill()
        publisher.wait()
        publisher.stdout.close()

        active = [a for a in adapters.list_adapters(store, task_id) if a.status == "active"]
        assert len(active) == 1
        assert catalog.sha256_of(active[0].path) == active[0].sha256
        for adapter in adapters.list_adapters(store):  # no row ever names a missing or partial file
            assert catalog.sha256_of(adapter.path) == adapter.sha256
    published = len(adapters.list_adapters(store, task_id))
    assert published > kills  # the kills landed while publishing, not before it started
    # A registration after the kills clears what they left half done (staging folders, orphans).
    adapters.register_candidate(store, adapter_files[1], BASE, task_id)
    leftovers = {p.name for p in (understudy_home / "adapters").iterdir()}
    assert leftovers == {str(a.id) for a in adapters.list_adapters(store)}
