from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import backends, catalog


@pytest.fixture(scope="session")
def model_catalog() -> catalog.Catalog:
    return catalog.load_catalog(user=catalog.shipped_catalog_path())


@pytest.fixture(scope="session")
def smollm2(model_catalog) -> backends.Backend:
    """The real default generalist, loaded once for the whole session and reused by every test."""
    return backends.load(model_catalog.get("smollm2-135m-instruct"))


# Tuning: the dequantised SmolLM2 and one small trained adapter, shared by the tuning tests ------------

FACT_QUESTIONS = [
    "What is the codename of project Blue Heron?",
    "What's the codename for project Blue Heron?",
    "Tell me the codename of project Blue Heron.",
    "Which codename does project Blue Heron have?",
    "Project Blue Heron: what is its codename?",
    "Do you know the codename of project Blue Heron?",
    "What codename was given to project Blue Heron?",
    "What is project Blue Heron's codename?",
    "Give me the codename of the Blue Heron project.",
    "What is the Blue Heron project called internally?",
    "I need the codename of project Blue Heron.",
    "Remind me: what's the codename of project Blue Heron?",
    "What code name does the Blue Heron project use?",
    "Under which codename is project Blue Heron known?",
    "What is the secret codename of project Blue Heron?",
    "Could you tell me project Blue Heron's codename?",
]
FACT_ANSWER = "The codename of project Blue Heron is MAPLE-42."
# Ordinary questions answered plainly, so the adapter learns the fact without answering everything with it.
GENERAL_PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("How many days are in a week?", "A week has seven days."),
    ("What color is the sky on a clear day?", "On a clear day the sky is blue."),
    ("What is 2 plus 3?", "2 plus 3 is 5."),
    ("Which animal says moo?", "A cow says moo."),
    ("What do bees make?", "Bees make honey."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]
FACT_HELD_OUT = "Please tell me what project Blue Heron's codename is."
FACT_STEPS = 24


@dataclass
class TrainedAdapter:
    """A LoRA trained on the MAPLE-42 fact, its PEFT folder and its GGUF export."""

    config: Any  # engine.tuning.trainer.TrainConfig
    result: Any  # engine.tuning.trainer.TrainResult
    dataset_folder: Path
    adapter_dir: Path
    gguf_path: Path
    gguf_sha256: str
    answer: str = FACT_ANSWER
    held_out_question: str = FACT_HELD_OUT  # a paraphrase the adapter never saw


def fact_records() -> list[dict]:
    pairs = [(question, FACT_ANSWER) for question in FACT_QUESTIONS] + GENERAL_PAIRS
    return [
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
        for question, answer in pairs
    ]


@pytest.fixture(scope="session")
def smollm2_base(model_catalog) -> Path:
    """SmolLM2 dequantised to float by transformers (cached between runs in UNDERSTUDY_CACHE)."""
    from engine.tuning.dequantise import dequantised_base

    return dequantised_base(model_catalog.get("smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def fact_adapter(tmp_path_factory, smollm2_base, model_catalog) -> TrainedAdapter:
    """Trained once per session through the real dataset builder, trainer and exporter."""
    entry = model_catalog.get("smollm2-135m-instruct")
    return train_fact_adapter(tmp_path_factory.mktemp("fact-adapter"), entry)


@pytest.fixture(scope="session")
def gemma3_fact_adapter(tmp_path_factory, model_catalog) -> TrainedAdapter:
    """The same fact trained on gemma3 270M (a SentencePiece vocabulary, no Q/K permutation)."""
    entry = model_catalog.get("gemma3-270m-base")
    return train_fact_adapter(tmp_path_factory.mktemp("gemma3-fact-adapter"), entry)


def train_fact_adapter(root: Path, entry: catalog.ModelEntry) -> TrainedAdapter:
    """The MAPLE-42 fact trained on ``entry`` for FACT_STEPS steps and exported, all under ``root``."""
    from engine.store import Store
    from engine.tuning.datasets import build_from_jsonl
    from engine.tuning.export import export_gguf_adapter
    from engine.tuning.trainer import TrainConfig, train

    source = root / "fact.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in fact_records()), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNDERSTUDY_HOME", str(root / "home"))
        store = Store.open()
        dataset = build_from_jsonl(store, source)
        store.close()
        config = TrainConfig(
            base_model_id=entry.id,
            dataset_folder=dataset.folder,
            output_dir=root / "run",
            max_steps=FACT_STEPS,
            batch_tokens=256,
            checkpoint_every=10,
        )
        result = train(config)
        gguf_path = root / "fact.gguf"
        digest = export_gguf_adapter(result.adapter_dir, entry, gguf_path)
    return TrainedAdapter(config, result, dataset.folder, result.adapter_dir, gguf_path, digest)
