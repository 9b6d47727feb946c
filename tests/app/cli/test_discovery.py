"""The discovery and routing commands, run as a user runs them: import, discover, route, tasks, report."""

from __future__ import annotations

import json

import pytest
from fake_backend import Reply
from task_log_sample import SAMPLE_PATH
from understudy_command import run_understudy


def _ok(*args: str, stdin: str | None = None) -> str:
    result = run_understudy(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_import_discover_route_pin_and_report(tmp_path):
    imported = _json_lines(_ok("logs", "import", "--jsonl", str(SAMPLE_PATH), "--json"))[0]
    again = _json_lines(_ok("logs", "import", "--jsonl", str(SAMPLE_PATH), "--json"))[0]
    assert (imported["records"], imported["turns"], again["records"], again["duplicates"]) == (
        350,
        350,
        0,
        350,
    )

    found = _json_lines(_ok("discover", "--keyword-labels", "--json"))[0]
    print(f"\ndiscover: {found['n_clusters']} tasks, outliers {found['outlier_share_before']} -> "
          f"{found['outlier_share_after']}")  # fmt: skip
    assert (found["n_requests"], found["n_clusters"]) == (350, 7)
    assert found["outlier_share_after"] <= 0.1

    listed = _json_lines(_ok("tasks", "--json"))
    haiku = next(task for task in listed if "haiku" in task["keywords"])
    assert len(listed) == 7 and haiku["pin"] == "auto"
    assert "haiku" in _ok("tasks")

    decisions = _json_lines(
        _ok("route", "--json", "-", stdin="Write a haiku about rain\n\nWhat is the capital of Peru?\n")
    )
    assert [set(decision) >= {"task_id", "label", "target", "distance", "reason", "decision_ms", "adapter_id"}
            for decision in decisions] == [True, True]  # fmt: skip
    assert (decisions[0]["task_id"], decisions[0]["target"]) == (haiku["id"], "generalist")
    assert (decisions[1]["task_id"], decisions[1]["target"]) == (None, "generalist")
    assert "no task is close" in _ok("route", "What is the capital of Peru?")

    assert _ok("tasks", "pin", str(haiku["id"]), "never_cloud").strip() == f"Task {haiku['id']}: never_cloud"
    pinned = _json_lines(_ok("route", "--json", "Compose a haiku about snow"))[0]
    assert pinned["pin"] == "never_cloud"
    refused = run_understudy("tasks", "pin", "9999", "auto")
    assert refused.returncode == 1 and "there is no task 9999" in refused.stderr

    markdown, page = tmp_path / "report.md", tmp_path / "report.html"
    report = _json_lines(_ok("report", "--json", "--markdown", str(markdown), "--html", str(page)))[0]
    assert report["totals"]["requests"] == 350 and report["totals"]["imported"] == 350
    assert sum(task["requests"] for task in report["tasks"]) == 350
    assert "haiku" in markdown.read_text(encoding="utf-8")
    assert page.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_discover_names_new_tasks_with_the_default_model(fake_model):
    fake_model.script(*[Reply("Haiku poems")] * 7)  # a name of its words only for the haiku task
    _ok("logs", "import", "--jsonl", str(SAMPLE_PATH))

    found = _json_lines(_ok("discover", "--json"))[0]

    labels = {cluster["label"] for cluster in found["clusters"] if "haiku" in cluster["keywords"]}
    keyword_labels = [
        cluster["label"] == ", ".join(cluster["keywords"][:3])
        for cluster in found["clusters"]
        if "haiku" not in cluster["keywords"]
    ]
    assert labels == {"Haiku poems"} and keyword_labels == [True] * (found["n_clusters"] - 1)
    assert len(fake_model.requests) == found["n_clusters"] == 7
    assert "Haiku poems" in _ok("tasks")


def test_a_malformed_import_is_refused_line_by_line(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": []}\nnot json\n', encoding="utf-8")

    result = run_understudy("logs", "import", "--jsonl", str(broken))

    assert result.returncode == 1
    assert "line 1: there is no user message" in result.stderr and "line 2:" in result.stderr


@pytest.mark.slow
def test_bench_route_reports_decision_time_against_time_to_first_token():
    """Slow: a benchmark, with the real model's time to first token as its yardstick."""
    figures = _json_lines(_ok("bench", "route", "--json", "--decisions", "60", "--turns", "1"))[0]

    print(f"\nbench route: {figures}")
    assert figures["encoder"] == "static-minilm-l6-v2-pca256"
    assert figures["decisions"] == 60
    assert 0 < figures["decision_ms_p50"] <= figures["decision_ms_p95"]
    assert figures["ttft_ms"] > 0
    assert figures["ratio_p50_to_ttft"] == pytest.approx(
        figures["decision_ms_p50"] / figures["ttft_ms"], rel=0.01
    )
    assert figures["tasks"] == 7 and figures["purity"] >= 0.9
