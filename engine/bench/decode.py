"""`understudy bench decode`: Understudy's turn against the bare llama-cpp-python it wraps, side by side.

The machine is shared and noisy, so every figure is a ratio of two measurements taken alternately
(raw, engine, engine, raw, ...) on the same model, threads and prompts.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine import backends, catalog
from engine.agent import Agent
from engine.backends import GenerationOptions, LoadOptions, drain
from engine.backends.llama_cpp import new_llama
from engine.store import Store

_PROMPTS = (
    "Write a short story about a lighthouse keeper and a storm.",
    "Explain how a bicycle works to a ten-year-old.",
    "Describe a walk through a forest in autumn.",
    "Write a letter to a friend about a trip to the sea.",
)


@dataclass
class Sample:
    tokens_per_second: float
    ttft_ms: float


def bench_decode(model_id: str | None = None, rounds: int = 4, max_tokens: int = 128) -> dict:
    """Decode speed and time to first token: raw llama-cpp-python vs Understudy's backend + logging.

    Both sides decode greedily, so they produce the same tokens; speed is (tokens - 1) over the time
    from the first to the last streamed piece, tokens counted the same way on both sides.
    """
    model_catalog = catalog.load_catalog()
    entry = model_catalog.get(model_id)
    generation = GenerationOptions(max_tokens=max_tokens, temperature=0.0, seed=0)
    engine_backend = backends.load(entry, LoadOptions())
    raw_llama = _raw_llama(engine_backend)

    raw_samples: list[Sample] = []
    engine_samples: list[Sample] = []
    log_ms: list[float] = []
    turn_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="understudy-bench-") as folder:
        store = Store.open(Path(folder) / "bench.db")
        agent = Agent(store, model_catalog, generation=generation)
        for round_index in range(rounds):
            prompt = f"{_PROMPTS[round_index % len(_PROMPTS)]} (round {round_index + 1})"
            order = ("raw", "engine") if round_index % 2 == 0 else ("engine", "raw")
            for side in order:
                if side == "raw":
                    raw_samples.append(_time_raw(raw_llama, prompt, generation))
                else:
                    sample, logged_ms, total_ms = _time_engine(agent, entry.id, prompt, raw_llama)
                    engine_samples.append(sample)
                    log_ms.append(logged_ms)
                    turn_ms.append(total_ms)
        store.close()
    raw_llama.close()

    raw_rate = statistics.median(s.tokens_per_second for s in raw_samples)
    engine_rate = statistics.median(s.tokens_per_second for s in engine_samples)
    raw_ttft = statistics.median(s.ttft_ms for s in raw_samples)
    engine_ttft = statistics.median(s.ttft_ms for s in engine_samples)
    log_p50 = statistics.median(log_ms)
    return {
        "model_id": entry.id,
        "n_threads": engine_backend.n_threads,
        "gpu_layers": engine_backend.gpu_layers,
        "rounds": rounds,
        "raw_tok_s": round(raw_rate, 2),
        "engine_tok_s": round(engine_rate, 2),
        "ratio": round(engine_rate / raw_rate, 4),
        "raw_ttft_ms": round(raw_ttft, 2),
        "engine_ttft_ms": round(engine_ttft, 2),
        "ttft_ratio": round(engine_ttft / raw_ttft, 4),
        "log_ms_p50": round(log_p50, 3),
        "log_share_of_turn": round(log_p50 / statistics.median(turn_ms), 5),
    }


def _raw_llama(engine_backend):
    """A second, independent llama-cpp-python model with the engine's settings (no shared cache)."""
    return new_llama(
        model_path=str(engine_backend.weights),
        n_ctx=engine_backend.n_ctx,
        n_threads=engine_backend.n_threads,
        n_threads_batch=engine_backend.n_threads,
        n_gpu_layers=engine_backend.gpu_layers,
        verbose=False,
    )


def _count_tokens(raw_llama, text: str) -> int:
    return len(raw_llama.tokenize(text.encode(), add_bos=False))


def _rate(tokens: int, first: float, last: float) -> float:
    return (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0


def _time_raw(raw_llama, prompt: str, generation: GenerationOptions) -> Sample:
    started = time.perf_counter()
    first = last = None
    pieces = []
    for chunk in raw_llama.create_chat_completion(
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        max_tokens=generation.max_tokens,
        temperature=generation.temperature,
        top_k=generation.top_k,
        top_p=generation.top_p,
        repeat_penalty=generation.repeat_penalty,
        seed=generation.seed,
    ):
        content = chunk["choices"][0]["delta"].get("content")
        if content:
            last = time.perf_counter()
            first = first or last
            pieces.append(content)
    tokens = _count_tokens(raw_llama, "".join(pieces))
    return Sample(_rate(tokens, first, last), (first - started) * 1000)


def _time_engine(agent: Agent, model_id: str, prompt: str, raw_llama) -> tuple[Sample, float, float]:
    started = time.perf_counter()
    arrivals: list[float] = []
    result = drain(agent.run_turn(prompt, model_id=model_id), lambda _: arrivals.append(time.perf_counter()))
    first, last = arrivals[0], arrivals[-1]
    total_ms = (time.perf_counter() - started) * 1000
    tokens = _count_tokens(raw_llama, result.answer)
    return Sample(_rate(tokens, first, last), (first - started) * 1000), result.log_ms, total_ms
