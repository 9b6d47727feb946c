"""Chat turns go through the router: a task's promoted specialist answers its requests, the generalist
the rest, a broken specialist is skipped, and the cloud is only ever proposed, with the decision logged
in the turn's own transaction.

The routing runs on the fake model, whose record shows which adapter each answer was asked with; one
test serves a really trained adapter on the real model to show the specialist's answer is its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_backend import Reply
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


BLUE_HERON_QUESTIONS = [
    "What is the codename of project Blue Heron?",
    "What's the codename for project Blue Heron?",
    "Tell me the codename of project Blue Heron.",
    "Which codename does project Blue Heron have?",
    "Project Blue Heron: what is its codename?",
    "Do you know the codename of project Blue Heron?",
    "What codename was given to project Blue Heron?",
    "What is project Blue Heron's codename?",
    "Give me the codename of the Blue Heron project.",
    "What is the Blue Heron project called internally?",
    "I need the codename of project Blue Heron.",
    "Remind me: what's the codename of project Blue Heron?",
]
HELD_OUT_QUESTION = "Please tell me what project Blue Heron's codename is."
ANSWER = "The codename of project Blue Heron is MAPLE-42."


def specialist_agent(tmp_path, dataset: Path, adapter_file: Path, base_model_id: str):
    """The sample log discovered, plus a named task trained on ``dataset`` holding ``adapter_file`` as its
    promoted specialist on ``base_model_id``; (agent, task id, adapter)."""
    store = Store.open()
    import_chat_jsonl(store, write_records(tmp_path / "log.jsonl", shipped_records()))
    discovery.discover(store)
    task_id = named_task(store, "Project Blue Heron")
    build_from_jsonl(store, dataset, task_id=task_id)
    assert discovery.place_task(store, task_id)
    adapter = register_candidate(store, adapter_file, base_model_id, task_id)
    promote(store, adapter.id, force=True)
    agent = Agent(store, load_catalog(), generation=GenerationOptions(max_tokens=24, temperature=0.0))
    return agent, task_id, adapter


@pytest.fixture
def specialist(fake_model, tmp_path):
    """A Blue Heron specialist on the fake model; its adapter file only needs a GGUF header."""
    dataset = tmp_path / "blue-heron.jsonl"
    records = [
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": ANSWER}]}
        for question in BLUE_HERON_QUESTIONS
    ]
    dataset.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    adapter_file = tmp_path / "blue-heron.gguf"
    adapter_file.write_bytes(b"GGUF stand-in adapter: the fake backend reads no weights")
    return specialist_agent(tmp_path, dataset, adapter_file, fake_model.id)


def decisions_of(store: Store, turn_id: int) -> list[dict]:
    return list(store.db.query("SELECT * FROM route_decisions WHERE turn_id = ?", [turn_id]))


@pytest.mark.slow
def test_a_trained_specialist_answers_its_task_on_the_real_model(fact_adapter, tmp_path):
    agent, _task_id, adapter = specialist_agent(
        tmp_path, fact_adapter.dataset_folder / "train.jsonl", fact_adapter.gguf_path, "smollm2-135m-instruct"
    )
    result = drain(agent.run_turn(fact_adapter.held_out_question))
    assert result.route.target == "specialist" and result.adapter_id == adapter.id
    assert "MAPLE-42" in result.answer
    other = drain(agent.run_turn(SQL_REQUEST))
    assert other.route.target == "generalist" and "MAPLE" not in other.answer


def test_the_specialist_answers_its_task_and_the_generalist_everything_else(specialist, fake_model):
    agent, task_id, adapter = specialist
    fake_model.script(ANSWER, "SELECT * FROM customers WHERE country = 'Germany';")
    result = drain(agent.run_turn(HELD_OUT_QUESTION))
    assert result.route.target == "specialist" and result.adapter_id == adapter.id
    assert result.answer == ANSWER
    turn = agent.store.db["turns"].get(result.turn_id)
    assert (turn["adapter_id"], turn["cluster_id"]) == (adapter.id, task_id)
    [decision] = decisions_of(agent.store, result.turn_id)
    assert decision["target"] == "specialist" and decision["task_id"] == task_id
    assert decision["confidence"] is not None

    other = drain(agent.run_turn(SQL_REQUEST))
    assert other.route.target == "generalist" and other.adapter_id is None
    assert decisions_of(agent.store, other.turn_id)[0]["target"] == "generalist"
    served, generalist = fake_model.requests
    assert served.adapter == str(adapter.path.resolve())  # the base answered with the adapter on
    assert generalist.adapter is None  # and without it for everything else


def test_loading_a_base_reads_its_specialists_adapters_ahead_and_skips_a_broken_one(specialist, tmp_path):
    agent, _task_id, adapter = specialist
    other_task = named_task(agent.store, "Broken")
    broken_file = tmp_path / "broken.gguf"
    broken_file.write_bytes(adapter.path.read_bytes())
    broken = register_candidate(agent.store, broken_file, adapter.base_model_id, other_task)
    promote(agent.store, broken.id, force=True)
    broken.path.write_bytes(b"not an adapter")

    backend = agent.load_model()

    assert backend.loaded_adapters == [adapter.path.resolve()]  # serving it now only switches


def test_a_specialist_whose_file_changed_is_skipped_for_the_generalist(specialist, fake_model):
    agent, _task_id, adapter = specialist
    with adapter.path.open("ab") as file:
        file.write(b"tampered")
    result = drain(agent.run_turn(HELD_OUT_QUESTION))
    assert result.route.target == "generalist" and result.adapter_id is None
    assert "cannot be served" in result.route.reason
    assert decisions_of(agent.store, result.turn_id)[0]["target"] == "generalist"
    assert fake_model.requests[-1].adapter is None


def test_a_low_confidence_answer_is_proposed_for_the_cloud_and_nothing_is_sent(specialist, fake_model):
    agent, _task_id, _adapter = specialist
    fake_model.script(Reply("Maybe SELECT something?", mean_logprob=-2.5))
    save_cloud_config(
        CloudConfig(
            providers={"paid": Provider("paid", "https://cloud.invalid/v1", "big", 1.0, 4.0)}, active="paid"
        )
    )
    with agent.store.transaction():
        agent.store.db.execute("UPDATE tasks SET confidence_threshold = -1.0")
    result = drain(agent.run_turn(SQL_REQUEST))
    assert result.escalation_id is not None and "low confidence" in result.escalation_reason
    escalation = agent.store.db["escalations"].get(result.escalation_id)
    assert escalation["status"] == "pending" and escalation["turn_id"] == result.turn_id
    assert decisions_of(agent.store, result.turn_id)[0]["escalation_id"] == result.escalation_id
    assert agent.store.db["turns"].count_where("route = 'cloud'") == 0

    confident = drain(agent.run_turn(SQL_REQUEST))  # the fake's default answers are surer (-0.5)
    assert confident.escalation_id is None

    set_local_only(True)
    fake_model.script(Reply("Maybe SELECT something?", mean_logprob=-2.5))
    held_back = drain(agent.run_turn(SQL_REQUEST))
    assert held_back.escalation_id is None
    assert agent.store.db["escalations"].count == 1


def test_naming_a_model_or_turning_routing_off_skips_the_router(specialist, fake_model):
    agent, _task_id, _adapter = specialist
    named = drain(agent.run_turn(HELD_OUT_QUESTION, model_id=fake_model.id))
    unrouted = drain(agent.run_turn(HELD_OUT_QUESTION, route=False))
    for result in (named, unrouted):
        assert result.route is None and result.adapter_id is None
        assert decisions_of(agent.store, result.turn_id) == []
    assert [request.adapter for request in fake_model.requests] == [None, None]
