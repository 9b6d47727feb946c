"""Which base model a task's specialist is tuned from (S4).

By default: among the installed chat models (generalists and specialist bases) that fit this machine
and whose architecture the trainer supports, the one with the best zero-shot score on the task's
validation split; a tie goes to the smaller model, which trains and serves faster. ``--base`` overrides
the choice. The scores are kept with the choice, so the adapter's record says why its base was picked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from engine import backends, catalog
from engine.backends import Message
from engine.catalog import Catalog, ModelEntry
from engine.errors import TuningError
from engine.tuning.dequantise import SUPPORTED_ARCHITECTURES
from engine.tuning.evaluation import TaskScore, evaluate_task
from engine.tuning.events import BaseScored, EventSink

ROLES = ("generalist", "specialist-base")
BACKEND = "llama_cpp"


@dataclass
class BaseChoice:
    model_id: str
    how: str  # "best zero-shot score" | "--base"
    scores: dict[str, TaskScore] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "how": self.how,
            "scores": {model_id: score.score for model_id, score in self.scores.items()},
            "skipped": self.skipped,
        }


def candidate_bases(model_catalog: Catalog) -> tuple[list[ModelEntry], dict[str, str]]:
    """The models a specialist may start from here, and why each other chat model was left out."""
    import psutil

    from engine.backends.llama_cpp import gpu_offload_supported

    memory = psutil.virtual_memory()
    gpu = gpu_offload_supported()
    usable: list[ModelEntry] = []
    skipped: dict[str, str] = {}
    for entry in model_catalog:
        if entry.role not in ROLES:
            continue
        problem = _problem(entry, memory.total // 2**20, memory.available // 2**20, gpu)
        if problem:
            skipped[entry.id] = problem
        else:
            usable.append(entry)
    return usable, skipped


def _problem(entry: ModelEntry, total_mb: int, available_mb: int, gpu: bool) -> str | None:
    if entry.backend != BACKEND:
        return f"served by {entry.backend}, not llama.cpp"
    if entry.family not in SUPPORTED_ARCHITECTURES:
        return f"{entry.family} models cannot be tuned (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
    if not catalog.is_installed(entry):
        return "not installed"
    fit = catalog.fit_hint(entry, total_mb, available_mb, gpu)
    if fit != "fits":
        return f"{fit} on this machine"
    return None


def choose_base(
    model_catalog: Catalog,
    validation: list[list[Message]],
    override: str | None = None,
    cancel: threading.Event | None = None,
    on_event: EventSink | None = None,
) -> BaseChoice:
    """The base for a task whose validation examples are ``validation``.

    With ``override`` that model is used (after checking it can be tuned) and scored alone.
    """
    usable, skipped = candidate_bases(model_catalog)
    if override is not None:
        entry = model_catalog.get(override)
        if entry.role not in ROLES:
            raise TuningError(f"'{override}' is an {entry.role}, not a chat model; pick another with --base.")
        problem = _problem(entry, 2**40, 2**40, gpu=True)  # the user chose it: only hard limits apply
        if problem:
            raise TuningError(f"'{override}' cannot be the base: {problem}. Pick another with --base.")
        usable, how = [entry], "--base"
    else:
        how = "best zero-shot score"
    if not usable:
        reasons = "; ".join(f"{model_id}: {why}" for model_id, why in skipped.items())
        raise TuningError(f"No installed model can be a base for tuning here ({reasons}).")
    scores: dict[str, TaskScore] = {}
    for entry in usable:
        backend = backends.load(entry)
        scores[entry.id] = evaluate_task(backend, validation, cancel=cancel)
        if on_event:
            on_event(BaseScored(entry.id, scores[entry.id]))
    by_size = {entry.id: entry.size_mb for entry in usable}
    best = max(scores, key=lambda model_id: (scores[model_id].score, -by_size[model_id], model_id))
    return BaseChoice(model_id=best, how=how, scores=scores, skipped=skipped if override is None else {})
