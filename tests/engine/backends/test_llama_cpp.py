"""The llama.cpp backend on the real SmolLM2 135M model (loaded once per session)."""

from __future__ import annotations

import shutil
import threading

import pytest

from engine import backends, catalog
from engine.backends import GenerationOptions, LoadOptions, drain
from engine.backends.llama_cpp import LlamaCppBackend, llama_without_extra_buffers, physical_cores
from engine.errors import ModelLoadError

pytestmark = pytest.mark.slow  # the real model in llama.cpp

SHORT = GenerationOptions(max_tokens=24, temperature=0.0, seed=0)


def test_loads_with_physical_cores_and_the_catalog_context(smollm2, model_catalog):
    assert smollm2.n_threads == physical_cores()
    assert smollm2.n_ctx == model_catalog.get("smollm2-135m-instruct").context_length
    assert smollm2.gpu_layers in (0, -1)


def test_an_amx_build_loads_without_its_weight_buffers_and_others_keep_repacking(smollm2):
    """AMX weight buffers made decode segfault in a VM (CI's); only an AMX build turns them off."""
    import llama_cpp.llama_cpp as native

    amx_build = b"AMX_INT8 = 1" in native.llama_print_system_info()
    assert smollm2._llama._model.params.use_extra_bufts is not amx_build


def test_weight_buffers_are_turned_off_for_that_model_alone(model_catalog):
    """The struct llama.cpp loaded the model with has the flag off, on any build; the library's
    defaults stay as they were, so another thread loading a model meanwhile keeps its buffers."""
    import llama_cpp
    import llama_cpp.llama_cpp as native

    default_params = native.llama_model_default_params
    path = str(catalog.locate(model_catalog.get("smollm2-135m-instruct")))
    without = llama_without_extra_buffers()(model_path=path, n_ctx=64, verbose=False)
    plain = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    assert without._model.params.use_extra_bufts is False
    assert plain._model.params.use_extra_bufts is True
    assert native.llama_model_default_params is default_params
    assert native.llama_model_default_params().use_extra_bufts
    without.close()
    plain.close()


def test_a_model_loads_once_and_is_reused(smollm2, model_catalog):
    assert backends.load(model_catalog.get("smollm2-135m-instruct")) is smollm2


def test_streams_a_real_answer_token_by_token_with_usage_and_timings(smollm2):
    pieces: list[str] = []
    completion = drain(
        smollm2.stream_chat([{"role": "user", "content": "Name three colours."}], SHORT), pieces.append
    )
    assert len(pieces) > 3
    assert completion.text == "".join(pieces)
    assert completion.text.strip()
    assert completion.prompt_tokens > 5
    assert 0 < completion.completion_tokens <= SHORT.max_tokens
    assert completion.finish_reason in ("stop", "length")
    assert completion.ttft_ms > 0
    assert completion.duration_ms >= completion.ttft_ms
    assert completion.decode_tokens_per_second > 0
    assert completion.trimmed_messages == 0


def test_greedy_decoding_is_repeatable(smollm2):
    messages = [{"role": "user", "content": "What is two plus two?"}]
    first = drain(smollm2.stream_chat(messages, SHORT))
    second = drain(smollm2.stream_chat(messages, SHORT))
    assert first.text == second.text


def test_cancel_stops_within_one_token(smollm2):
    cancel = threading.Event()
    pieces: list[str] = []

    def on_piece(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()

    completion = drain(
        smollm2.stream_chat(
            [{"role": "user", "content": "Write a long story about a dragon."}],
            GenerationOptions(max_tokens=200, temperature=0.0),
            cancel,
        ),
        on_piece,
    )
    assert completion.finish_reason == "cancelled"
    assert len(pieces) == 3
    assert completion.completion_tokens <= 4


def test_closing_the_stream_early_releases_the_model(smollm2):
    stream = smollm2.stream_chat([{"role": "user", "content": "Count to twenty."}], SHORT)
    next(stream)
    stream.close()
    assert drain(smollm2.stream_chat([{"role": "user", "content": "Hi"}], SHORT)).text


@pytest.fixture(scope="module")
def small_context(model_catalog):
    """The same model with a 256-token context, so overflow is cheap to reach."""
    return backends.load(model_catalog.get("smollm2-135m-instruct"), LoadOptions(n_ctx=256))


def test_context_overflow_drops_the_oldest_turns_and_says_so(small_context):
    history = []
    for index in range(12):
        history.append({"role": "user", "content": f"Tell me fact number {index} about the sea."})
        history.append({"role": "assistant", "content": f"Fact {index}: the sea is wide and deep and blue."})
    messages = [{"role": "system", "content": "Be brief."}, *history, {"role": "user", "content": "Thanks!"}]
    completion = drain(small_context.stream_chat(messages, GenerationOptions(max_tokens=32, temperature=0.0)))
    assert completion.trimmed_messages > 0
    assert completion.messages[0] == {"role": "system", "content": "Be brief."}
    assert completion.messages[-1] == {"role": "user", "content": "Thanks!"}
    assert len(completion.messages) == len(messages) - completion.trimmed_messages
    assert completion.prompt_tokens + 32 <= 256 + 32
    assert completion.prompt_tokens <= 256 - 32


def test_a_single_message_too_long_for_the_context_is_cut_from_its_start(small_context):
    long_message = "word " * 600 + "What is the last thing I said?"
    completion = drain(
        small_context.stream_chat(
            [{"role": "user", "content": long_message}], GenerationOptions(max_tokens=16, temperature=0.0)
        )
    )
    assert completion.trimmed_messages == 1
    kept = completion.messages[-1]["content"]
    assert kept.startswith("…") and kept.endswith("What is the last thing I said?")
    assert completion.prompt_tokens <= 256 - 16


def test_a_truncated_gguf_is_a_clear_error_naming_the_file(tmp_path, model_catalog):
    entry = model_catalog.get("smollm2-135m-instruct")
    truncated = tmp_path / "truncated.gguf"
    with catalog.locate(entry).open("rb") as source, truncated.open("wb") as target:
        target.write(source.read(5_000_000))
    with pytest.raises(ModelLoadError, match=r"truncated.gguf \(5,000,000 bytes\) could not be loaded"):
        LlamaCppBackend(entry, truncated)


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path, model_catalog):
    entry = model_catalog.get("smollm2-135m-instruct")
    not_gguf = tmp_path / "weights.gguf"
    shutil.copyfile(__file__, not_gguf)
    with pytest.raises(ModelLoadError, match=r"weights.gguf is not a GGUF file"):
        LlamaCppBackend(entry, not_gguf)
