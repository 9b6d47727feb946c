"""S6, routing: send each request to the task's specialist, the generalist, or propose the cloud.

Before generating, ``Router.decide`` embeds the request and finds the nearest task centroid (cosine
distance). The request belongs to that task, and goes to its active specialist adapter if it has one,
when it lies within the task's radius (the rule discovery uses). That radius holds every request the
task was found from plus a margin for new wordings (see ``engine.discovery``), so a task's own
requests always reach its specialist, and a request past it is no task's: a narrow specialist is worse
than the generalist off its task. A task pinned ``always_ask_cloud`` gets target ``cloud``: a PROPOSAL
through the consent flow of ``engine.escalation``; nothing here ever sends anything.

After generating, ``Router.after_answer`` reads the answer's confidence, the mean log-probability of
its tokens, and advises proposing the cloud when it is below the task's threshold. ``calibrate`` sets
those thresholds from logged outcomes (see its docstring); until a task has enough of them the prior
``DEFAULT_CONFIDENCE_THRESHOLD`` applies (measured on SmolLM2-135M: fluent answers score -0.2 to
-0.6, garbled or wrong ones -0.9 to -1.2).

Pins: ``auto`` (the router decides), ``always_local`` (never proposes the cloud; the user can still
ask by hand), ``always_ask_cloud`` (proposes the cloud for every request of the task) and
``never_cloud`` (nothing of the task may go to the cloud, not even when asked by hand). The
local-only switch overrides every proposal.

The router holds no database connection: ``Router(store)`` reads tasks, pins, thresholds and active
adapters once, ``refresh(store)`` re-reads them, so one router serves every thread of the process.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import embeddings
from engine.discovery import TaskIndex
from engine.embeddings import Encoder
from engine.errors import DiscoveryError, EncoderError
from engine.store import Store, utc_now

PINS = ("auto", "always_local", "always_ask_cloud", "never_cloud")
TARGETS = ("specialist", "generalist", "cloud")
DEFAULT_CONFIDENCE_THRESHOLD = -1.0
BAD_OUTCOMES = ("user_chose_cloud", "escalation_disagreed", "tool_failed")
GOOD_OUTCOMES = ("user_kept_local", "escalation_agreed")
OUTCOMES = BAD_OUTCOMES + GOOD_OUTCOMES
MIN_OUTCOMES = 8  # per task (or pooled over all tasks) before a threshold is fitted
MIN_PER_CLASS = 2
DISAGREEMENT_OVERLAP = 0.3  # word overlap (Jaccard) below which a cloud answer disagrees with the local one
_WORD = re.compile(r"\w+")


@dataclass
class RouteDecision:
    """Where one request goes, and why; ``features`` is what ``record`` logs with it."""

    task_id: int | None
    task_label: str | None
    distance: float | None
    target: str
    adapter_id: int | None
    adapter_path: Path | None
    reason: str
    decision_ms: float
    features: dict[str, Any] = field(default_factory=dict)
    pin: str = "auto"
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    confidence: float | None = None  # set by ``after_answer``
    escalation_id: int | None = None  # set by ``escalate``
    encoder: str | None = None
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The stable keys of ``understudy route --json``."""
        return {
            "task_id": self.task_id,
            "label": self.task_label,
            "target": self.target,
            "distance": self.distance,
            "reason": self.reason,
            "decision_ms": self.decision_ms,
            "adapter_id": self.adapter_id,
            "pin": self.pin,
            "features": self.features,
        }


@dataclass
class Advice:
    """After an answer: whether to propose the cloud, from its confidence."""

    propose: bool
    confidence: float | None
    threshold: float
    reason: str


@dataclass
class _Specialist:
    adapter_id: int
    path: Path


class Router:
    """Routing decisions from an in-memory copy of the tasks, pins and active adapters.

    Building one reads them from the database; a router kept across turns (an ``Agent``'s) re-reads them
    only when ``refresh_if_changed`` sees that discovery, tuning, a pin or calibration changed them.
    """

    def __init__(self, store: Store, encoder: Encoder | None = None):
        self._given_encoder = encoder
        self.refresh(store)

    def refresh_if_changed(self, store: Store) -> bool:
        """Re-read what routing depends on if discovery, tuning, a pin or calibration changed it since;
        one small query otherwise, so a long-lived router (the app's) follows the database."""
        if _routing_state(store) == self._state:
            return False
        self.refresh(store)
        return True

    def refresh(self, store: Store) -> None:
        """Re-read tasks, pins, thresholds and active adapters (after discovery, tuning or a pin)."""
        from engine.tuning.adapters import active_for_task

        self._state = _routing_state(store)
        index = TaskIndex.load(store)
        specialists: dict[int, _Specialist] = {}
        for task_id in index.ids:
            adapter = active_for_task(store, task_id)
            if adapter is not None:
                specialists[task_id] = _Specialist(adapter.id, adapter.path)
        self.index = index
        self.specialists = specialists
        self.encoder: Encoder | None = None
        self.encoder_problem: str | None = None
        if index.encoder is None:
            return
        if self._given_encoder is not None and self._given_encoder.name == index.encoder:
            self.encoder = self._given_encoder
            return
        try:
            self.encoder = embeddings.load_encoder(index.encoder, build=False)
        except EncoderError as error:
            self.encoder_problem = str(error)

    @property
    def encoder_name(self) -> str | None:
        return self.index.encoder

    def decide(self, prompt: str) -> RouteDecision:
        """The target for ``prompt``, from its nearest task, that task's adapter and pin."""
        started = time.perf_counter()
        if self.encoder is None:
            reason = self.encoder_problem or "no tasks discovered yet (`understudy discover` finds them)"
            return _decision(None, None, None, "generalist", None, reason, started, {"n_tasks": 0})
        vector = self.encoder.encode([prompt])[0]
        encoder_ms = (time.perf_counter() - started) * 1000
        position, distance, second = self.index.nearest(vector)
        task_id, label = self.index.ids[position], self.index.labels[position]
        radius = self.index.radii[position]
        pin = self.index.pins[position]
        threshold = self.index.confidence_thresholds[position]
        specialist = self.specialists.get(task_id)
        features: dict[str, Any] = {
            "distance": round(distance, 4),
            "margin": None if second is None else round(second - distance, 4),
            "radius": round(radius, 4),
            "nearest_task_id": task_id,
            "pin": pin,
            "adapter_id": specialist.adapter_id if specialist else None,
            "encoder": self.encoder.name,
            "encoder_ms": round(encoder_ms, 3),
            "n_tasks": len(self.index.ids),
        }
        if distance > radius:
            reason = (
                f"no task is close: the nearest, '{label}', is at {distance:.2f} (its radius {radius:.2f})"
            )
            decision = _decision(None, None, distance, "generalist", None, reason, started, features)
        else:
            target, chosen, reason = self._target(label, distance, pin, specialist)
            decision = _decision(task_id, label, distance, target, chosen, reason, started, features)
            decision.pin = pin
            decision.confidence_threshold = DEFAULT_CONFIDENCE_THRESHOLD if threshold is None else threshold
        decision.encoder = self.encoder.name
        decision.vector = vector
        return decision

    def _target(
        self, label: str, distance: float, pin: str, specialist: _Specialist | None
    ) -> tuple[str, _Specialist | None, str]:
        local_target, local_reason = "generalist", f"task '{label}' has no specialist yet"
        chosen = None
        if specialist is not None:
            local_target, chosen = "specialist", specialist
            local_reason = f"task '{label}' (distance {distance:.2f}) has specialist {specialist.adapter_id}"
        if pin != "always_ask_cloud":
            return local_target, chosen, local_reason + ("" if pin == "auto" else f"; pinned {pin}")
        unavailable = _cloud_unavailable()
        if unavailable:
            return local_target, chosen, f"task '{label}' is pinned to ask for the cloud, but {unavailable}"
        return (
            "cloud",
            None,
            f"task '{label}' is pinned to ask for the cloud (nothing is sent without consent)",
        )

    def after_answer(self, decision: RouteDecision, completion: Any) -> Advice:
        """Whether to propose the cloud for an answer, from ``completion.mean_logprob``.

        Records the confidence on ``decision``. Never proposes for a pinned task, a decision that
        already went to the cloud, under local-only, or without a confidence to judge by.
        """
        confidence = getattr(completion, "mean_logprob", None)
        decision.confidence = None if confidence is None else round(float(confidence), 4)
        decision.features["confidence"] = decision.confidence
        threshold = decision.confidence_threshold
        decision.features["confidence_threshold"] = threshold
        if decision.target == "cloud":
            return Advice(
                False, decision.confidence, threshold, "the request was already proposed for the cloud"
            )
        if decision.pin != "auto":
            return Advice(False, decision.confidence, threshold, f"the task is pinned {decision.pin}")
        if confidence is None:
            return Advice(False, None, threshold, "the backend gave no token probabilities")
        if confidence >= threshold:
            return Advice(
                False,
                decision.confidence,
                threshold,
                f"confident enough ({confidence:.2f} >= {threshold:.2f})",
            )
        unavailable = _cloud_unavailable()
        if unavailable:
            return Advice(False, decision.confidence, threshold, f"low confidence, but {unavailable}")
        return Advice(
            True,
            decision.confidence,
            threshold,
            f"low confidence: the answer's mean token log-probability {confidence:.2f} < {threshold:.2f}",
        )


def _routing_state(store: Store) -> tuple:
    """A fingerprint of the tasks and active adapters: it changes whenever a decision could."""
    return tuple(
        store.db.execute(
            "SELECT (SELECT COUNT(*) || '/' || COALESCE(MAX(updated_utc), '') || '/' || "
            "COALESCE(SUM(confidence_threshold), '') || '/' || COUNT(retired_utc) FROM tasks), "
            "(SELECT COALESCE(group_concat(id), '') FROM adapters WHERE status = 'active')"
        ).fetchone()
    )


def _decision(
    task_id: int | None,
    label: str | None,
    distance: float | None,
    target: str,
    specialist: _Specialist | None,
    reason: str,
    started: float,
    features: dict[str, Any],
) -> RouteDecision:
    return RouteDecision(
        task_id=task_id,
        task_label=label,
        distance=None if distance is None else round(distance, 4),
        target=target,
        adapter_id=specialist.adapter_id if specialist else None,
        adapter_path=specialist.path if specialist else None,
        reason=reason,
        decision_ms=round((time.perf_counter() - started) * 1000, 3),
        features=features,
    )


def _cloud_unavailable() -> str | None:
    """Why nothing could be proposed for the cloud right now, or None when it could."""
    from engine.escalation import load_cloud_config

    config = load_cloud_config()
    if config.local_only:
        return "local-only is on"
    if config.active is None or config.active not in config.providers:
        return "no cloud provider is set up"
    return None


def escalate(
    store: Store,
    decision: RouteDecision,
    messages: list[dict[str, str]],
    reason: str,
    conversation_id: int | None = None,
    turn_id: int | None = None,
) -> int:
    """Propose (never send) the request to the cloud: a PENDING escalation the user reviews.

    Refused for a task pinned ``never_cloud`` and, by ``engine.escalation``, under local-only. The
    escalation's task type is ``task <id>``, so an "always" consent covers exactly this task.
    """
    from engine.escalation import DEFAULT_TASK_TYPE, Escalations

    if decision.pin == "never_cloud":
        raise DiscoveryError(
            f"task {decision.task_id} ('{decision.task_label}') is pinned never_cloud, so nothing of it "
            f"goes to the cloud; change that with `understudy tasks pin {decision.task_id} auto`"
        )
    task_type = DEFAULT_TASK_TYPE if decision.task_id is None else f"task {decision.task_id}"
    escalation_id = Escalations(store).propose(
        messages, reason=reason, conversation_id=conversation_id, turn_id=turn_id, task_type=task_type
    )
    decision.escalation_id = escalation_id
    if turn_id is not None:
        with store.transaction():
            store.db.execute(
                "UPDATE route_decisions SET escalation_id = ? WHERE id = "
                "(SELECT MAX(id) FROM route_decisions WHERE turn_id = ?)",
                [escalation_id, turn_id],
            )
    return escalation_id


def record(store: Store, decision: RouteDecision, turn_id: int | None) -> int:
    """Log a decision with its features in its own transaction (see ``write_decision``)."""
    with store.transaction():
        return write_decision(store, decision, turn_id)


def write_decision(store: Store, decision: RouteDecision, turn_id: int | None) -> int:
    """Log a decision inside the caller's transaction (the agent's, so it commits with its turn); for a
    turn, also cache the request's vector and set the turn's task."""
    decision_id = store.insert(
        "route_decisions",
        {
            "turn_id": turn_id,
            "created_utc": utc_now(),
            "task_id": decision.task_id,
            "distance": decision.distance,
            "target": decision.target,
            "adapter_id": decision.adapter_id,
            "escalation_id": decision.escalation_id,
            "reason": decision.reason,
            "confidence": decision.confidence,
            "decision_ms": decision.decision_ms,
            "features_json": json.dumps(decision.features, ensure_ascii=False),
        },
    )
    if turn_id is not None and decision.vector is not None and decision.encoder is not None:
        store.db.execute(
            "INSERT OR REPLACE INTO embeddings (turn_id, encoder, vector) VALUES (?, ?, ?)",
            [turn_id, decision.encoder, embeddings.to_blob(decision.vector)],
        )
        store.db.execute("UPDATE turns SET cluster_id = ? WHERE id = ?", [decision.task_id, turn_id])
    return decision_id


def set_pin(store: Store, task_id: int, pin: str) -> None:
    if pin not in PINS:
        raise DiscoveryError(f"a pin is one of {', '.join(PINS)}, not {pin!r}")
    with store.transaction():
        cursor = store.db.execute(
            "UPDATE tasks SET pin = ?, updated_utc = ? WHERE id = ?", [pin, utc_now(), task_id]
        )
    if cursor.rowcount == 0:
        raise DiscoveryError(f"there is no task {task_id}; `understudy tasks` lists them")


def record_outcome(store: Store, turn_id: int, outcome: str) -> None:
    """What the user did with a routed answer (for ``calibrate``): one of ``OUTCOMES``.

    A turn logged without a routing decision gets one, so its outcome still counts.
    """
    if outcome not in OUTCOMES:
        raise DiscoveryError(f"an outcome is one of {', '.join(OUTCOMES)}, not {outcome!r}")
    with store.transaction():
        turns = list(
            store.db.query("SELECT route, adapter_id, cluster_id FROM turns WHERE id = ?", [turn_id])
        )
        if not turns:
            raise DiscoveryError(f"there is no turn {turn_id}")
        cursor = store.db.execute(
            "UPDATE route_decisions SET outcome = ? WHERE id = "
            "(SELECT MAX(id) FROM route_decisions WHERE turn_id = ?)",
            [outcome, turn_id],
        )
        if cursor.rowcount == 0:
            turn = turns[0]
            target = (
                "cloud" if turn["route"] == "cloud" else "specialist" if turn["adapter_id"] else "generalist"
            )
            store.insert(
                "route_decisions",
                {
                    "turn_id": turn_id,
                    "created_utc": utc_now(),
                    "task_id": turn["cluster_id"],
                    "target": target,
                    "adapter_id": turn["adapter_id"],
                    "reason": "outcome recorded for a turn that had no routing decision",
                    "decision_ms": 0.0,
                    "outcome": outcome,
                },
            )


@dataclass
class Calibration:
    task_id: int
    label: str
    outcomes: int  # labelled answers of this task with a confidence
    bad: int
    threshold: float | None  # None: the prior applies
    source: str  # task | pooled | prior
    balanced_accuracy: float | None


def labelled_confidences(store: Store) -> list[tuple[int, float, bool]]:
    """(task id, confidence, bad) for every routed answer with a confidence and a known outcome.

    Bad: rated -1; the user chose the cloud instead; a tool call failed (invalid, or an error when
    run); or a cloud answer was sent for it and disagreed with it (word overlap below
    ``DISAGREEMENT_OVERLAP``). Good: rated +1; the user kept it local; or a cloud answer agreed. A bad
    signal wins over a good one; answers with neither are left out.
    """
    labelled = []
    for row in store.db.query(
        "SELECT route_decisions.task_id, route_decisions.confidence, route_decisions.outcome, "
        "turns.answer_text, feedback.rating, "
        "EXISTS (SELECT 1 FROM tool_calls WHERE tool_calls.turn_id = turns.id AND (tool_calls.decision = "
        "  'invalid' OR (tool_calls.decision = 'allowed' AND tool_calls.error IS NOT NULL))) AS tool_failed, "
        "(SELECT restored_text FROM escalations WHERE escalations.turn_id = turns.id "
        "  AND escalations.status = 'sent' ORDER BY escalations.id DESC LIMIT 1) AS cloud_answer "
        "FROM route_decisions JOIN turns ON turns.id = route_decisions.turn_id "
        "LEFT JOIN feedback ON feedback.turn_id = turns.id "
        "WHERE route_decisions.confidence IS NOT NULL AND route_decisions.task_id IS NOT NULL "
        "AND route_decisions.id = "
        "  (SELECT MAX(id) FROM route_decisions AS latest WHERE latest.turn_id = turns.id)"
    ):
        disagreed = agreed = False
        if row["cloud_answer"] is not None:
            overlap = _word_overlap(row["answer_text"], row["cloud_answer"])
            disagreed, agreed = overlap < DISAGREEMENT_OVERLAP, overlap >= DISAGREEMENT_OVERLAP
        bad = row["rating"] == -1 or row["outcome"] in BAD_OUTCOMES or bool(row["tool_failed"]) or disagreed
        good = row["rating"] == 1 or row["outcome"] in GOOD_OUTCOMES or agreed
        if bad or good:
            labelled.append((row["task_id"], row["confidence"], bad))
    return labelled


def calibrate(store: Store) -> list[Calibration]:
    """Fit each task's confidence threshold from its logged outcomes and store it.

    The threshold is the cut that best separates bad answers (below it) from good ones (at or above),
    scored by balanced accuracy (the mean of the share of bad answers caught and the share of good
    ones let through), so a task where most answers are fine is not fitted to never propose. Cuts are
    the midpoints between neighbouring observed confidences; on a tie the lower cut wins (fewer
    proposals). A task needs ``MIN_OUTCOMES`` labelled answers with at least ``MIN_PER_CLASS`` of each
    kind; otherwise it takes the cut fitted on all tasks pooled if that has enough, else the prior.
    """
    labelled = labelled_confidences(store)
    pooled = _fit([(confidence, bad) for _, confidence, bad in labelled])
    tasks = list(store.db.query("SELECT id, label FROM tasks WHERE retired_utc IS NULL ORDER BY id"))
    results = []
    with store.transaction():
        for task in tasks:
            samples = [(confidence, bad) for task_id, confidence, bad in labelled if task_id == task["id"]]
            fitted = _fit(samples)
            if fitted is not None:
                threshold, accuracy, source = fitted[0], fitted[1], "task"
            elif pooled is not None:
                threshold, accuracy, source = pooled[0], pooled[1], "pooled"
            else:
                threshold, accuracy, source = None, None, "prior"
            store.db.execute(
                "UPDATE tasks SET confidence_threshold = ? WHERE id = ?",
                [None if threshold is None else round(threshold, 4), task["id"]],
            )
            results.append(
                Calibration(
                    task_id=task["id"],
                    label=task["label"],
                    outcomes=len(samples),
                    bad=sum(bad for _, bad in samples),
                    threshold=None if threshold is None else round(threshold, 4),
                    source=source,
                    balanced_accuracy=None if accuracy is None else round(accuracy, 4),
                )
            )
    return results


def _fit(samples: list[tuple[float, bool]]) -> tuple[float, float] | None:
    """(threshold, balanced accuracy) maximising balanced accuracy, or None with too few samples."""
    bad_total = sum(bad for _, bad in samples)
    good_total = len(samples) - bad_total
    if len(samples) < MIN_OUTCOMES or bad_total < MIN_PER_CLASS or good_total < MIN_PER_CLASS:
        return None
    values = sorted({confidence for confidence, _ in samples})
    cuts = [(low + high) / 2 for low, high in itertools.pairwise(values)]
    best: tuple[float, float] | None = None
    for cut in cuts:
        caught = sum(1 for confidence, bad in samples if bad and confidence < cut) / bad_total
        passed = sum(1 for confidence, bad in samples if not bad and confidence >= cut) / good_total
        accuracy = (caught + passed) / 2
        if best is None or accuracy > best[1]:
            best = (cut, accuracy)
    return best


def _word_overlap(first: str, second: str) -> float:
    a, b = set(_WORD.findall(first.lower())), set(_WORD.findall(second.lower()))
    return len(a & b) / len(a | b) if a | b else 1.0
