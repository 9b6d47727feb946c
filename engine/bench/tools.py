"""How well tools are chosen and called: accuracy on the labelled eval set in three modes.

``with_grammar`` and ``without_grammar``: the model chooses the tool (or none) and its arguments, with
and without the grammar. ``by_meaning`` (what ``use_tools`` does by default): the tool is picked by the
embedding of the request (``ToolShortlist``), then the model fills in its arguments under the grammar.
Each request is asked once, exactly as ``use_tools`` first asks it (its system prompt and options, no
repair round), so the figures say how often the first choice is right. A labelled argument
matches when the values are equal: numbers within 1e-6, strings case-insensitively after stripping,
lists item by item, expressions by what the calculator makes of them and units by what the converter
makes of them (so "miles" matches "mi"). Only the labelled arguments are compared; extra ones are free.

A reply is stopped as soon as it can no longer parse as a JSON object (it does not start with "{", or a
complete value is followed by more text): its verdict is known, and a small model left alone rambles on
to the token limit. So ``p50_ms`` is over the replies that ran to their end, and ``cut_short`` counts
the others.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import backends, catalog
from engine.backends import Backend, Completion, Message, drain
from engine.errors import ToolError, UnderstudyError
from engine.eval_sets import read_jsonl
from engine.paths import shipped_file
from engine.tools import Tool, ToolContext, registered_tools
from engine.tools.builtin.units import convert_units
from engine.tools.calling import (
    CHOICE_OPTIONS,
    NO_TOOL,
    ToolShortlist,
    choice_messages,
    choice_schema,
    parse_choice,
)

EVAL_SET = "resources/tool_eval.jsonl"
NUMBER_TOLERANCE = 1e-6
UNIT_ARGUMENTS = frozenset({"from_unit", "to_unit"})
MODES = ("with_grammar", "without_grammar", "by_meaning")
MISTAKE_REPLY_CHARS = 300


@dataclass
class ModeScore:
    """The tallies of one mode (with or without the grammar) over the eval set."""

    requests: int = 0
    valid_json: int = 0
    tool_correct: int = 0
    arguments_checked: int = 0
    arguments_correct: int = 0
    cut_short: int = 0
    milliseconds: list[float] = field(default_factory=list)
    labelled_per_tool: Counter[str] = field(default_factory=Counter)
    correct_per_tool: Counter[str] = field(default_factory=Counter)
    mistakes: list[dict[str, Any]] = field(default_factory=list)

    def record(self, example: dict[str, Any], completion: Completion | None, tools: dict[str, Tool]) -> None:
        """Score one reply; one that ``parse_choice`` rejects is both invalid and a wrong choice.

        ``completion`` is None when meaning picked no tool, so the model was not asked at all.
        """
        self.requests += 1
        if completion is None:
            reply = json.dumps({"tool": NO_TOOL})
        else:
            if completion.finish_reason == "cancelled":
                self.cut_short += 1
            else:
                self.milliseconds.append(completion.duration_ms)
            reply = completion.text.strip()
        self.labelled_per_tool[example["tool"]] += 1
        try:
            choice = parse_choice(reply, tools)
        except ToolError:
            self._mistake(example, reply)
            return
        self.valid_json += 1
        if choice.tool != example["tool"]:
            self._mistake(example, reply)
            return
        self.tool_correct += 1
        self.correct_per_tool[example["tool"]] += 1
        if choice.tool == NO_TOOL:
            return
        self.arguments_checked += 1
        if arguments_match(example["arguments"], choice.arguments, tools):
            self.arguments_correct += 1
        else:
            self._mistake(example, reply)

    def _mistake(self, example: dict[str, Any], reply: str) -> None:
        self.mistakes.append(
            {
                "request": example["request"],
                "expected": {"tool": example["tool"], "arguments": example["arguments"]},
                "reply": reply[:MISTAKE_REPLY_CHARS],
            }
        )

    def summary(self) -> dict[str, Any]:
        return {
            "tool_accuracy": _rate(self.tool_correct, self.requests),
            "argument_accuracy": _rate(self.arguments_correct, self.arguments_checked),
            "valid_json_rate": _rate(self.valid_json, self.requests),
            "requests": self.requests,
            "tool_correct": self.tool_correct,
            "arguments_checked": self.arguments_checked,
            "arguments_correct": self.arguments_correct,
            "valid_json": self.valid_json,
            "cut_short": self.cut_short,
            "p50_ms": round(statistics.median(self.milliseconds), 2) if self.milliseconds else None,
            "per_tool": {
                tool: {"requests": count, "tool_accuracy": _rate(self.correct_per_tool[tool], count)}
                for tool, count in sorted(self.labelled_per_tool.items())
            },
            "mistakes": self.mistakes,
        }


def bench_tools(model_id: str | None = None, path: Path | None = None, limit: int | None = None) -> dict:
    """Choose a tool for each labelled request in every mode and score it.

    The modes rotate which goes first, so none always finds the prompt already in the cache.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    tools = registered_tools()
    examples = load_eval_set(path or shipped_file(EVAL_SET), tools)[:limit]
    entry = catalog.load_catalog().get(model_id)
    backend = backends.load(entry)
    schema = choice_schema(tools)
    shortlist = ToolShortlist(tools)
    scores = {mode: ModeScore() for mode in MODES}
    for index, example in enumerate(examples):
        # Exactly what use_tools sends: instructions, worked examples, then the request.
        request: list[Message] = [{"role": "user", "content": example["request"]}]
        messages = choice_messages(tools, request)
        shift = index % len(MODES)
        for mode in MODES[shift:] + MODES[:shift]:
            if mode == "by_meaning":
                picked, _similarity = shortlist.pick(example["request"])
                completion = None
                if picked != NO_TOOL:
                    offered = {picked: tools[picked]}
                    completion = _choose(
                        backend, choice_messages(offered, request, False), choice_schema(offered, False)
                    )
            else:
                completion = _choose(backend, messages, schema if mode == "with_grammar" else None)
            scores[mode].record(example, completion, tools)
    return {
        "model_id": entry.id,
        "encoder": shortlist.encoder.name,
        "requests": len(examples),
        **{mode: score.summary() for mode, score in scores.items()},
    }


def _choose(backend: Backend, messages: list[Message], json_schema: dict | None) -> Completion:
    """One choice, as ``use_tools`` asks for it, stopped once the reply can no longer parse."""
    cancel = threading.Event()
    pieces: list[str] = []

    def watch(piece: str) -> None:
        pieces.append(piece)
        if cannot_become_json_object("".join(pieces)):
            cancel.set()

    return drain(backend.stream_chat(messages, CHOICE_OPTIONS, cancel, json_schema=json_schema), watch)


def cannot_become_json_object(text: str) -> bool:
    """Whether no continuation of ``text`` could make it, once stripped, parse as one JSON object."""
    reply = text.lstrip()
    if not reply:
        return False
    if not reply.startswith("{"):
        return True
    try:
        _, end = json.JSONDecoder().raw_decode(reply)
    except json.JSONDecodeError:
        return False
    return bool(reply[end:].strip())


def load_eval_set(path: Path, tools: dict[str, Tool]) -> list[dict[str, Any]]:
    """The labelled requests; a line naming an unknown tool is an error, not a silent miss."""
    examples = []
    for number, example in read_jsonl(path, "tool eval set"):
        if not (
            isinstance(example, dict)
            and isinstance(example.get("request"), str)
            and isinstance(example.get("tool"), str)
            and isinstance(example.get("arguments"), dict)
        ):
            raise UnderstudyError(
                f"{path}, line {number}: each line must be a JSON object with 'request' (text), "
                "'tool' (a name) and 'arguments' (an object)."
            )
        if example["tool"] != NO_TOOL and example["tool"] not in tools:
            raise UnderstudyError(
                f"{path}, line {number}: no tool '{example['tool']}' is registered; "
                f"use one of {', '.join(tools)} or {NO_TOOL}."
            )
        examples.append(example)
    return examples


def arguments_match(expected: dict[str, Any], chosen: dict[str, Any], tools: dict[str, Tool]) -> bool:
    """Whether every labelled argument was given with a matching value."""
    return all(
        name in chosen and _argument_matches(name, value, chosen[name], tools)
        for name, value in expected.items()
    )


def _argument_matches(name: str, expected: Any, chosen: Any, tools: dict[str, Tool]) -> bool:
    if isinstance(expected, str) and isinstance(chosen, str):
        if name == "expression":
            expected_value, chosen_value = _calculate(expected, tools), _calculate(chosen, tools)
            if expected_value is not None and chosen_value is not None:
                return _values_match(expected_value, chosen_value)
        elif name in UNIT_ARGUMENTS:
            try:
                return abs(convert_units(1.0, expected, chosen) - 1.0) <= NUMBER_TOLERANCE
            except ToolError:
                pass
    return _values_match(expected, chosen)


def _calculate(expression: str, tools: dict[str, Tool]) -> int | float | None:
    """The calculator tool's value for ``expression``, or None when it has none."""
    calculator = tools.get("calculator")
    if calculator is None:
        return None
    try:
        return calculator.run({"expression": expression}, ToolContext()).data["value"]
    except ToolError:
        return None


def _values_match(expected: Any, chosen: Any) -> bool:
    if isinstance(expected, bool) or isinstance(chosen, bool):
        return type(expected) is type(chosen) and expected == chosen
    if isinstance(expected, int | float) and isinstance(chosen, int | float):
        return abs(expected - chosen) <= NUMBER_TOLERANCE
    if isinstance(expected, str) and isinstance(chosen, str):
        return expected.strip().casefold() == chosen.strip().casefold()
    if isinstance(expected, list) and isinstance(chosen, list):
        return len(expected) == len(chosen) and all(map(_values_match, expected, chosen))
    return expected == chosen


def _rate(part: int, whole: int) -> float | None:
    """``part / whole`` to four places; None when nothing was counted."""
    return round(part / whole, 4) if whole else None
