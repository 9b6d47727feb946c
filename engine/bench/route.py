"""How much a routing decision adds to a turn: its p50/p95 time against the turn's time to first token.

Runs on the shipped sample log (resources/task_log_sample.jsonl, seven labelled tasks) in a scratch
database: import, discover (purity and outlier shares reported too), then many decisions with a warm
router, alternating with real turns on the default model whose time to first token is the yardstick.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from engine import catalog, embeddings, paths
from engine.agent import Agent
from engine.backends import GenerationOptions, drain
from engine.discovery import discover
from engine.log_import import import_chat_jsonl
from engine.router import Router
from engine.store import Store

SAMPLE = "resources/task_log_sample.jsonl"
WARM_UP = 20
TURN_PROMPTS = (
    "Convert 5 miles to kilometers.",
    "Write a haiku about the sea.",
    "What is the capital of Italy?",
)


def bench_route(
    decisions: int = 500, turns: int = 3, model_id: str | None = None, encoder_name: str | None = None
) -> dict:
    """p50/p95 decision time over ``decisions`` warm decisions and its ratio to the median ttft of
    ``turns`` real turns, measured in the same run."""
    sample = paths.shipped_file(SAMPLE)
    records = [json.loads(line) for line in sample.read_text(encoding="utf-8").splitlines() if line.strip()]
    truth = {}
    for record in records:
        request = next(message["content"] for message in record["messages"] if message["role"] == "user")
        truth[request] = record["task"]
    encoder = embeddings.load_encoder(encoder_name or embeddings.DEFAULT_ENCODER)
    model_catalog = catalog.load_catalog()
    with tempfile.TemporaryDirectory(prefix="understudy-route-bench-") as folder:
        store = Store.open(Path(folder) / "bench.db")
        import_chat_jsonl(store, sample)
        labels = {
            row["id"]: truth.get(row["user_text"])
            for row in store.db.query("SELECT id, user_text FROM turns")
        }
        found = discover(store, encoder=encoder, known_labels=labels)
        router = Router(store, encoder=encoder)
        prompts = list(truth)
        for prompt in prompts[:WARM_UP]:
            router.decide(prompt)
        agent = Agent(
            store, model_catalog, generation=GenerationOptions(max_tokens=8, temperature=0.0, seed=0)
        )
        entry = agent.model_entry(model_id)
        agent.load_model(entry.id)
        decision_ms: list[float] = []
        ttft_ms: list[float] = []
        for round_index in range(turns):
            for _ in range(decisions // turns + (round_index < decisions % turns)):
                prompt = prompts[len(decision_ms) % len(prompts)]
                started = time.perf_counter()
                router.decide(prompt)
                decision_ms.append((time.perf_counter() - started) * 1000)
            result = drain(agent.run_turn(TURN_PROMPTS[round_index % len(TURN_PROMPTS)], model_id=entry.id))
            ttft_ms.append(result.completion.ttft_ms)
        store.close()

    decision_ms.sort()
    p50 = statistics.median(decision_ms)
    p95 = decision_ms[min(len(decision_ms) - 1, round(0.95 * (len(decision_ms) - 1)))]
    ttft = statistics.median(ttft_ms)
    return {
        "encoder": encoder.name,
        "model_id": entry.id,
        "decisions": len(decision_ms),
        "decision_ms_p50": round(p50, 3),
        "decision_ms_p95": round(p95, 3),
        "ttft_ms": round(ttft, 2),
        "ratio_p50_to_ttft": float(f"{p50 / ttft:.4g}"),
        "requests": found.n_requests,
        "tasks": found.n_clusters,
        "purity": found.purity,
        "outlier_share_before": found.outlier_share_before,
        "outlier_share_after": found.outlier_share_after,
    }
