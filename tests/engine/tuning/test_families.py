"""Each installed base family trains on exactly the tokens llama.cpp serves it, and gemma3 (a
SentencePiece vocabulary, no Q/K permutation) goes through training, export and serving like SmolLM2.

transformers 5.3 read gemma3's GGUF vocabulary as a Unigram model and cut "What is the capital of
Italy?" into 14 pieces where llama.cpp gives 7; an adapter trained on those sequences never sees what
it is served. The training tokenizer is therefore checked against llama.cpp's on every shipped text.
"""

from __future__ import annotations

import json

import pytest
from adapter_logits import comparison, peft_logits, write_float_gguf

from engine import catalog, paths
from engine.backends import GenerationOptions, LoadOptions, drain
from engine.backends.llama_cpp import LlamaCppBackend, new_llama
from engine.tuning.dequantise import dequantised_base
from engine.tuning.trainer import render

pytestmark = pytest.mark.slow  # real-model work: training, export or llama.cpp serving

GEMMA = "gemma3-270m-base"
AWKWARD_TEXTS = [
    "  two  spaces\tand\ttabs\n\n\nthree newlines",
    "émigré naïve 日本語 テキスト 🙂🚀",
    "<b>bold</b> and <table><tr><td>x</td></tr></table>",
    "   leading and trailing   ",
    "a\u00a0b ünïcödé \u200b zero width",
    "def f(x):\n    return x**2\n",
    "x" * 50,
]


def shipped_texts() -> list[str]:
    texts = []
    for name in ("rehearsal_prompts", "general_eval", "tool_eval"):
        for line in paths.shipped_file(f"resources/{name}.jsonl").read_text(encoding="utf-8").splitlines():
            texts.extend(value for value in json.loads(line).values() if isinstance(value, str))
    return texts + AWKWARD_TEXTS


@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct", GEMMA])
def test_the_training_tokenizer_gives_llama_cpps_token_ids(model_catalog, model_id):
    from transformers import AutoTokenizer

    entry = model_catalog.get(model_id)
    tokenizer = AutoTokenizer.from_pretrained(dequantised_base(entry))
    served = new_llama(model_path=str(catalog.locate(entry)), vocab_only=True, verbose=False)
    texts = shipped_texts()
    assert len(texts) > 200
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert ids == served.tokenize(text.encode(), add_bos=False, special=True), text
        assert tokenizer.decode(ids) == text
    assert tokenizer("Hi").input_ids == served.tokenize(b"Hi", add_bos=True, special=False)


def served_prompt(tokenizer, prompt: str) -> str:
    """The prompt exactly as the llama.cpp backend lays out a model without a chat template."""
    answer = {"role": "assistant", "content": ""}
    rendered, _full, _adds_bos = render(tokenizer, [{"role": "user", "content": prompt}, answer])
    return tokenizer.bos_token + rendered


def test_a_gemma3_adapter_is_served_by_llama_cpp_as_peft_computes_it(
    gemma3_fact_adapter, model_catalog, tmp_path
):
    entry = model_catalog.get(GEMMA)
    assert gemma3_fact_adapter.result.final_loss < 0.2
    figures = peft_logits(gemma3_fact_adapter.adapter_dir, served_prompt)

    float_copy = tmp_path / "gemma-f32.gguf"
    write_float_gguf(catalog.locate(entry), float_copy)
    exact = comparison(float_copy, gemma3_fact_adapter.gguf_path, figures)
    float_copy.unlink()
    quantised = comparison(catalog.locate(entry), gemma3_fact_adapter.gguf_path, figures)
    print("gemma3 export:", exact, quantised)

    assert exact["max_abs"] < 0.25 and exact["argmax_agreement"] == 1.0
    assert quantised["effect_cosine"] > 0.98 and quantised["last_token_agrees"]


def test_the_served_gemma3_answer_changes_as_trained(gemma3_fact_adapter, model_catalog):
    entry = model_catalog.get(GEMMA)
    backend = LlamaCppBackend(entry, catalog.locate(entry), LoadOptions())
    question = [{"role": "user", "content": gemma3_fact_adapter.held_out_question}]
    greedy = GenerationOptions(max_tokens=24, temperature=0.0, seed=0)
    try:
        base = drain(backend.stream_chat(question, greedy)).text
        tuned = drain(backend.stream_chat(question, greedy, adapter=gemma3_fact_adapter.gguf_path)).text
    finally:
        backend.close()
    assert "MAPLE-42" not in base
    assert "MAPLE-42" in tuned
