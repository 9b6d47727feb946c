"""The router (S6): specialist / generalist / proposed cloud, pins, confidence, logging, calibration."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fake_backend import Reply
from task_log_sample import shipped_records, true_tasks, write_records

from engine import backends, discovery, router
from engine.backends import GenerationOptions, drain
from engine.catalog import load_catalog
from engine.errors import DiscoveryError
from engine.escalation import CloudConfig, Provider, save_cloud_config, set_local_only
from engine.log_import import import_chat_jsonl
from engine.store import Store, TurnRecord, utc_now

HAIKU_REQUEST = "Write me a haiku about the summer sea"
SQL_REQUEST = "Write a SQL query that lists every customer from Germany"
EMAIL_REQUEST = "Give me a subject line for an email about our summer party"
UNRELATED_REQUEST = "What is the capital of Australia?"


@pytest.fixture
def routed(tmp_path):
    """The sample log discovered, with an active specialist for the haiku task; (store, task ids)."""
    store = Store.open()
    import_chat_jsonl(store, write_records(tmp_path / "log.jsonl", shipped_records()))
    discovery.discover(store)
    truth = true_tasks(store)
    counts: dict[int, Counter] = {}
    for row in store.db.query("SELECT id, cluster_id FROM turns WHERE cluster_id IS NOT NULL"):
        counts.setdefault(row["cluster_id"], Counter())[truth[row["id"]]] += 1
    tasks = {counter.most_common(1)[0][0]: task_id for task_id, counter in counts.items()}
    adapter_file = tmp_path / "haiku.gguf"
    adapter_file.write_bytes(b"GGUF stand-in: the router only hands the path on")
    with store.transaction():
        adapter_id = store.insert(
            "adapters",
            {
                "task_id": tasks["haiku"],
                "base_model_id": "smollm2-135m-instruct",
                "path": str(adapter_file),
                "sha256": "0" * 64,
                "status": "active",
                "created_utc": utc_now(),
            },
        )
    tasks["haiku_adapter"] = adapter_id
    return store, tasks


@pytest.fixture
def cloud_provider(understudy_home):
    """A priced provider at an address nothing may reach: proposing must never contact it."""
    save_cloud_config(
        CloudConfig(
            providers={"paid": Provider("paid", "https://cloud.invalid/v1", "big", 1.0, 4.0)}, active="paid"
        )
    )


@pytest.fixture
def answer(fake_model):
    """An answer with the token log-probabilities the confidence comes from (the fake model's)."""
    fake_model.script(Reply("Waves fold into light", mean_logprob=-0.8, min_logprob=-2.0))
    backend = backends.load(load_catalog().get(fake_model.id))
    messages = [{"role": "user", "content": HAIKU_REQUEST}]
    return drain(backend.stream_chat(messages, GenerationOptions(max_tokens=8, temperature=0.0)))


def _nothing_sent(store) -> bool:
    cloud_turns = store.db["turns"].count_where("route = 'cloud'")
    sent = store.db["escalations"].count_where("status IN ('sent', 'partial', 'failed')")
    return cloud_turns == 0 and sent == 0 and store.db["teacher_examples"].count == 0


def test_a_request_near_a_task_with_an_active_specialist_goes_to_it(routed):
    store, tasks = routed

    decision = router.Router(store).decide(HAIKU_REQUEST)

    assert decision.target == "specialist"
    assert decision.task_id == tasks["haiku"]
    assert decision.adapter_id == tasks["haiku_adapter"]
    assert decision.adapter_path.name == "haiku.gguf"
    assert "haiku" in decision.task_label
    assert decision.distance <= decision.features["radius"]


def test_every_request_a_task_was_found_from_goes_to_its_specialist(routed):
    """Its radius holds all of them, so none is turned away as if at the task's edge."""
    store, tasks = routed
    route = router.Router(store)
    own = [
        row["user_text"]
        for row in store.db.query("SELECT user_text FROM turns WHERE cluster_id = ?", [tasks["haiku"]])
    ]

    decisions = [route.decide(request) for request in own]

    assert len(own) >= 45
    assert {(decision.target, decision.task_id) for decision in decisions} == {("specialist", tasks["haiku"])}


def test_other_tasks_and_unrelated_requests_go_to_the_generalist(routed):
    store, tasks = routed
    route = router.Router(store)

    in_task = route.decide(SQL_REQUEST)
    unrelated = route.decide(UNRELATED_REQUEST)

    assert (in_task.target, in_task.task_id, in_task.adapter_id) == ("generalist", tasks["sql"], None)
    assert "no specialist" in in_task.reason
    assert (unrelated.target, unrelated.task_id) == ("generalist", None)
    assert "no task is close" in unrelated.reason
    assert unrelated.distance > in_task.distance


def test_without_discovered_tasks_everything_goes_to_the_generalist():
    decision = router.Router(Store.open()).decide(HAIKU_REQUEST)

    assert (decision.target, decision.task_id) == ("generalist", None)
    assert "no tasks discovered" in decision.reason


def test_low_confidence_creates_a_pending_escalation_and_sends_nothing(routed, cloud_provider, answer):
    store, tasks = routed
    route = router.Router(store)
    with store.transaction():
        store.db.execute("UPDATE tasks SET confidence_threshold = 0.0 WHERE id = ?", [tasks["sql"]])
    route.refresh(store)
    decision = route.decide(SQL_REQUEST)

    advice = route.after_answer(decision, answer)

    assert answer.mean_logprob is not None and answer.mean_logprob < 0.0
    assert advice.propose and advice.confidence == round(answer.mean_logprob, 4) and advice.threshold == 0.0
    escalation_id = router.escalate(
        store, decision, [{"role": "user", "content": SQL_REQUEST}], advice.reason
    )
    escalation = next(iter(store.db.query("SELECT * FROM escalations WHERE id = ?", [escalation_id])))
    assert escalation["status"] == "pending"
    assert escalation["task_type"] == f"task {tasks['sql']}"
    assert decision.escalation_id == escalation_id
    assert _nothing_sent(store)


def test_a_confident_answer_proposes_nothing(routed, cloud_provider, answer):
    store, tasks = routed
    with store.transaction():
        store.db.execute("UPDATE tasks SET confidence_threshold = -100 WHERE id = ?", [tasks["sql"]])
    route = router.Router(store)

    advice = route.after_answer(route.decide(SQL_REQUEST), answer)

    assert not advice.propose and "confident enough" in advice.reason


def test_pins_are_obeyed(routed, cloud_provider, answer):
    store, tasks = routed
    route = router.Router(store)
    with store.transaction():
        store.db.execute("UPDATE tasks SET confidence_threshold = 0.0")

    router.set_pin(store, tasks["haiku"], "always_ask_cloud")
    route.refresh(store)
    asked = route.decide(HAIKU_REQUEST)
    assert (asked.target, asked.adapter_id, asked.pin) == ("cloud", None, "always_ask_cloud")
    assert not route.after_answer(asked, answer).propose
    set_local_only(True)
    kept_local = route.decide(HAIKU_REQUEST)
    assert kept_local.target == "specialist" and "local-only is on" in kept_local.reason
    set_local_only(False)

    router.set_pin(store, tasks["sql"], "always_local")
    router.set_pin(store, tasks["translate_french"], "never_cloud")
    route.refresh(store)
    local = route.decide(SQL_REQUEST)
    assert local.target == "generalist"
    assert not route.after_answer(local, answer).propose
    french = route.decide("Translate to French: the cat is asleep")
    assert not route.after_answer(french, answer).propose
    with pytest.raises(DiscoveryError, match="pinned never_cloud"):
        router.escalate(store, french, [{"role": "user", "content": "Translate to French: the cat"}], "asked")
    assert route.after_answer(route.decide(EMAIL_REQUEST), answer).propose

    with pytest.raises(DiscoveryError, match="a pin is one of"):
        router.set_pin(store, tasks["sql"], "sometimes")
    assert _nothing_sent(store)


def test_decisions_are_logged_with_their_features_and_place_the_turn(routed, answer):
    store, tasks = routed
    route = router.Router(store)
    decision = route.decide(HAIKU_REQUEST)
    route.after_answer(decision, answer)
    turn_id = store.log_turn(TurnRecord(conversation_id=None, user_text=HAIKU_REQUEST, model_id="smollm2"))

    decision_id = router.record(store, decision, turn_id)

    row = next(iter(store.db.query("SELECT * FROM route_decisions WHERE id = ?", [decision_id])))
    assert (row["turn_id"], row["task_id"], row["target"], row["adapter_id"]) == (
        turn_id,
        tasks["haiku"],
        "specialist",
        tasks["haiku_adapter"],
    )
    assert row["confidence"] == decision.confidence and row["decision_ms"] == decision.decision_ms
    features = json.loads(row["features_json"])
    assert {
        "distance",
        "margin",
        "radius",
        "pin",
        "adapter_id",
        "encoder",
        "encoder_ms",
        "confidence",
    } <= set(features)
    assert features["margin"] > 0
    turn = next(iter(store.db.query("SELECT cluster_id FROM turns WHERE id = ?", [turn_id])))
    assert turn["cluster_id"] == tasks["haiku"]
    assert store.db["embeddings"].count_where("turn_id = ?", [turn_id]) == 1


def test_a_long_lived_router_follows_pins_thresholds_and_adapters(routed):
    store, tasks = routed
    route = router.Router(store)
    assert not route.refresh_if_changed(store)

    router.set_pin(store, tasks["sql"], "always_local")
    assert route.refresh_if_changed(store)
    assert route.decide(SQL_REQUEST).pin == "always_local"
    with store.transaction():
        store.db.execute("UPDATE adapters SET status = 'retired'")
    assert route.refresh_if_changed(store)
    assert route.decide(HAIKU_REQUEST).target == "generalist"
    assert not route.refresh_if_changed(store)


def _answered(store, task_id: int, confidence: float) -> int:
    turn_id = store.log_turn(TurnRecord(conversation_id=None, user_text="q", model_id="smollm2"))
    with store.transaction():
        store.insert(
            "route_decisions",
            {
                "turn_id": turn_id,
                "created_utc": utc_now(),
                "task_id": task_id,
                "target": "generalist",
                "reason": "test",
                "confidence": confidence,
                "decision_ms": 0.1,
            },
        )
    return turn_id


def test_calibration_fits_a_threshold_between_bad_and_good_answers(routed):
    store, tasks = routed
    for confidence in (-1.6, -1.4, -1.3, -1.2):
        router.record_outcome(store, _answered(store, tasks["sql"], confidence), "user_chose_cloud")
    for confidence in (-0.9, -0.7, -0.5, -0.3, -0.2):
        store.set_feedback(_answered(store, tasks["sql"], confidence), 1)
    store.set_feedback(_answered(store, tasks["sql"], -0.4), -1)
    router.record_outcome(store, _answered(store, tasks["haiku"], -0.8), "user_kept_local")
    _answered(store, tasks["haiku"], -3.0)  # no outcome: left out

    results = {calibration.task_id: calibration for calibration in router.calibrate(store)}

    sql = results[tasks["sql"]]
    assert (sql.outcomes, sql.bad, sql.source) == (10, 5, "task")
    assert -1.2 < sql.threshold < -0.9
    assert sql.balanced_accuracy == 0.9
    haiku = results[tasks["haiku"]]
    assert (haiku.outcomes, haiku.source, haiku.threshold) == (1, "pooled", sql.threshold)
    stored = next(iter(store.db.query("SELECT confidence_threshold FROM tasks WHERE id = ?", [tasks["sql"]])))
    assert stored["confidence_threshold"] == sql.threshold
    route = router.Router(store)
    assert route.decide(SQL_REQUEST).confidence_threshold == sql.threshold


def test_with_too_few_outcomes_the_prior_threshold_applies(routed):
    store, tasks = routed
    router.record_outcome(store, _answered(store, tasks["sql"], -1.5), "user_chose_cloud")

    results = router.calibrate(store)

    assert {calibration.source for calibration in results} == {"prior"}
    assert (
        router.Router(store).decide(SQL_REQUEST).confidence_threshold == router.DEFAULT_CONFIDENCE_THRESHOLD
    )
    with pytest.raises(DiscoveryError, match="an outcome is one of"):
        router.record_outcome(store, 1, "meh")
