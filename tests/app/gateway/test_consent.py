"""The gateway and the cloud with nobody at the keyboard: only a standing consent sends anything.

Where nothing may be sent, the provider is a recording address with nothing behind it (fast); where
something is sent, it is the stand-in cloud, llama.cpp's OpenAI server on 127.0.0.1 (slow). The local
model is the fake backend; the router's proposal is set by replacing ``Router.decide`` for the test.
"""

from __future__ import annotations

import json

import openai
import pytest
from understudy_command import run_understudy

from engine import consent
from engine.escalation import Escalations, edit_cloud_config, set_local_only
from engine.router import RouteDecision, Router
from engine.store import Store, utc_now

PERSONAL = "My email is jane.doe@example.com. Repeat my email address back to me."
TASK = 7


def add_task(pin: str) -> None:
    store = Store.open()
    with store.transaction():
        store.insert(
            "tasks",
            {"id": TASK, "label": "greetings", "source": "named", "pin": pin,
             "created_utc": utc_now(), "updated_utc": utc_now()},
        )  # fmt: skip
    store.close()


@pytest.fixture
def proposes_cloud(understudy_home, monkeypatch):
    """A task pinned always_ask_cloud, and the router proposing the cloud for it on every request."""
    add_task("always_ask_cloud")

    def decide(self, prompt: str) -> RouteDecision:
        pin = "always_ask_cloud"
        return RouteDecision(TASK, "greetings", 0.1, "cloud", None, None, f"pinned {pin}", 0.0, pin=pin)

    monkeypatch.setattr(Router, "decide", decide)


def ask(gateway, text: str = PERSONAL):
    return gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], max_tokens=24, temperature=0.0
    )


def always_for_task() -> None:
    with edit_cloud_config() as config:
        config.always_allowed.append(["standin", f"task {TASK}"])


# Fast: nothing is sent ----------------------------------------------------------------------------


def test_without_consent_the_proposal_is_answered_locally_and_nothing_is_sent(
    unanswering_cloud, proposes_cloud, gateway, fake_model
):
    fake_model.script("Local answer.")
    raw = ask(gateway)
    assert raw.parse().choices[0].message.content == "Local answer."
    assert raw.headers["x-understudy-route"] == "generalist; cloud not consented"
    assert unanswering_cloud.requests == []


def test_local_only_wins_over_teacher_mode_and_always(unanswering_cloud, proposes_cloud, gateway, fake_model):
    consent.teacher_on(calls=5)
    always_for_task()
    set_local_only(True)
    fake_model.script("Local answer.")
    raw = ask(gateway)
    assert raw.headers["x-understudy-route"] == "generalist; local-only is on"
    assert unanswering_cloud.requests == []
    assert consent.teacher_status()[consent.ALL_CLIENTS].calls_left == 5


def test_a_never_cloud_pin_wins_over_always_and_teacher_mode(unanswering_cloud):
    always_for_task()
    consent.teacher_on()
    add_task("never_cloud")
    store = Store.open()
    assert consent.cloud_consent(store, TASK, "agent") == consent.Consent(
        False, f"task {TASK} is pinned never_cloud"
    )
    assert consent.cloud_consent(store, None, "agent").teacher


def test_ask_me_waits_then_fails_clearly_and_sends_nothing(
    unanswering_cloud, proposes_cloud, gateway, fake_model
):
    consent.set_ask_me(True, timeout_s=0.5)
    with pytest.raises(openai.APIStatusError) as raised:
        ask(gateway)
    assert raised.value.status_code == 408
    assert raised.value.body["code"] == "cloud_consent_timeout"
    assert "nobody reviewed" in raised.value.body["message"]
    assert unanswering_cloud.requests == []
    [escalation] = Escalations(Store.open()).recent()
    assert (escalation.status, escalation.decided_by) == ("denied", "timeout")
    assert "jane.doe@example.com" not in json.dumps(escalation.payload)


def test_teacher_calls_are_spent_one_by_one_then_stop(understudy_home):
    consent.teacher_on(client="agent", calls=2)
    assert [consent.take_teacher_call("agent") for _ in range(3)] == [True, True, False]
    assert not consent.take_teacher_call("other")
    assert consent.teacher_status() == {}


def test_consent_order(unanswering_cloud):
    store = Store.open()
    assert consent.cloud_consent(store, TASK, "agent") == consent.Consent(False, "cloud not consented")
    consent.set_ask_me(True)
    assert consent.cloud_consent(store, TASK, "agent").ask
    consent.teacher_on(client="agent", hours=1)
    assert consent.cloud_consent(store, TASK, "agent").teacher
    assert not consent.cloud_consent(store, TASK, "other").allowed
    always_for_task()
    assert consent.cloud_consent(store, TASK, "other").why == f"always for task {TASK}"
    set_local_only(True)
    assert consent.cloud_consent(store, TASK, "agent") == consent.Consent(False, "local-only is on")


def test_serve_teacher_verbs(understudy_home):
    assert "off" in run_understudy("serve", "teacher", "status").stdout
    on = run_understudy("serve", "teacher", "on", "--client", "agent", "--calls", "3", "--hours", "2")
    assert on.returncode == 0 and "3 call(s) left" in on.stdout
    status = json.loads(run_understudy("serve", "teacher", "status", "--json").stdout)
    assert status["agent"]["calls_left"] == 3 and status["agent"]["until_utc"]
    assert run_understudy("serve", "teacher", "off").returncode == 0
    assert consent.teacher_status() == {}


# Slow: the stand-in cloud answers ----------------------------------------------------------------


@pytest.mark.slow
def test_always_for_the_task_sends_exactly_the_redacted_payload(cloud, proposes_cloud, gateway, fake_model):
    always_for_task()
    raw = ask(gateway)
    completion = raw.parse()
    assert raw.headers["x-understudy-route"] == f"cloud; always for task {TASK}"
    assert completion.model == "stand-in"
    [(_method, path, _headers, body)] = cloud.requests
    assert path == "/v1/chat/completions"
    [escalation] = Escalations(Store.open()).recent()
    assert json.loads(body) == escalation.payload
    assert "jane.doe@example.com" not in body.decode() and "[EMAIL_1]" in body.decode()
    assert completion.choices[0].message.content == escalation.restored_text
    assert "[EMAIL_1]" not in completion.choices[0].message.content
    assert fake_model.requests == []


@pytest.mark.slow
def test_teacher_mode_sends_n_calls_then_stops_and_logs_teacher_examples(cloud, gateway, fake_model):
    consent.teacher_on(client="OpenAI", calls=2)
    fake_model.script("Local answer.")
    routes = [ask(gateway, "Say hello in five words.").headers["x-understudy-route"] for _ in range(3)]
    assert routes == ["cloud; teacher mode for OpenAI"] * 2 + ["generalist"]
    assert len(cloud.requests) == 2
    store = Store.open()
    teachers = list(store.db.query("SELECT * FROM teacher_examples ORDER BY id"))
    assert [row["task_type"] for row in teachers] == ["general", "general"]
    cloud_turns = list(store.db.query("SELECT id FROM turns WHERE route = 'cloud'"))
    logged = list(store.db.query("SELECT * FROM gateway_calls WHERE route LIKE 'cloud;%'"))
    assert {row["turn_id"] for row in logged} == {row["id"] for row in cloud_turns}
    assert all(row["answered_by"] == "stand-in" for row in logged)
