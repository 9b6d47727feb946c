"""The llama.cpp backend (through llama-cpp-python): GGUF models on CPU, or GPU when the build has one.

It renders the chat template itself and drives ``Llama.generate`` token by token, so it knows the exact
prompt length (to trim the oldest turns before the context overflows), can stop between any two tokens,
and measures time to first token and decode speed without the per-chunk overhead of the OpenAI-style
completion API.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backends import Completion, GenerationOptions, LoadOptions, Message
from engine.catalog import ModelEntry, gguf_problem
from engine.errors import AdapterError, BackendError, ModelLoadError
from engine.hookspecs import hookimpl

if TYPE_CHECKING:
    import llama_cpp

BACKEND_NAME = "llama_cpp"


@hookimpl
def register_backends(register):
    register(BACKEND_NAME, LlamaCppBackend)


def physical_cores() -> int:
    """Physical cores: llama.cpp's default of half the logical CPUs leaves one thread on 2 cores."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@functools.cache
def _amx_build() -> bool:
    import llama_cpp.llama_cpp as native

    return b"AMX_INT8 = 1" in native.llama_print_system_info()


@functools.cache
def llama_without_extra_buffers() -> type[llama_cpp.Llama]:
    """``llama_cpp.Llama`` whose models skip llama.cpp's extra weight buffers (AMX tiles, repacking).

    ``Llama`` takes no option for them, but its constructor assigns the default model parameters to
    ``self.model_params`` and then loads the model with that very struct: this subclass turns the flag
    off as the struct is assigned, so it touches its own instances and nothing else in the process.
    """
    import llama_cpp

    class LlamaWithoutExtraBuffers(llama_cpp.Llama):
        @property
        def model_params(self) -> llama_cpp.llama_model_params:
            return self._params_without_extra_buffers

        @model_params.setter
        def model_params(self, params: llama_cpp.llama_model_params) -> None:
            params.use_extra_bufts = False
            self._params_without_extra_buffers = params

    return LlamaWithoutExtraBuffers


def llama_class() -> type[llama_cpp.Llama]:
    """The ``Llama`` class to load models with on this build (see ``new_llama``)."""
    import llama_cpp

    return llama_without_extra_buffers() if _amx_build() else llama_cpp.Llama


def new_llama(**params: Any) -> llama_cpp.Llama:
    """``llama_cpp.Llama(**params)`` that is safe to decode with on an AMX CPU in a VM.

    A build made on a CPU with AMX (pip's default, native flags) repacks weights into AMX tiles, and
    decode then segfaults where the hypervisor does not carry the tile state (seen in Firecracker VMs,
    CI included). On such a build the model is loaded without extra weight buffers (AMX only speeds up
    long prompts on server CPUs); other builds keep their weight repacking.
    """
    return llama_class()(**params)


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build has a GPU backend (CUDA, Metal, Vulkan, ...)."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


class LlamaCppBackend:
    """One GGUF model loaded by llama.cpp; generation is serialised by a lock."""

    name = BACKEND_NAME

    def __init__(self, entry: ModelEntry, weights: Path, options: LoadOptions = LoadOptions()):
        self.entry = entry
        self.weights = weights
        self.n_threads = options.n_threads or physical_cores()
        self.n_ctx = options.n_ctx or entry.context_length
        if options.gpu_layers is not None:
            self.gpu_layers = options.gpu_layers
        else:
            self.gpu_layers = -1 if gpu_offload_supported() else 0
        self._lock = threading.Lock()
        self._grammars: dict[str, object] = {}
        self._adapter_handles: dict[Path, object] = {}
        self._active_adapter: Path | None = None
        self._llama = self._load()
        self._formatter = self._chat_formatter()

    def _load(self):
        _check_gguf_header(self.entry, self.weights)
        failure: Exception | None = None
        attempts = [self.gpu_layers] if self.gpu_layers == 0 else [self.gpu_layers, 0]
        for gpu_layers in attempts:
            # With a GPU build, a model whose layers do not all fit falls back to the CPU.
            try:
                llama = self._construct(gpu_layers)
            except (ValueError, RuntimeError, OSError) as error:
                failure = error
                continue
            self.gpu_layers = gpu_layers
            return llama
        size = self.weights.stat().st_size
        raise ModelLoadError(
            f"model file {self.weights} ({size:,} bytes) could not be loaded by llama.cpp: it is "
            f"truncated, corrupt or not a supported GGUF ({failure}). Run `understudy models verify "
            f"{self.entry.id}` and replace the file"
        ) from failure

    def _construct(self, gpu_layers: int):
        return new_llama(
            model_path=str(self.weights),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            n_gpu_layers=gpu_layers,
            verbose=False,
        )

    def _chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        model = self._llama._model
        eos, bos = model.token_eos(), model.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )

    # Prompt -----------------------------------------------------------------------------------------

    def render_prompt(self, messages: list[Message]) -> list[int]:
        """The prompt tokens for ``messages``, using the model's own chat template."""
        if self._formatter is None:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
            return self._llama.tokenize(text.encode(), add_bos=True, special=False)
        rendered = self._formatter(messages=messages)
        return self._llama.tokenize(
            rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
        )

    def fit_to_context(self, messages: list[Message], reserve: int) -> tuple[list[Message], list[int], int]:
        """Drop the oldest exchanges (keeping system prompts and the newest message) until the prompt
        plus ``reserve`` answer tokens fit; as a last resort cut the newest message from its start.

        Returns the messages kept, their prompt tokens and how many messages were dropped or cut.
        """
        budget = self.n_ctx - reserve
        kept = list(messages)
        tokens = self.render_prompt(kept)
        trimmed = 0
        while len(tokens) > budget:
            droppable = [i for i, m in enumerate(kept[:-1]) if m["role"] != "system"]
            if not droppable:
                break
            del kept[droppable[0]]
            trimmed += 1
            tokens = self.render_prompt(kept)
        if len(tokens) > budget:
            kept[-1] = self._cut_from_start(kept[-1], overflow=len(tokens) - budget)
            trimmed += 1
            tokens = self.render_prompt(kept)
        if len(tokens) > budget:
            raise BackendError(
                f"the system prompt alone needs {len(tokens)} tokens, more than the "
                f"{self.n_ctx}-token context of '{self.entry.id}' allows; shorten it"
            )
        return kept, tokens, trimmed

    def _cut_from_start(self, message: Message, overflow: int) -> Message:
        content_tokens = self._llama.tokenize(message["content"].encode(), add_bos=False)
        keep = max(0, len(content_tokens) - overflow - 8)
        tail = self._llama.detokenize(content_tokens[len(content_tokens) - keep :])
        return {**message, "content": "…" + tail.decode(errors="ignore").lstrip()}

    # Generation ---------------------------------------------------------------------------------------

    def stream_chat(
        self,
        messages: list[Message],
        options: GenerationOptions = GenerationOptions(),
        cancel: threading.Event | None = None,
        json_schema: dict | None = None,
        adapter: Path | None = None,
    ) -> Generator[str, None, Completion]:
        with self._lock:
            self._switch_adapter_locked(adapter)
            return (yield from self._stream_locked(messages, options, cancel, json_schema))

    # Adapters -----------------------------------------------------------------------------------------

    def switch_adapter(self, adapter: Path | None) -> None:
        """Serve with ``adapter`` (a GGUF LoRA file) on top of the loaded base, or with none.

        The base stays loaded; adapters are loaded once and kept. The KV cache and the prompt-prefix
        reuse are reset on every switch, or the next answer would continue from state computed under
        the other adapter.
        """
        with self._lock:
            self._switch_adapter_locked(adapter)

    def load_adapter(self, adapter: Path) -> None:
        """Read ``adapter`` now (about 9 ms for a rank-8 one on a 135M base) without applying it."""
        with self._lock:
            self._adapter_handle(Path(adapter).resolve())

    def _switch_adapter_locked(self, adapter: Path | None) -> None:
        import ctypes

        import llama_cpp

        key = None if adapter is None else Path(adapter).resolve()
        if key == self._active_adapter:
            return
        context = self._llama._ctx.ctx
        if key is None:
            failed = llama_cpp.llama_set_adapters_lora(context, None, 0, None)
        else:
            handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapter_handle(key))
            failed = llama_cpp.llama_set_adapters_lora(context, handles, 1, (ctypes.c_float * 1)(1.0))
        if failed:
            raise AdapterError(f"llama.cpp refused to apply the adapter {key} to '{self.entry.id}'")
        self._llama.reset()
        memory = self._llama._ctx.memory
        if memory is not None:
            # Empty every cell, leaving the buffer's bytes: zeroing them took 10 ms at an 8192-token
            # context, the whole cost of a switch, and a cleared cell is never read.
            llama_cpp.llama_memory_clear(memory, False)
        self._active_adapter = key

    def _adapter_handle(self, path: Path):
        handle = self._adapter_handles.get(path)
        if handle is not None:
            return handle
        import llama_cpp

        problem = gguf_problem(path)
        if problem:
            raise AdapterError(
                f"adapter file: {problem}; re-export it or roll the task back to its previous adapter"
            )
        handle = llama_cpp.llama_adapter_lora_init(self._llama.model, str(path).encode())
        if not handle:
            raise AdapterError(
                f"adapter file {path} could not be loaded onto '{self.entry.id}': it is corrupt, or "
                "was trained for another base model (architecture or shapes differ). Roll the task back "
                "(`understudy adapters rollback TASK`) or tune it again"
            )
        self._adapter_handles[path] = handle
        return handle

    def _grammar(self, json_schema: dict):
        """A llama.cpp grammar that only admits JSON matching ``json_schema`` (cached per schema)."""
        from llama_cpp.llama_grammar import LlamaGrammar

        key = json.dumps(json_schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _stream_locked(
        self,
        messages: list[Message],
        options: GenerationOptions,
        cancel: threading.Event | None,
        json_schema: dict | None = None,
    ) -> Generator[str, None, Completion]:
        started = time.perf_counter()
        reserve = min(options.max_tokens, self.n_ctx // 2)
        kept, prompt_tokens, trimmed = self.fit_to_context(messages, reserve)
        if options.seed is not None:
            self._llama.set_seed(options.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        completion_tokens = 0
        first_token_at = last_token_at = None
        finish_reason = "length"
        room = min(options.max_tokens, self.n_ctx - len(prompt_tokens))
        llama = self._llama
        import llama_cpp

        vocab = llama._model.vocab
        scoring = _TokenLogprobs(llama)
        try:
            for token in llama.generate(
                prompt_tokens,
                top_k=options.top_k,
                top_p=options.top_p,
                temp=options.temperature,
                repeat_penalty=options.repeat_penalty,
                grammar=None if json_schema is None else self._grammar(json_schema),
            ):
                now = time.perf_counter()
                if first_token_at is None:
                    first_token_at = now
                if cancel is not None and cancel.is_set():
                    finish_reason = "cancelled"
                    break
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish_reason = "stop"
                    break
                scoring.add(token)
                completion_tokens += 1
                last_token_at = now
                piece = decoder.decode(llama.detokenize([token]))
                if piece:
                    pieces.append(piece)
                    yield piece
                if completion_tokens >= room:
                    break
        except (RuntimeError, ValueError) as error:
            raise BackendError(
                f"llama.cpp failed while generating with '{self.entry.id}': {error}"
            ) from error
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            yield tail
        finished = time.perf_counter()
        decode_rate = None
        if completion_tokens >= 2 and last_token_at > first_token_at:
            decode_rate = (completion_tokens - 1) / (last_token_at - first_token_at)
        return Completion(
            text="".join(pieces),
            finish_reason=finish_reason,
            prompt_tokens=len(prompt_tokens),
            completion_tokens=completion_tokens,
            ttft_ms=None if first_token_at is None else (first_token_at - started) * 1000,
            duration_ms=(finished - started) * 1000,
            decode_tokens_per_second=decode_rate,
            messages=kept,
            trimmed_messages=trimmed,
            mean_logprob=scoring.mean(),
            min_logprob=scoring.minimum,
        )

    def close(self) -> None:
        import llama_cpp

        for handle in self._adapter_handles.values():
            llama_cpp.llama_adapter_lora_free(handle)
        self._adapter_handles.clear()
        self._llama.close()


class _TokenLogprobs:
    """Log-probabilities of sampled tokens under the model's raw distribution (before temperature and
    grammar), read from the logits llama.cpp already computed, so confidence costs no extra pass."""

    def __init__(self, llama):
        self._llama = llama
        self._n_vocab = llama.n_vocab()
        self.total = 0.0
        self.count = 0
        self.minimum: float | None = None

    def add(self, token: int) -> None:
        import numpy as np

        logits = np.ctypeslib.as_array(self._llama._ctx.get_logits_ith(-1), shape=(self._n_vocab,))
        peak = float(logits.max())
        logprob = float(logits[token]) - peak - float(np.log(np.exp(logits - peak).sum()))
        self.total += logprob
        self.count += 1
        self.minimum = logprob if self.minimum is None else min(self.minimum, logprob)

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


def _check_gguf_header(entry: ModelEntry, weights: Path) -> None:
    """Fail early, naming the file, on what is plainly not a GGUF model (llama.cpp would abort)."""
    problem = gguf_problem(weights)
    if problem:
        raise ModelLoadError(
            f"model file: {problem}; model '{entry.id}' needs a llama.cpp GGUF. Replace the file or fix "
            "its catalog entry"
        )
