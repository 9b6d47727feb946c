"""The loop bench's shortest run: one task's teacher log through discovery, one short tuning job, the
gate and routing, in the bench's own scratch data dir. Checks the figures' shape and that the gate
decided with a reason, not the accuracy targets (a few steps cannot reach them)."""

from __future__ import annotations

import pytest

from engine.bench.loop import TASKS, UNRELATED, bench_loop, examples


def test_the_synthetic_tasks_have_gold_answers_and_fresh_requests_are_new():
    taught = examples("date normalisation", 30, seed=0)
    fresh = examples("date normalisation", 10, seed=1, exclude={request for request, _ in taught})
    assert ("Normalise" in taught[0][0]) and len(taught[0][1]) == len("2026-03-03")
    assert not {request for request, _ in fresh} & {request for request, _ in taught}
    assert len(TASKS) >= 3


@pytest.mark.slow  # real-model work: training, export, evaluation and answers
@pytest.mark.timeout(1800)
def test_the_shortest_loop_trains_gates_and_routes(understudy_home):
    figures = bench_loop(tasks=1, requests=40, fresh=5, steps=20)

    task = figures["tasks"]["date normalisation"]
    assert task["clusters"], "discovery found no cluster for the task"
    for name in ("exact_before", "exact_after", "served_by_specialist"):
        assert 0.0 <= task[name] <= 1.0
    assert task["training_seconds"] > 0
    adapter = task["adapters"][0]
    assert adapter["status"] in ("active", "rejected")
    assert adapter["promoted"] == (adapter["status"] == "active")
    assert adapter["reasons"], "the gate recorded no reason"
    assert 0.0 <= adapter["general_before"] <= 1.0 and 0.0 <= adapter["general_after"] <= 1.0
    assert figures["unrelated"] == len(UNRELATED)
    assert 0.0 <= figures["unrelated_to_generalist"] <= 1.0
    assert 0.0 <= figures["mean_exact_after"] <= 1.0
    assert not (understudy_home / "understudy.db").exists(), "the bench wrote to the caller's data dir"
