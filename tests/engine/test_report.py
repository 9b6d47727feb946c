"""The replaceability report: every figure checked against a log built with known counts."""

from __future__ import annotations

import json

import pytest

from engine.escalation import CloudConfig, Provider, save_cloud_config
from engine.report import build_report, to_html, to_markdown
from engine.store import ModelCallRecord, Store, TurnRecord, utc_now

DAY_ONE, DAY_TWO = "2026-01-01", "2026-01-02"


def _turn(store, task_id, day, prompt_tokens, completion_tokens, **fields) -> int:
    """A logged turn of ``task_id`` on ``day`` whose model call used the given tokens."""
    imported = fields.pop("imported", False)
    turn = TurnRecord(
        conversation_id=None,
        user_text=fields.pop("text", "a request"),
        model_id="smollm2",
        answer_text="an answer",
        model_calls=[
            ModelCallRecord(
                "smollm2", "llama_cpp", [], prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        ],
        **fields,
    )
    with store.transaction():
        turn_id = store.write_turn(turn)
        store.db.execute(
            "UPDATE turns SET cluster_id = ?, created_utc = ?, imported = ? WHERE id = ?",
            [task_id, f"{day}T10:00:00.000+00:00", int(imported), turn_id],
        )
    return turn_id


def _escalation(store, turn_id, status, cost=None, sent_day=None) -> int:
    with store.transaction():
        return store.insert(
            "escalations",
            {
                "turn_id": turn_id,
                "created_utc": utc_now(),
                "status": status,
                "reason": "low confidence",
                "task_type": "general",
                "provider": "paid",
                "model": "big",
                "user_text": "a request",
                "payload_json": "{}",
                "cost_usd": cost,
                "sent_utc": None if sent_day is None else f"{sent_day}T11:00:00+00:00",
            },
        )


def _decision(store, turn_id, task_id, escalation_id=None, outcome=None) -> None:
    with store.transaction():
        store.insert(
            "route_decisions",
            {
                "turn_id": turn_id,
                "created_utc": utc_now(),
                "task_id": task_id,
                "target": "generalist",
                "reason": "test",
                "decision_ms": 0.2,
                "escalation_id": escalation_id,
                "outcome": outcome,
            },
        )


@pytest.fixture
def log(understudy_home, tmp_path):
    """Two tasks and some unassigned traffic over two days; the comments give the expected figures."""
    store = Store.open()
    save_cloud_config(
        CloudConfig(
            providers={"paid": Provider("paid", "https://cloud.invalid/v1", "big", 2.0, 8.0)}, active="paid"
        )
    )
    now = utc_now()
    with store.transaction():
        alpha = store.insert(
            "tasks",
            {
                "label": "alpha",
                "source": "discovered",
                "examples_json": json.dumps(["alpha example"]),
                "keywords_json": json.dumps(["alpha"]),
                "created_utc": now,
                "updated_utc": now,
            },
        )
        beta = store.insert(
            "tasks", {"label": "beta", "source": "discovered", "created_utc": now, "updated_utc": now}
        )
        adapter = store.insert(
            "adapters",
            {
                "task_id": alpha,
                "base_model_id": "smollm2",
                "path": str(tmp_path / "a.gguf"),
                "sha256": "0" * 64,
                "status": "active",
                "created_utc": now,
            },
        )
    a1 = _turn(store, alpha, DAY_ONE, 100, 50, adapter_id=adapter)  # specialist, thumbs up: replaceable
    a2 = _turn(store, alpha, DAY_ONE, 200, 100, adapter_id=adapter)  # specialist, thumbs down
    a3 = _turn(store, alpha, DAY_TWO, 300, 100)  # generalist, escalation proposed and denied: replaceable
    a4 = _turn(store, alpha, DAY_TWO, 100, 100)  # generalist, escalation sent ($0.0024)
    _turn(store, alpha, DAY_TWO, 400, 200, route="cloud")  # the cloud's answer for a4
    _turn(store, alpha, DAY_ONE, 0, 0, route="imported", imported=True)  # history from another tool
    replaced = _turn(store, alpha, DAY_ONE, 999, 999)  # replaced by a regenerate: not counted
    _turn(store, alpha, DAY_ONE, 999, 999, status="error")  # failed: not counted
    b1 = _turn(store, beta, DAY_TWO, 50, 50)  # generalist, the user chose the cloud
    _turn(store, beta, DAY_TWO, 10, 10, replaces=[replaced])  # generalist: replaceable
    _turn(store, None, DAY_ONE, 0, 0)  # no task: replaceable
    store.set_feedback(a1, 1)
    store.set_feedback(a2, -1)
    _decision(store, a3, alpha, escalation_id=_escalation(store, a3, "denied"))
    _decision(store, a4, alpha, escalation_id=_escalation(store, a4, "sent", cost=0.0024, sent_day=DAY_TWO))
    _decision(store, b1, beta, outcome="user_chose_cloud")
    return store, alpha, beta


def test_the_report_matches_the_log(log):
    store, alpha, beta = log

    report = build_report(store)

    tasks = {task.task_id: task for task in report.tasks}
    assert [task.task_id for task in report.tasks] == [alpha, beta, None]
    a, b, unassigned = tasks[alpha], tasks[beta], tasks[None]
    assert (a.requests, a.imported, a.served, a.specialist, a.generalist, a.cloud) == (6, 1, 5, 2, 2, 1)
    assert (a.share, b.share, unassigned.share) == (0.6667, 0.2222, 0.1111)
    assert (a.proposed_cloud, a.thumbs_up, a.thumbs_down, a.satisfaction) == (2, 1, 1, 0.5)
    assert (a.local_prompt_tokens, a.local_completion_tokens) == (700, 350)
    assert a.saved_usd == pytest.approx((700 * 2 + 350 * 8) / 1e6)
    assert a.spend_usd == pytest.approx(0.0024)
    assert (a.replaceable, a.replaceability) == (2, 0.4)
    assert (a.adapter_id is not None, a.examples, a.keywords) == (True, ["alpha example"], ["alpha"])
    assert (b.requests, b.served, b.generalist, b.replaceable, b.replaceability, b.spend_usd) == (
        2,
        2,
        2,
        1,
        0.5,
        0,
    )
    assert b.saved_usd == pytest.approx((60 * 2 + 60 * 8) / 1e6)
    assert (unassigned.label, unassigned.requests, unassigned.replaceability) == ("(no task)", 1, 1.0)

    totals = report.totals
    assert (totals["requests"], totals["served"], totals["imported"], totals["tasks"]) == (9, 8, 1, 2)
    assert (totals["specialist"], totals["generalist"], totals["cloud"]) == (2, 5, 1)
    assert (totals["local_share"], totals["replaceable"], totals["replaceability"]) == (0.875, 4, 0.5)
    assert totals["saved_usd"] == pytest.approx(0.0048)
    assert totals["spend_usd"] == pytest.approx(0.0024)
    assert report.provider["name"] == "paid"

    days = {day.day: day for day in report.days}
    assert list(days) == [DAY_ONE, DAY_TWO]
    assert (days[DAY_ONE].requests, days[DAY_ONE].local, days[DAY_ONE].local_share) == (3, 3, 1.0)
    assert (days[DAY_TWO].requests, days[DAY_TWO].local, days[DAY_TWO].local_share) == (5, 4, 0.8)
    assert days[DAY_ONE].saved_usd == pytest.approx((300 * 2 + 150 * 8) / 1e6)
    assert days[DAY_TWO].saved_usd == pytest.approx((460 * 2 + 260 * 8) / 1e6)
    assert (days[DAY_ONE].spend_usd, days[DAY_TWO].spend_usd) == (0, pytest.approx(0.0024))


def test_without_prices_savings_are_left_unpriced(log, understudy_home):
    store = log[0]
    save_cloud_config(
        CloudConfig(providers={"free": Provider("free", "http://127.0.0.1:1/v1", "m")}, active="free")
    )

    report = build_report(store)

    assert report.provider is None and report.totals["saved_usd"] is None
    assert "not priced" in to_markdown(report)


def test_markdown_and_html_carry_the_same_figures(log):
    store, alpha, _ = log
    report = build_report(store)

    markdown = to_markdown(report)
    page = to_html(report)

    assert f"| #{alpha} alpha | 6 | 67% | 2 | 2 | 1 | 50% | $0.0042 | $0.0024 | 40% |" in markdown
    assert "| 2026-01-02 | 5 | 80% | $0.0024 | $0.0030 |" in markdown
    assert page.startswith("<!doctype html>") and "</html>" in page
    assert f"<td>#{alpha} alpha</td><td>6</td><td>67%</td>" in page
    assert page.count("<rect") == 2 * len(report.days)
