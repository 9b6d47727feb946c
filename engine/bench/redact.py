"""How well redaction does on the labelled eval set: precision and recall per type, and its speed.

A predicted finding is a true positive when its type matches a labelled entity's and the spans overlap;
a labelled entity counts as found when some finding of its type overlaps it.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from engine.errors import UnderstudyError
from engine.eval_sets import read_jsonl
from engine.paths import shipped_file
from engine.redact import TYPES, redact

EVAL_SET = "resources/redaction_eval.jsonl"


def bench_redact(path: Path | None = None) -> dict:
    """Run ``redact()`` over every example and score it against the labels."""
    examples = _load(path or shipped_file(EVAL_SET))
    redact(examples[0]["text"])  # load the name lists before timing
    scores = {kind: {"labelled": 0, "found": 0, "predicted": 0, "correct": 0} for kind in TYPES}
    missed: list[dict] = []
    false_positives: list[dict] = []
    milliseconds: list[float] = []
    for example in examples:
        text = example["text"]
        started = time.perf_counter()
        findings = redact(text).findings
        milliseconds.append((time.perf_counter() - started) * 1000)
        labelled = _locate(text, example["entities"])
        for kind, start, end in labelled:
            scores[kind]["labelled"] += 1
            if any(f.type == kind and f.start < end and start < f.end for f in findings):
                scores[kind]["found"] += 1
            else:
                missed.append({"type": kind, "value": text[start:end], "text": text})
        for finding in findings:
            scores[finding.type]["predicted"] += 1
            if any(
                kind == finding.type and start < finding.end and finding.start < end
                for kind, start, end in labelled
            ):
                scores[finding.type]["correct"] += 1
            else:
                value = text[finding.start : finding.end]
                false_positives.append({"type": finding.type, "value": value, "text": text})
    totals = {key: sum(score[key] for score in scores.values()) for key in scores[TYPES[0]]}
    return {
        "examples": len(examples),
        "p50_ms": round(statistics.median(milliseconds), 3),
        "overall": _rates(totals),
        "types": {kind: _rates(score) for kind, score in scores.items()},
        "missed": missed,
        "false_positives": false_positives,
    }


def _rates(score: dict[str, int]) -> dict:
    precision = score["correct"] / score["predicted"] if score["predicted"] else 1.0
    recall = score["found"] / score["labelled"] if score["labelled"] else 1.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), **score}


def _load(path: Path) -> list[dict]:
    examples = []
    for number, example in read_jsonl(path, "redaction eval set"):
        try:
            example["text"], example["entities"]
        except (KeyError, TypeError) as error:
            raise UnderstudyError(
                f"{path}, line {number}: each line must be a JSON object with 'text' and 'entities' "
                f"({error})."
            ) from error
        examples.append(example)
    return examples


def _locate(text: str, entities: list[dict]) -> list[tuple[str, int, int]]:
    """Each labelled value's span, searched from the previous entity on, since labels are in text order."""
    spans = []
    cursor = 0
    for entity in entities:
        kind, value = entity["type"], entity["value"]
        if kind not in TYPES:
            raise UnderstudyError(f"Unknown redaction type {kind!r} in the eval set; use one of {TYPES}.")
        start = text.find(value, cursor)
        if start < 0:
            start = text.find(value)
        if start < 0:
            raise UnderstudyError(f"Labelled value {value!r} does not occur in its text {text!r}.")
        spans.append((kind, start, start + len(value)))
        cursor = start
    return spans
