"""``understudy bench swap``: switching a task's LoRA adapter vs reloading the whole model.

Serving specialists only pays if changing task is cheap. Both sides are timed alternately in one run on
the same base: a reload constructs the model from its file again; a switch applies another adapter to the
loaded model (and resets its KV cache). The first switch to an adapter also reads it from disk, so it is
reported apart from a switch between adapters already loaded (``warm_ratio``), which is what serving
pays: loading a model reads its specialists' adapters ahead (``Agent.load_model``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from engine import backends, catalog
from engine.backends import LoadOptions

ADAPTED_WEIGHTS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def write_random_adapter(base_gguf: Path, out_path: Path, rank: int = 8, seed: int = 0) -> Path:
    """A GGUF LoRA adapter with random weights shaped for ``base_gguf``: a stand-in with the size and
    layout of a trained one, for timing swaps and checking that a swap really changes the model."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(base_gguf))
    architecture = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    generator = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(out_path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(rank))
    for tensor in reader.tensors:
        parts = tensor.name.split(".")
        if len(parts) != 4 or parts[0] != "blk" or parts[2] not in ADAPTED_WEIGHTS:
            continue
        in_features, out_features = (int(size) for size in tensor.shape[:2])
        lora_a = generator.normal(0, 0.05, (rank, in_features)).astype(np.float32)
        lora_b = generator.normal(0, 0.05, (out_features, rank)).astype(np.float32)
        writer.add_tensor(f"{tensor.name}.lora_a", lora_a)
        writer.add_tensor(f"{tensor.name}.lora_b", lora_b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def bench_swap(model_id: str | None = None, rounds: int = 5) -> dict:
    """Median adapter switch time ÷ median full reload time (target <= 0.1), with the raw figures."""
    from engine.backends.llama_cpp import LlamaCppBackend

    entry = catalog.load_catalog().get(model_id)
    weights = catalog.locate(entry)
    served = backends.load(entry, LoadOptions())
    reload_ms: list[float] = []
    first_switch_ms: list[float] = []
    switch_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="understudy-swap-") as folder:
        for round_index in range(rounds):
            started = time.perf_counter()
            LlamaCppBackend(entry, weights, LoadOptions()).close()
            reload_ms.append((time.perf_counter() - started) * 1000)

            fresh_path = Path(folder) / f"fresh-{round_index}.gguf"
            fresh = write_random_adapter(weights, fresh_path, seed=round_index)
            started = time.perf_counter()
            served.switch_adapter(fresh)
            first_switch_ms.append((time.perf_counter() - started) * 1000)

            for target in (None, fresh):
                started = time.perf_counter()
                served.switch_adapter(target)
                switch_ms.append((time.perf_counter() - started) * 1000)
        served.switch_adapter(None)
    reload_median = statistics.median(reload_ms)
    return {
        "model": entry.id,
        "rounds": rounds,
        "reload_ms": round(reload_median, 2),
        "first_switch_ms": round(statistics.median(first_switch_ms), 2),
        "switch_ms": round(statistics.median(switch_ms), 3),
        "ratio": round(statistics.median(first_switch_ms) / reload_median, 4),
        "warm_ratio": round(statistics.median(switch_ms) / reload_median, 4),
    }
