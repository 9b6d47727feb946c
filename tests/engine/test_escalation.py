"""Consent-gated escalation against a real OpenAI-compatible server on 127.0.0.1 (no client mocks).

Sends go to the stand-in cloud (llama.cpp's server: slow); where nothing may be sent the provider is a
recording address with nothing behind it.
"""

from __future__ import annotations

import json

import pytest

from engine.backends import drain
from engine.errors import EscalationError, KeyringError
from engine.escalation import (
    CloudConfig,
    Escalation,
    Escalations,
    load_cloud_config,
    save_cloud_config,
    store_key,
)
from engine.store import Store

PERSONAL = "My email is jane.doe@example.com and my phone is +44 20 7946 0958. Say hello in five words."


@pytest.fixture
def escalations():
    return Escalations(Store.open())


def propose(escalations, text=PERSONAL, **extra) -> int:
    return escalations.propose([{"role": "user", "content": text}], reason="asked by the user", **extra)


def test_a_proposal_is_pending_with_a_redacted_payload_and_an_estimate(unanswering_cloud, escalations):
    escalation = escalations.get(propose(escalations))
    assert escalation.status == "pending"
    sent_text = escalation.payload["messages"][0]["content"]
    assert "jane.doe@example.com" not in sent_text and "7946" not in sent_text
    assert "[EMAIL_1]" in sent_text and "[PHONE_1]" in sent_text
    assert escalation.payload["model"] == "stand-in"
    assert escalation.estimated_cost_usd > 0
    assert unanswering_cloud.requests == []


def test_denied_sends_nothing(unanswering_cloud, escalations):
    escalation_id = propose(escalations)
    escalations.decide(escalation_id, "deny")
    with pytest.raises(EscalationError, match="denied, not approved: nothing was sent"):
        drain(escalations.send(escalation_id))
    assert unanswering_cloud.requests == []


def test_pending_sends_nothing(unanswering_cloud, escalations):
    with pytest.raises(EscalationError, match="pending, not approved"):
        drain(escalations.send(propose(escalations)))
    assert unanswering_cloud.requests == []


@pytest.mark.slow
def test_approved_sends_exactly_the_previewed_payload_once(cloud, escalations):
    escalation_id = propose(escalations)
    previewed = escalations.get(escalation_id).payload
    escalations.decide(escalation_id, "allow_once")
    pieces: list[str] = []
    result = drain(escalations.send(escalation_id), pieces.append)
    [(method, path, _headers, body)] = cloud.requests
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert json.loads(body) == previewed
    assert result.status == "sent" and result.answer.strip()
    assert "".join(pieces).strip()
    stored = escalations.get(escalation_id)
    assert stored.status == "sent" and stored.cost_usd > 0
    assert stored.completion_tokens > 0
    [teacher] = list(escalations.store.db.query("SELECT * FROM teacher_examples"))
    assert teacher["escalation_id"] == escalation_id and teacher["request_text"] == PERSONAL
    assert json.loads(teacher["payload_json"]) == previewed


@pytest.mark.slow
def test_a_sent_escalation_is_a_complete_typed_record_and_its_json_keeps_the_cli_keys(cloud, escalations):
    escalation_id = propose(escalations)
    escalations.decide(escalation_id, "allow_once")
    result = drain(escalations.send(escalation_id))

    stored = escalations.get(escalation_id)

    assert isinstance(stored, Escalation) and stored.id == escalation_id
    assert (stored.status, stored.decided_by, stored.provider, stored.model) == (
        "sent", "user", "standin", "stand-in",
    )  # fmt: skip
    assert stored.user_text == PERSONAL and stored.reason == "asked by the user"
    assert stored.placeholders["[EMAIL_1]"] == "jane.doe@example.com"
    assert stored.restored_text == result.answer and stored.response_text
    assert stored.conversation_id == result.conversation_id and stored.turn_id is None
    assert stored.consent_utc and stored.sent_utc and stored.created_utc and stored.error is None
    assert isinstance(stored.prompt_tokens, int) and isinstance(stored.cost_usd, float)
    assert not stored.decidable
    record = stored.to_dict()
    assert list(record) == [
        "id", "status", "provider", "model", "reason", "task_type", "created_utc", "estimated_cost_usd",
        "decided_by", "consent_utc", "sent_utc", "prompt_tokens", "completion_tokens", "cost_usd", "error",
        "payload", "answer",
    ]  # fmt: skip
    assert record["answer"] == result.answer and record["payload"] == stored.payload
    assert "jane.doe@example.com" not in json.dumps(record["payload"])


def test_recent_lists_records_newest_first_and_filters_by_status(unanswering_cloud, escalations):
    first, second = propose(escalations), propose(escalations, text="Say hi.")
    escalations.decide(first, "deny")

    assert [escalation.id for escalation in escalations.recent()] == [second, first]
    [denied] = escalations.recent("denied")
    assert denied == escalations.get(first) and not denied.decidable
    assert escalations.recent("pending")[0].decidable
    assert escalations.recent(limit=1)[0].id == second


@pytest.mark.slow
def test_an_edited_payload_is_what_is_sent(cloud, escalations):
    escalation_id = propose(escalations)
    payload = escalations.get(escalation_id).payload
    payload["messages"][0]["content"] = "Say hello."
    escalations.edit_payload(escalation_id, payload)
    escalations.decide(escalation_id, "allow_once")
    drain(escalations.send(escalation_id))
    [(_method, _path, _headers, body)] = cloud.requests
    assert json.loads(body)["messages"][0]["content"] == "Say hello."


def test_local_only_refuses_to_propose_and_to_send_even_when_approved(unanswering_cloud, escalations):
    escalation_id = propose(escalations)
    escalations.decide(escalation_id, "allow_once")
    config = load_cloud_config()
    config.local_only = True
    save_cloud_config(config)
    with pytest.raises(EscalationError, match="local-only mode is on"):
        drain(escalations.send(escalation_id))
    with pytest.raises(EscalationError, match="local-only mode is on"):
        propose(escalations)
    assert unanswering_cloud.requests == []


def test_always_for_a_task_type_approves_the_next_proposal_of_that_type(unanswering_cloud, escalations):
    first = propose(escalations, task_type="translation")
    escalations.decide(first, "always")
    assert escalations.get(propose(escalations, task_type="translation")).status == "approved"
    other = escalations.get(propose(escalations, task_type="coding"))
    assert other.status == "pending"


def test_a_dead_endpoint_is_a_clear_error_and_the_escalation_can_be_retried(unanswering_cloud, escalations):
    config = load_cloud_config()
    provider = config.providers["standin"]
    config.providers["standin"] = type(provider)("standin", "http://127.0.0.1:9/v1", provider.model)
    save_cloud_config(config)
    escalation_id = propose(escalations)
    escalations.decide(escalation_id, "allow_once")
    with pytest.raises(EscalationError, match="could not reach standin.*Retry with"):
        drain(escalations.send(escalation_id))
    assert escalations.get(escalation_id).status == "failed"
    escalations.decide(escalation_id, "allow_once")
    assert escalations.get(escalation_id).status == "approved"


@pytest.mark.slow
def test_an_answer_cut_off_midway_is_kept_as_partial_and_can_be_retried(cloud, escalations):
    escalation_id = propose(escalations, text="Write a long story about a cat.", max_tokens=64)
    escalations.decide(escalation_id, "allow_once")
    cloud.cut_after_bytes = 1500
    pieces: list[str] = []
    with pytest.raises(EscalationError, match="cut off before it finished. The part that arrived is kept"):
        drain(escalations.send(escalation_id), pieces.append)
    stored = escalations.get(escalation_id)
    assert stored.status == "partial"
    assert stored.response_text == "".join(pieces) != ""
    assert list(escalations.store.db.query("SELECT * FROM teacher_examples")) == []
    escalations.decide(escalation_id, "allow_once")
    assert drain(escalations.send(escalation_id)).status == "sent"


@pytest.mark.slow
def test_the_key_goes_only_into_the_auth_header_never_to_disk_or_a_prompt(
    cloud, escalations, memory_keyring, understudy_home
):
    canary = "sk-CANARY-0123456789abcdefghijklmnop"
    store_key("standin", canary)
    assert memory_keyring.get_password("understudy", "standin") == canary
    escalation_id = propose(escalations, text="What is 2+2?")
    escalations.decide(escalation_id, "allow_once")
    drain(escalations.send(escalation_id))
    [(_method, _path, headers, body)] = cloud.requests
    assert {key.lower(): value for key, value in headers.items()}["authorization"] == f"Bearer {canary}"
    assert canary.encode() not in body
    escalations.store.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    for path in understudy_home.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_no_secure_keyring_means_the_key_is_refused(understudy_home):
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(KeyringError, match="no secure keychain.*not stored"):
            store_key("standin", "sk-anything")
    finally:
        keyring.set_keyring(previous)


def test_a_plaintext_keyring_is_refused_too(understudy_home):
    import keyring
    from keyring.backend import KeyringBackend

    class PlaintextKeyring(KeyringBackend):
        """Like keyrings.alt's: secrets in a readable file."""

        priority = 1

        def set_password(self, service, username, password):
            raise AssertionError("a plaintext keyring must never receive a key")

        def get_password(self, service, username):
            return None

        def delete_password(self, service, username):
            pass

    previous = keyring.get_keyring()
    keyring.set_keyring(PlaintextKeyring())
    try:
        with pytest.raises(KeyringError, match="PlaintextKeyring"):
            store_key("standin", "sk-anything")
    finally:
        keyring.set_keyring(previous)


def test_without_a_provider_the_error_says_how_to_add_one(escalations, understudy_home):
    save_cloud_config(CloudConfig())
    with pytest.raises(EscalationError, match="understudy cloud add NAME"):
        propose(escalations)
