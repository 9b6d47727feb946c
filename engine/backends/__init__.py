"""Chat backends: the ``Backend`` Protocol, its options and results, and the pool of loaded models.

A backend is a loaded model. ``stream_chat`` is a generator: it yields the answer's text piece by piece
as tokens are decoded and returns a ``Completion`` with usage and timings, so callers write
``completion = yield from backend.stream_chat(...)``.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from engine import catalog
from engine.catalog import ModelEntry
from engine.errors import CatalogError

FinishReason = Literal["stop", "length", "cancelled"]
Message = dict[str, str]


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model. None means: decide from the machine and the catalog."""

    n_threads: int | None = None
    n_ctx: int | None = None
    gpu_layers: int | None = None


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 512
    temperature: float = 0.2
    top_p: float = 0.9
    top_k: int = 40
    repeat_penalty: float = 1.1
    seed: int | None = None


@dataclass
class Completion:
    """What one streamed chat call produced, with the numbers the log keeps."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    duration_ms: float
    decode_tokens_per_second: float | None
    # The messages the model actually saw, after trimming the oldest turns to fit the context.
    messages: list[Message] = field(default_factory=list)
    trimmed_messages: int = 0
    # Log-probabilities of the sampled answer tokens under the model: the router's confidence signal.
    mean_logprob: float | None = None
    min_logprob: float | None = None


class Backend(Protocol):
    """A loaded model that streams chat turns."""

    name: str
    entry: ModelEntry
    n_threads: int
    n_ctx: int
    gpu_layers: int

    def stream_chat(
        self,
        messages: list[Message],
        options: GenerationOptions,
        cancel: threading.Event | None = None,
        json_schema: dict | None = None,
        adapter: Path | None = None,
    ) -> Generator[str, None, Completion]:
        """Yield answer text as it is decoded; stop between tokens once ``cancel`` is set.

        With ``json_schema`` the output is constrained to JSON matching it (a grammar in llama.cpp).
        With ``adapter`` (a GGUF LoRA file) the call runs on the base model plus that adapter, switched
        in without reloading the base.
        """
        ...

    def load_adapter(self, adapter: Path) -> None:
        """Read ``adapter`` onto the loaded base ahead of its first use, so serving it only switches."""
        ...

    def close(self) -> None:
        """Free the model's memory."""
        ...


def drain(stream: Generator[str, None, object], on_piece: Callable[[str], object] | None = None):
    """Run a streaming generator to its end, handing each piece to ``on_piece``; return its result."""
    try:
        while True:
            piece = next(stream)
            if on_piece is not None:
                on_piece(piece)
    except StopIteration as finished:
        return finished.value


_loaded: dict[str, Backend] = {}
_loaded_options: dict[str, LoadOptions] = {}
_loading_lock = threading.Lock()


def load(entry: ModelEntry, options: LoadOptions = LoadOptions()) -> Backend:
    """The loaded model for ``entry``: loaded on first use, then reused.

    One instance per model is kept: loading it with other options (say, new settings) or from a changed
    catalog entry (say, another file) replaces the cached one, whose memory is freed once its last user
    lets go of it.
    """
    with _loading_lock:
        backend = _loaded.get(entry.id)
        if backend is None or backend.entry != entry or _loaded_options.get(entry.id) != options:
            from engine import plugins

            factory = plugins.backend_factories().get(entry.backend)
            if factory is None:
                raise CatalogError(
                    f"model '{entry.id}' needs the backend '{entry.backend}', which no installed "
                    "plugin provides"
                )
            backend = factory(entry, catalog.locate(entry), options)
            _loaded[entry.id] = backend
            _loaded_options[entry.id] = options
        return backend


def is_loaded(entry: ModelEntry, options: LoadOptions = LoadOptions()) -> bool:
    with _loading_lock:
        backend = _loaded.get(entry.id)
        return backend is not None and backend.entry == entry and _loaded_options.get(entry.id) == options


def unload_all() -> None:
    """Free every loaded model (also at exit, before llama.cpp's own globals are torn down)."""
    with _loading_lock:
        for backend in _loaded.values():
            backend.close()
        _loaded.clear()
        _loaded_options.clear()


atexit.register(unload_all)
