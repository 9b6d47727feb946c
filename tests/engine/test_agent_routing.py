"""Chat turns go through the router: a task's promoted specialist answers its requests, the generalist
the rest, a broken specialist is skipped, and the cloud is only ever proposed, with the decision logged
in the turn's own transaction."""

from __future__ import annotations

import pytest
from task_log_sample import shipped_records, write_records

from engine import discovery
from engine.agent import Agent
from engine.backends import GenerationOptions, drain
from engine.catalog import load_catalog
from engine.escalation import CloudConfig, Provider, save_cloud_config, set_local_only
from engine.log_import import import_chat_jsonl
from engine.store import Store
from engine.tuning.adapters import promote, register_candidate
from engine.tuning.datasets import build_from_jsonl, named_task

SQL_REQUEST = "Write a SQL query that lists every customer from Germany"


@pytest.fixture
def specialist(fact_adapter, tmp_path):
    """The sample log discovered, plus a named task holding the MAPLE-42 adapter as its specialist."""
    store = Store.open()
    import_chat_jsonl(store, write_records(tmp_path / "log.jsonl", shipped_records()))
    discovery.discover(store)
    task_id = named_task(store, "Project Blue Heron")
    build_from_jsonl(store, fact_adapter.dataset_folder / "train.jsonl", task_id=task_id)
    assert discovery.place_task(store, task_id)
    adapter = register_candidate(store, fact_adapter.gguf_path, "smollm2-135m-instruct", task_id)
    promote(store, adapter.id, force=True)
    agent = Agent(store, load_catalog(), generation=GenerationOptions(max_tokens=24, temperature=0.0))
    return agent, task_id, adapter


def decisions_of(store: Store, turn_id: int) -> list[dict]:
    return list(store.db.query("SELECT * FROM route_decisions WHERE turn_id = ?", [turn_id]))


def test_the_specialist_answers_its_task_and_the_generalist_everything_else(specialist, fact_adapter):
    agent, task_id, adapter = specialist
    result = drain(agent.run_turn(fact_adapter.held_out_question))
    assert result.route.target == "specialist" and result.adapter_id == adapter.id
    assert "MAPLE-42" in result.answer
    turn = agent.store.db["turns"].get(result.turn_id)
    assert (turn["adapter_id"], turn["cluster_id"]) == (adapter.id, task_id)
    [decision] = decisions_of(agent.store, result.turn_id)
    assert decision["target"] == "specialist" and decision["task_id"] == task_id
    assert decision["confidence"] is not None

    other = drain(agent.run_turn(SQL_REQUEST))
    assert other.route.target == "generalist" and other.adapter_id is None
    assert "MAPLE" not in other.answer
    assert decisions_of(agent.store, other.turn_id)[0]["target"] == "generalist"


def test_loading_a_base_reads_its_specialists_adapters_ahead_and_skips_a_broken_one(specialist, tmp_path):
    agent, _task_id, adapter = specialist
    other_task = named_task(agent.store, "Broken")
    broken_file = tmp_path / "broken.gguf"
    broken_file.write_bytes(adapter.path.read_bytes())
    broken = register_candidate(agent.store, broken_file, "smollm2-135m-instruct", other_task)
    promote(agent.store, broken.id, force=True)
    broken.path.write_bytes(b"not an adapter")

    backend = agent.load_model("smollm2-135m-instruct")

    assert adapter.path.resolve() in backend._adapter_handles  # serving it now only switches
    assert broken.path.resolve() not in backend._adapter_handles


def test_a_specialist_whose_file_changed_is_skipped_for_the_generalist(specialist, fact_adapter):
    agent, _task_id, adapter = specialist
    with adapter.path.open("ab") as file:
        file.write(b"tampered")
    result = drain(agent.run_turn(fact_adapter.held_out_question))
    assert result.route.target == "generalist" and result.adapter_id is None
    assert "cannot be served" in result.route.reason
    assert decisions_of(agent.store, result.turn_id)[0]["target"] == "generalist"


def test_a_low_confidence_answer_is_proposed_for_the_cloud_and_nothing_is_sent(specialist):
    agent, _task_id, _adapter = specialist
    save_cloud_config(
        CloudConfig(
            providers={"paid": Provider("paid", "https://cloud.invalid/v1", "big", 1.0, 4.0)}, active="paid"
        )
    )
    with agent.store.transaction():
        agent.store.db.execute("UPDATE tasks SET confidence_threshold = 0.0")  # no answer is that sure
    result = drain(agent.run_turn(SQL_REQUEST))
    assert result.escalation_id is not None and "low confidence" in result.escalation_reason
    escalation = agent.store.db["escalations"].get(result.escalation_id)
    assert escalation["status"] == "pending" and escalation["turn_id"] == result.turn_id
    assert decisions_of(agent.store, result.turn_id)[0]["escalation_id"] == result.escalation_id
    assert agent.store.db["turns"].count_where("route = 'cloud'") == 0

    set_local_only(True)
    held_back = drain(agent.run_turn(SQL_REQUEST))
    assert held_back.escalation_id is None
    assert agent.store.db["escalations"].count == 1


def test_naming_a_model_or_turning_routing_off_skips_the_router(specialist, fact_adapter):
    agent, _task_id, _adapter = specialist
    named = drain(agent.run_turn(fact_adapter.held_out_question, model_id="smollm2-135m-instruct"))
    unrouted = drain(agent.run_turn(fact_adapter.held_out_question, route=False))
    for result in (named, unrouted):
        assert result.route is None and result.adapter_id is None
        assert decisions_of(agent.store, result.turn_id) == []
