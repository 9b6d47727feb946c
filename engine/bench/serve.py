"""The gateway's cost: decoding through HTTP (a real ``understudy serve`` child process, the openai SDK
streaming) against decoding in this process, on the same model, threads and prompts, taken alternately.

Also the latency seen by 8 concurrent streaming clients, and the router's share of a request's time.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine import backends, catalog
from engine.backends import GenerationOptions
from engine.settings import load_settings

_PROMPTS = (
    "Write a short story about a lighthouse keeper and a storm.",
    "Explain how a bicycle works to a ten-year-old.",
    "Describe a walk through a forest in autumn.",
    "Write a letter to a friend about a trip to the sea.",
)
START_TIMEOUT_S = 300
CONCURRENT_CLIENTS = 8


def _understudy_command() -> list[str]:
    script = Path(sys.executable).with_name("understudy")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rate(pieces: int, first: float, last: float) -> float:
    return (pieces - 1) / (last - first) if pieces > 1 and last > first else 0.0


def bench_serve(rounds: int = 4, max_tokens: int = 64) -> dict:
    """Tokens/s and time to first token through the gateway ÷ in process, p50/p95 under 8 clients.

    Both sides decode greedily on the default generalist with the user's thread setting, so they make
    the same tokens; a streamed piece is one token on both sides (the backend yields one per token).
    """
    import openai

    settings = load_settings()
    model_catalog = catalog.load_catalog()
    entry = model_catalog.get(None)
    generation = GenerationOptions(max_tokens=max_tokens, temperature=0.0, seed=0)
    backend = backends.load(entry, settings.load_options())
    port = _free_port()
    server = subprocess.Popen(
        [*_understudy_command(), "serve", "--port", str(port), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ,
    )
    try:
        listening = json.loads(server.stdout.readline())
        client = openai.OpenAI(
            base_url=listening["url"], api_key=listening["token"], max_retries=20, timeout=START_TIMEOUT_S
        )
        _http_turn(client, entry.id, "Say hi.", generation)  # waits for the model to load, warms up
        _local_turn(backend, "Say hi.", generation)
        http, local, turn_ms = [], [], []
        for round_index in range(rounds):
            prompt = f"{_PROMPTS[round_index % len(_PROMPTS)]} (round {round_index + 1})"
            order = ("http", "local") if round_index % 2 == 0 else ("local", "http")
            for side in order:
                if side == "http":
                    started = time.perf_counter()
                    http.append(_http_turn(client, entry.id, prompt, generation))
                    turn_ms.append((time.perf_counter() - started) * 1000)
                else:
                    local.append(_local_turn(backend, prompt, generation))
        with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
            latencies = sorted(
                pool.map(
                    lambda index: _timed_http_turn(client, entry.id, _PROMPTS[index % 4], generation),
                    range(CONCURRENT_CLIENTS),
                )
            )
        client.close()
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    router_ms = _router_ms()
    http_rate = statistics.median(rate for rate, _ in http)
    local_rate = statistics.median(rate for rate, _ in local)
    http_ttft = statistics.median(ttft for _, ttft in http)
    local_ttft = statistics.median(ttft for _, ttft in local)
    p95_index = min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))
    return {
        "model_id": entry.id,
        "n_threads": backend.n_threads,
        "rounds": rounds,
        "max_tokens": max_tokens,
        "http_tok_s": round(http_rate, 2),
        "inprocess_tok_s": round(local_rate, 2),
        "ratio": round(http_rate / local_rate, 4),
        "http_ttft_ms": round(http_ttft, 2),
        "inprocess_ttft_ms": round(local_ttft, 2),
        "ttft_ratio": round(http_ttft / local_ttft, 4),
        "concurrent_clients": CONCURRENT_CLIENTS,
        "concurrent_p50_ms": round(statistics.median(latencies), 1),
        "concurrent_p95_ms": round(latencies[p95_index], 1),
        "router_ms_p50": round(router_ms, 3),
        "router_share_of_request": round(router_ms / statistics.median(turn_ms), 5),
    }


def _http_turn(client, model_id: str, prompt: str, generation: GenerationOptions) -> tuple[float, float]:
    """(tokens/s, ttft ms) for one streamed request; the named generalist, so no routing is timed."""
    started = time.perf_counter()
    first = last = None
    pieces = 0
    stream = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=generation.max_tokens,
        temperature=generation.temperature,
        seed=generation.seed,
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
            pieces += 1
    return _rate(pieces, first, last), ((first or time.perf_counter()) - started) * 1000


def _timed_http_turn(client, model_id: str, prompt: str, generation: GenerationOptions) -> float:
    started = time.perf_counter()
    _http_turn(client, model_id, prompt, generation)
    return (time.perf_counter() - started) * 1000


def _local_turn(backend, prompt: str, generation: GenerationOptions) -> tuple[float, float]:
    started = time.perf_counter()
    first = last = None
    pieces = 0
    stream = backend.stream_chat([{"role": "user", "content": prompt}], generation)
    for piece in stream:
        if piece:
            last = time.perf_counter()
            first = first or last
            pieces += 1
    return _rate(pieces, first, last), ((first or time.perf_counter()) - started) * 1000


def _router_ms() -> float:
    """The median time of one routing decision (warm), on the user's log as the gateway reads it."""
    from engine.router import Router
    from engine.store import Store

    store = Store.open()
    router = Router(store)
    router.decide(_PROMPTS[0])
    times = []
    for prompt in _PROMPTS * 5:
        started = time.perf_counter()
        router.decide(prompt)
        times.append((time.perf_counter() - started) * 1000)
    store.close()
    return statistics.median(times)
