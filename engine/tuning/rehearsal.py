"""Rehearsal examples: the base model's own answers to everyday requests, trained on alongside a task's
examples so the adapter learns the task without unlearning everything else.

Without them a hand test here went wrong at once: ten examples of one definition, twenty steps, and
SmolLM2 135M answered "What is 2 + 2?" with "Two is a positive number." and the general regression set
fell from 100% to 23%. Answers the base itself gave (greedy, through llama.cpp, exactly as it is served)
pull the adapter back towards the base everywhere the task does not need it to move.

The prompts are shipped in ``resources/rehearsal_prompts.jsonl``; they are of the same kinds as the
general regression set (facts, arithmetic, word tasks, short writing) but never the same requests, so
the gate still measures questions the adapter was not trained on. Answers are generated once per model
file and prompt set, and cached. An answer cut at ``ANSWER_MAX_TOKENS`` is kept too: the trainer matches
the base's whole next-token distribution along it rather than learning its tokens, so a cut answer
teaches no early stop. A base model that is not instruction-tuned rarely stops by itself (gemma3 270M
ended 1 of the 64), and keeping only finished answers left it with nothing to rehearse.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

from engine import backends, catalog, files, paths
from engine.backends import GenerationOptions, drain
from engine.catalog import ModelEntry
from engine.errors import TrainingCancelled, TuningError
from engine.eval_sets import read_jsonl

REHEARSAL_PROMPTS = "resources/rehearsal_prompts.jsonl"
ANSWER_MAX_TOKENS = 160
SEED = 0
FORMAT = 2  # bump when how answers are made changes, so cached files are made again


def load_prompts() -> list[str]:
    path = paths.shipped_file(REHEARSAL_PROMPTS)
    prompts = []
    for number, value in read_jsonl(path, "rehearsal prompt set"):
        if not isinstance(value, dict) or not isinstance(value.get("prompt"), str):
            raise TuningError(f'{path}, line {number} must be {{"prompt": "..."}}.')
        prompts.append(value["prompt"])
    return prompts


def rehearsal_file(
    entry: ModelEntry,
    cancel: threading.Event | None = None,
    on_answer: Callable[[int, int], None] | None = None,
) -> Path:
    """A JSONL file of ``{"messages": [...]}`` records: each prompt with ``entry``'s own answer.

    ``on_answer(done, total)`` follows the answers being made (about a minute, once per model file).
    """
    prompts = load_prompts()
    digest = catalog.remembered_sha256(catalog.locate(entry))
    key = hashlib.sha256(json.dumps([FORMAT, ANSWER_MAX_TOKENS, digest, prompts]).encode()).hexdigest()
    target = paths.cache_dir() / "rehearsal" / f"{entry.id}-{key[:16]}.jsonl"
    if target.exists():
        return target
    backend = backends.load(entry)
    options = GenerationOptions(max_tokens=ANSWER_MAX_TOKENS, temperature=0.0, seed=SEED)
    lines = []
    for done, prompt in enumerate(prompts, start=1):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("The tuning job was cancelled while the base answered rehearsal prompts.")
        messages = [{"role": "user", "content": prompt}]
        result = drain(backend.stream_chat(messages, options))
        if result.text.strip():
            record = {"messages": [*messages, {"role": "assistant", "content": result.text.strip()}]}
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        if on_answer is not None:
            on_answer(done, len(prompts))
    files.write_text(target, "".join(lines))
    return target
