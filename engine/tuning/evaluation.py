"""The evaluation gate (S6, iterate): an adapter serves a task only if it measurably helps and harms
nothing else.

Two measurements, both through llama.cpp on the quantised base exactly as the adapter will be served
(greedy decoding, temperature 0, a fixed seed, short answers):

- **Task score**, on the dataset's validation split. Each example's last assistant message is the
  reference; the messages before it are the prompt. The task is scored by what its user gets, with one
  measure chosen from its references (``choose_measure``):

  - ``json_fields`` when every reference is JSON: 1 when the answer holds valid JSON whose fields all
    equal the reference's (strings compared after normalising), else 0. A record with one field
    wrong is of no use to whoever parses it, so it earns nothing.
  - ``exact`` when every reference is short (one line, at most ``SHORT_ANSWER_CHARS``): 1 for an exact
    match after normalising (case, spacing, surrounding quotes, final punctuation), else 0. A date or a
    label that is nearly right is wrong.
  - ``similarity`` for longer free text: the token F1 (SQuAD-style overlap of the two bags of words),
    1 for an exact match.

  The task score is the mean, and the measure's name is recorded beside it.
- **General score**, on a regression set shipped in ``resources/general_eval.jsonl``: short questions
  of every kind (facts, arithmetic, word tasks, instructions) that the default base answers right, and
  still answers right under four small random LoRA adapters (normal weights, std 0.02, rank 8): items
  the base gets right only by a hair flip under any change at all, and would make the gate measure
  noise. An answer passes when it contains one of the item's accepted words; the score is the share
  that pass. It guards against the failure a hand test here showed: a tuned model that answers every
  question with its trained phrase.

``gate`` promotes a candidate only if its task score is strictly higher than the base's and than the
active adapter's, and its general score is no more than ``GENERAL_TOLERANCE`` (10 points) below the
base's.
"""

from __future__ import annotations

import json
import re
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.backends import Backend, GenerationOptions, Message, drain
from engine.errors import TrainingCancelled, TuningError
from engine.eval_sets import read_jsonl
from engine.paths import shipped_file

GENERAL_SET = "resources/general_eval.jsonl"
SHORT_ANSWER_CHARS = 40
EXACT, JSON_FIELDS, SIMILARITY = "exact", "json_fields", "similarity"
# What each measure is called in a sentence ("task 69% by exact match").
MEASURE_NAMES = {EXACT: "exact match", JSON_FIELDS: "JSON field match", SIMILARITY: "similarity"}
GENERAL_TOLERANCE = 0.10
GENERAL_MAX_TOKENS = 48
SEED = 0
MISTAKES_KEPT = 5

Progress = Callable[[int, int], None]


# Scoring one answer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerScore:
    """How one answer compares with its reference; ``score`` is in [0, 1]."""

    score: float
    exact: bool
    json_valid: bool | None = None
    field_match: float | None = None
    similarity: float | None = None


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding quotes or final punctuation: "Paris." equals "paris"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    return text.strip("\"'`").rstrip(".!;:,").strip()


def token_f1(prediction: str, reference: str) -> float:
    """The harmonic mean of word precision and recall between two answers (SQuAD's F1)."""
    predicted = re.findall(r"\w+", normalise(prediction))
    expected = re.findall(r"\w+", normalise(reference))
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def choose_measure(references: list[str]) -> str:
    """The measure a task is scored by, from its references: ``json_fields`` when all are JSON,
    ``exact`` when all are short, ``similarity`` otherwise."""
    if references and all(isinstance(_as_json(text), dict | list) for text in references):
        return JSON_FIELDS
    if references and all(_is_short(text) for text in references):
        return EXACT
    return SIMILARITY


def _is_short(text: str) -> bool:
    text = text.strip()
    return len(text) <= SHORT_ANSWER_CHARS and "\n" not in text


def score_answer(prediction: str, reference: str, measure: str = SIMILARITY) -> AnswerScore:
    """Score an answer by ``measure``; every measure also records exact match and, for JSON, validity
    and the share of fields reproduced, so a report can say how close a wrong answer came."""
    expected = _as_json(reference)
    if isinstance(expected, dict | list):
        scored = _score_json(prediction, expected)
        if measure == SIMILARITY:
            return scored
        return replace(scored, score=float(scored.exact))
    if normalise(prediction) == normalise(reference):
        return AnswerScore(score=1.0, exact=True, similarity=1.0)
    similarity = token_f1(prediction, reference)
    return AnswerScore(score=similarity if measure == SIMILARITY else 0.0, exact=False, similarity=similarity)


def _as_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _first_json_value(text: str) -> tuple[bool, Any]:
    """The first JSON object or array in ``text`` (a model may wrap it in words or a code fence)."""
    decoder = json.JSONDecoder()
    for start, character in enumerate(text):
        if character in "{[":
            try:
                return True, decoder.raw_decode(text, start)[0]
            except ValueError:
                continue
    return False, None


def _same_value(predicted: Any, expected: Any) -> bool:
    if isinstance(expected, str) and isinstance(predicted, str):
        return normalise(predicted) == normalise(expected)
    if isinstance(expected, bool) or isinstance(predicted, bool):
        return predicted is expected
    if isinstance(expected, int | float) and isinstance(predicted, int | float):
        return abs(predicted - expected) <= 1e-9 * max(1.0, abs(expected))
    return predicted == expected


def _score_json(prediction: str, expected: dict | list) -> AnswerScore:
    valid, predicted = _first_json_value(prediction)
    if not valid:
        return AnswerScore(score=0.0, exact=False, json_valid=False, field_match=0.0)
    if isinstance(expected, dict) and expected:
        matched = isinstance(predicted, dict) and sum(
            key in predicted and _same_value(predicted[key], value) for key, value in expected.items()
        )
        field_match = (matched or 0) / len(expected)
    else:
        field_match = float(_same_value(predicted, expected))
    exact = field_match == 1.0 and (
        not isinstance(expected, dict) or (isinstance(predicted, dict) and set(predicted) == set(expected))
    )
    return AnswerScore(score=field_match, exact=exact, json_valid=True, field_match=field_match)


# The task score ------------------------------------------------------------------------------------


@dataclass
class TaskScore:
    """A model's (and adapter's) scores on a task's validation examples."""

    examples: int
    score: float
    exact_match: float
    measure: str = SIMILARITY  # records from before measures were chosen scored similarity
    json_examples: int = 0
    json_valid: float | None = None
    field_match: float | None = None
    similarity: float | None = None
    seconds: float = 0.0
    mistakes: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return _rounded(asdict(self))


def split_example(messages: list[Message]) -> tuple[list[Message], str]:
    """The prompt (every message before the last answer) and the reference answer."""
    if not messages or messages[-1]["role"] != "assistant":
        raise TuningError("An evaluation example must end with the assistant's answer.")
    return messages[:-1], messages[-1]["content"]


def answer_budget(reference: str) -> int:
    """Enough new tokens for an answer as long as the reference (about 2 characters a token at worst)."""
    return max(16, min(256, len(reference) // 2 + 8))


def evaluate_task(
    backend: Backend,
    records: list[list[Message]],
    adapter: Path | None = None,
    cancel: threading.Event | None = None,
    on_progress: Progress | None = None,
) -> TaskScore:
    """Score ``backend`` (plus ``adapter``) on chat records whose last message is the reference, by the
    measure the references call for (the same for every contender, as they share the records)."""
    if not records:
        raise TuningError("There are no validation examples to evaluate on; build a bigger dataset.")
    measure = choose_measure([split_example(messages)[1] for messages in records])
    started = time.perf_counter()
    scores: list[AnswerScore] = []
    mistakes: list[dict[str, str]] = []
    for index, messages in enumerate(records):
        _stop_if_cancelled(cancel)
        prompt, reference = split_example(messages)
        options = GenerationOptions(max_tokens=answer_budget(reference), temperature=0.0, seed=SEED)
        answer = drain(backend.stream_chat(prompt, options, adapter=adapter)).text.strip()
        scored = score_answer(answer, reference, measure)
        scores.append(scored)
        if not scored.exact and len(mistakes) < MISTAKES_KEPT:
            mistakes.append({"prompt": prompt[-1]["content"], "expected": reference, "answer": answer})
        if on_progress:
            on_progress(index + 1, len(records))
    json_scores = [s for s in scores if s.json_valid is not None]
    text_scores = [s for s in scores if s.similarity is not None]
    return TaskScore(
        examples=len(scores),
        score=_mean(s.score for s in scores),
        exact_match=_mean(float(s.exact) for s in scores),
        measure=measure,
        json_examples=len(json_scores),
        json_valid=_mean(float(s.json_valid) for s in json_scores) if json_scores else None,
        field_match=_mean(s.field_match for s in json_scores) if json_scores else None,
        similarity=_mean(s.similarity for s in text_scores) if text_scores else None,
        seconds=time.perf_counter() - started,
        mistakes=mistakes,
    )


# The general regression set ------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneralItem:
    prompt: str
    reference: str
    accept: tuple[str, ...]

    def passes(self, answer: str) -> bool:
        """Whether ``answer`` contains an accepted word (as a whole word; a number not inside another)."""
        for word in self.accept:
            tail = r"(?![\w.]*\d)" if word[-1].isdigit() else ""
            if re.search(rf"(?<!\w){re.escape(word)}{tail}", answer, re.IGNORECASE):
                return True
        return False


@dataclass
class GeneralScore:
    items: int
    passed: int
    score: float
    seconds: float = 0.0
    failed_prompts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return _rounded(asdict(self))


def load_general_set(path: Path | None = None) -> list[GeneralItem]:
    path = path or shipped_file(GENERAL_SET)
    items = []
    for number, value in read_jsonl(path, "general regression set"):
        try:
            items.append(GeneralItem(value["prompt"], value["reference"], tuple(value["accept"])))
        except (KeyError, TypeError) as error:
            raise TuningError(
                f"{path}, line {number} needs a prompt, a reference and a list of accepted words."
            ) from error
    return items


def evaluate_general(
    backend: Backend,
    adapter: Path | None = None,
    items: list[GeneralItem] | None = None,
    cancel: threading.Event | None = None,
    on_progress: Progress | None = None,
) -> GeneralScore:
    """The share of the regression set ``backend`` (plus ``adapter``) still answers right.

    An answer stops as soon as it contains an accepted word: the verdict is known, and the rest would
    only cost time.
    """
    items = items if items is not None else load_general_set()
    options = GenerationOptions(max_tokens=GENERAL_MAX_TOKENS, temperature=0.0, seed=SEED)
    started = time.perf_counter()
    failed: list[str] = []
    for index, item in enumerate(items):
        _stop_if_cancelled(cancel)
        if not item.passes(_general_answer(backend, item, options, adapter)):
            failed.append(item.prompt)
        if on_progress:
            on_progress(index + 1, len(items))
    passed = len(items) - len(failed)
    return GeneralScore(
        items=len(items),
        passed=passed,
        score=passed / len(items) if items else 0.0,
        seconds=time.perf_counter() - started,
        failed_prompts=failed,
    )


def _general_answer(
    backend: Backend, item: GeneralItem, options: GenerationOptions, adapter: Path | None
) -> str:
    """The answer to one regression item, cut short once it contains an accepted word."""
    answered = threading.Event()
    pieces: list[str] = []

    def listen(piece: str) -> None:
        pieces.append(piece)
        if item.passes("".join(pieces)):
            answered.set()

    messages = [{"role": "user", "content": item.prompt}]
    drain(backend.stream_chat(messages, options, cancel=answered, adapter=adapter), listen)
    return "".join(pieces)


# The gate ------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """One contender measured: the base, the candidate adapter or the adapter active now."""

    role: str  # base | candidate | active
    model_id: str
    adapter_id: int | None
    task: TaskScore
    general: GeneralScore | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "model_id": self.model_id,
            "adapter_id": self.adapter_id,
            "task": self.task.as_dict(),
            "general": None if self.general is None else self.general.as_dict(),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Evaluation:
        general = record.get("general")
        return cls(
            role=record["role"],
            model_id=record["model_id"],
            adapter_id=record["adapter_id"],
            task=TaskScore(**record["task"]),
            general=None if general is None else GeneralScore(**general),
        )


@dataclass(frozen=True)
class TaskFigures:
    """The task scores the gate compared: the base's, the candidate's and the active adapter's, all by
    one ``measure``."""

    base: float
    candidate: float
    active: float | None
    examples: int
    measure: str = SIMILARITY  # figures from before measures were chosen are similarity scores

    @property
    def measure_name(self) -> str:
        return MEASURE_NAMES.get(self.measure, self.measure)


@dataclass(frozen=True)
class GeneralFigures:
    """The general-set scores the gate compared, and how far below the base the candidate may fall."""

    base: float
    candidate: float
    tolerance: float
    items: int


@dataclass(frozen=True)
class GateFigures:
    task: TaskFigures
    general: GeneralFigures

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> GateFigures:
        return cls(TaskFigures(**record["task"]), GeneralFigures(**record["general"]))


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str]
    figures: GateFigures

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> GateDecision:
        return cls(record["promote"], list(record["reasons"]), GateFigures.from_dict(record["figures"]))


@dataclass(frozen=True)
class AdapterEvaluation:
    """What an adapter's evaluation recorded: each contender measured, and the gate's decision."""

    base: Evaluation | None = None
    candidate: Evaluation | None = None
    active: Evaluation | None = None
    gate: GateDecision | None = None

    @property
    def passed(self) -> bool:
        return self.gate is not None and self.gate.promote

    @property
    def measure(self) -> str | None:
        """The name of the measure the task was scored by (None before any evaluation)."""
        return None if self.gate is None else self.gate.figures.task.measure_name

    @property
    def verdict(self) -> str:
        """The gate's word for it: passed, rejected, or not evaluated."""
        if self.gate is None:
            return "not evaluated"
        return "passed" if self.gate.promote else "rejected"

    @property
    def reasons(self) -> str:
        """The gate's reasons as one sentence ("" before any evaluation)."""
        return "" if self.gate is None else "; ".join(self.gate.reasons)

    def as_dict(self) -> dict[str, Any]:
        """The record as stored (``adapters.eval_json``): only what was measured."""
        record: dict[str, Any] = {
            role: measured.as_dict()
            for role, measured in (
                ("base", self.base),
                ("candidate", self.candidate),
                ("active", self.active),
            )
            if measured is not None
        }
        if self.gate is not None:
            record["gate"] = self.gate.as_dict()
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> AdapterEvaluation:
        measured = {
            role: Evaluation.from_dict(record[role])
            for role in ("base", "candidate", "active")
            if role in record
        }
        gate = record.get("gate")
        return cls(**measured, gate=None if gate is None else GateDecision.from_dict(gate))


def gate(
    candidate: Evaluation,
    base: Evaluation,
    active: Evaluation | None,
    tolerance: float = GENERAL_TOLERANCE,
) -> GateDecision:
    """Promote only if the candidate beats the base and the active adapter on the task and stays
    within ``tolerance`` of the base on the general set (both measured on the candidate's base)."""
    if candidate.general is None or base.general is None:
        raise TuningError("The gate needs the general-set scores of both the candidate and its base.")
    measure = candidate.task.measure
    if any(other.task.measure != measure for other in (base, active) if other is not None):
        raise TuningError("The gate compares task scores by one measure; evaluate every contender anew.")
    named = f"task ({MEASURE_NAMES.get(measure, measure)})"
    reasons: list[str] = []
    promote = True
    task, general = candidate.task.score, candidate.general.score
    if task > base.task.score:
        reasons.append(f"{named}: {_percent(task)} beats the base's {_percent(base.task.score)}")
    else:
        promote = False
        reasons.append(f"{named}: {_percent(task)} does not beat the base's {_percent(base.task.score)}")
    if active is not None:
        if task > active.task.score:
            reasons.append(
                f"{named}: {_percent(task)} beats active adapter {active.adapter_id}'s "
                f"{_percent(active.task.score)}"
            )
        else:
            promote = False
            reasons.append(
                f"{named}: {_percent(task)} does not beat active adapter {active.adapter_id}'s "
                f"{_percent(active.task.score)}"
            )
    floor = base.general.score - tolerance
    if general >= floor - 1e-9:
        reasons.append(
            f"general: {_percent(general)} is within {tolerance * 100:.0f} points of the base's "
            f"{_percent(base.general.score)}"
        )
    else:
        promote = False
        reasons.append(
            f"general: {_percent(general)} is more than {tolerance * 100:.0f} points below the base's "
            f"{_percent(base.general.score)}: the adapter breaks unrelated prompts"
        )
    figures = GateFigures(
        TaskFigures(
            base=round(base.task.score, 4),
            candidate=round(task, 4),
            active=None if active is None else round(active.task.score, 4),
            examples=candidate.task.examples,
            measure=measure,
        ),
        GeneralFigures(
            base=round(base.general.score, 4),
            candidate=round(general, 4),
            tolerance=tolerance,
            items=candidate.general.items,
        ),
    )
    return GateDecision(promote=promote, reasons=reasons, figures=figures)


def _percent(score: float) -> str:
    return f"{score * 100:.1f}%"


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _rounded(record: dict[str, Any]) -> dict[str, Any]:
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in record.items()}


def _stop_if_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TrainingCancelled("Evaluation stopped because the job was cancelled.")
