"""The tool-choice benchmark: its eval set is well labelled, and it runs on the real model."""

from __future__ import annotations

import json

import jsonschema
import pytest

from engine.bench.tools import EVAL_SET, MODES, arguments_match, bench_tools, cannot_become_json_object
from engine.paths import shipped_file
from engine.tools import registered_tools
from engine.tools.calling import NO_TOOL


def eval_lines() -> list[dict]:
    return [json.loads(line) for line in shipped_file(EVAL_SET).read_text(encoding="utf-8").splitlines()]


def test_every_eval_line_names_a_registered_tool_with_arguments_its_schema_accepts():
    tools = registered_tools()
    lines = eval_lines()
    assert len(lines) >= 60
    for line in lines:
        assert set(line) == {"request", "tool", "arguments"}, line
        if line["tool"] == NO_TOOL:
            assert line["arguments"] == {}, line
            continue
        assert line["tool"] in tools, line
        schema = tools[line["tool"]].parameters
        if set(schema.get("required", ())) <= set(line["arguments"]):
            jsonschema.validate(line["arguments"], schema)
        else:  # only the key arguments are labelled: each must still be a valid value
            jsonschema.validate(line["arguments"], {**schema, "required": []})


def test_every_tool_and_none_has_enough_eval_requests():
    counts = {name: 0 for name in [*registered_tools(), NO_TOOL]}
    for line in eval_lines():
        counts[line["tool"]] += 1
    assert all(count >= 8 for count in counts.values()), counts
    assert counts[NO_TOOL] >= 10


@pytest.mark.parametrize(
    ("expected", "chosen", "matches"),
    [
        ({"expression": "23.5% of 1840"}, {"expression": "0.235 * 1840"}, True),
        ({"expression": "2**16"}, {"expression": "2^16"}, True),
        ({"expression": "17 * 23"}, {"expression": "17 + 23"}, False),
        (
            {"value": 5, "from_unit": "mi", "to_unit": "km"},
            {"value": 5.0, "from_unit": "miles", "to_unit": "KM"},
            True,
        ),
        ({"from_unit": "MB"}, {"from_unit": "Mb"}, False),
        ({"query": "Project Falcon"}, {"query": " project falcon ", "max_results": 5}, True),
        ({"argv": ["git", "status"]}, {"argv": ["git", "status", "-s"]}, False),
        ({"overwrite": True}, {"overwrite": 1}, False),
        ({"url": "https://example.com"}, {}, False),
    ],
)
def test_arguments_match_compares_values_not_spelling(expected, chosen, matches):
    assert arguments_match(expected, chosen, registered_tools()) is matches


@pytest.mark.parametrize(
    ("text", "hopeless"),
    [
        ("", False),
        ("  \n", False),
        ('{"tool": "calc', False),
        ('{"tool": "none"}\n ', False),
        ("Sure! Here", True),
        ("```json\n{", True),
        ('{"tool": "none"} I chose', True),
    ],
)
def test_a_reply_is_given_up_only_when_no_continuation_could_parse(text, hopeless):
    assert cannot_become_json_object(text) is hopeless


@pytest.mark.slow
def test_bench_on_the_real_model_reports_every_mode_and_the_grammar_always_gives_valid_json():
    figures = bench_tools(limit=3)
    assert figures["model_id"] == "smollm2-135m-instruct"
    assert figures["requests"] == 3
    for mode in MODES:
        score = figures[mode]
        assert score["requests"] == 3
        assert 0 <= score["tool_correct"] <= score["valid_json"] <= 3
        assert score["tool_accuracy"] == round(score["tool_correct"] / 3, 4)
        assert score["valid_json_rate"] == round(score["valid_json"] / 3, 4)
        assert score["arguments_correct"] <= score["arguments_checked"] <= score["tool_correct"]
        if score["arguments_checked"]:
            assert 0.0 <= score["argument_accuracy"] <= 1.0
        else:
            assert score["argument_accuracy"] is None
        assert score["cut_short"] + score["valid_json"] <= 3
        if score["cut_short"] == 3:
            assert score["p50_ms"] is None
        if score["p50_ms"] is not None:
            assert score["p50_ms"] > 0
        assert sum(tool["requests"] for tool in score["per_tool"].values()) == 3
        assert len(score["mistakes"]) == 3 - score["arguments_correct"] - (
            score["tool_correct"] - score["arguments_checked"]
        )
    for mode in ("with_grammar", "by_meaning"):
        assert figures[mode]["valid_json_rate"] == 1.0
        assert figures[mode]["cut_short"] == 0
