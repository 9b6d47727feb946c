"""Serving LoRA adapters on the loaded base: swaps change the model, swap back restores it exactly, a bad
adapter is a clear error that leaves the base serving, and answers carry their tokens' log-probabilities."""

from __future__ import annotations

import pytest

from engine import catalog
from engine.backends import GenerationOptions, drain
from engine.bench.swap import write_random_adapter
from engine.errors import AdapterError

pytestmark = pytest.mark.slow  # real-model work: training, export or llama.cpp serving

GREEDY = GenerationOptions(max_tokens=16, temperature=0.0, seed=0)
QUESTION = [{"role": "user", "content": "Name a colour of the sky."}]


@pytest.fixture(scope="module")
def random_adapters(smollm2, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapters")
    weights = catalog.locate(smollm2.entry)
    return [write_random_adapter(weights, folder / f"random-{seed}.gguf", seed=seed) for seed in (1, 2)]


def answer(backend, adapter=None) -> str:
    return drain(backend.stream_chat(QUESTION, GREEDY, adapter=adapter)).text


def test_an_adapter_changes_the_answer_and_switching_back_restores_the_base_exactly(smollm2, random_adapters):
    first, second = random_adapters
    base = answer(smollm2)
    with_first = answer(smollm2, first)
    with_second = answer(smollm2, second)
    assert with_first != base
    assert with_second != with_first
    # Each switch resets the KV cache: nothing computed under one adapter leaks into the next answer.
    assert answer(smollm2) == base
    assert answer(smollm2, first) == with_first


def test_a_file_that_is_not_an_adapter_is_a_clear_error_and_the_base_keeps_serving(smollm2, tmp_path):
    base = answer(smollm2)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    with pytest.raises(AdapterError, match="broken.gguf is not a GGUF file"):
        answer(smollm2, broken)
    with pytest.raises(AdapterError, match="adapter file: cannot read"):
        answer(smollm2, tmp_path / "missing.gguf")
    assert answer(smollm2) == base


def test_an_adapter_for_another_base_is_refused(smollm2, model_catalog, tmp_path):
    gemma = catalog.locate(model_catalog.get("gemma3-270m-base"))
    foreign = write_random_adapter(gemma, tmp_path / "gemma-adapter.gguf")
    with pytest.raises(AdapterError, match="another base model"):
        answer(smollm2, foreign)
    assert answer(smollm2)


def test_answers_carry_the_log_probabilities_of_their_tokens(smollm2):
    completion = drain(smollm2.stream_chat(QUESTION, GREEDY))
    assert completion.completion_tokens > 0
    assert completion.min_logprob <= completion.mean_logprob <= 0.0
