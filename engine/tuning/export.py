"""A PEFT LoRA adapter written as the GGUF LoRA adapter file llama.cpp loads on the quantised base.

The file holds ``general.architecture`` (the base's), ``general.type = adapter``, ``adapter.type =
lora`` and ``adapter.lora.alpha`` (float32), and for each adapted weight ``blk.N.<name>.weight`` the
tensors ``blk.N.<name>.weight.lora_a`` (rank x in) and ``.lora_b`` (out x rank), written as PEFT holds
them (the writer reverses the dimension order itself). llama.cpp scales by alpha / rank, rank being read
from the tensors; any other PEFT scaling (rsLoRA, per-module alpha or rank) is folded into ``lora_b``.

For the llama architecture llama.cpp's converter permutes the rows of the Q and K projections (rotary
embedding layout), so the rows of their ``lora_b`` get the same permutation: reshape the rows as
(heads, 2, rows / heads / 2), swap the middle axes, reshape back; heads are the attention heads for Q
and the key-value heads for K. qwen2 and gemma3 keep Hugging Face's layout.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from engine import catalog, files
from engine.catalog import ModelEntry
from engine.errors import TuningError

GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
PERMUTED_ARCHITECTURES = frozenset({"llama"})
_KEY = re.compile(
    r"(?:^|\.)layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.weight$"
)


def permute_rows(weights, heads: int):
    """llama.cpp's Q/K row permutation (its converter's ``permute``) applied to a (rows x rank) array."""
    grouped = weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
    return grouped.swapaxes(1, 2).reshape(weights.shape)


def export_gguf_adapter(
    adapter_dir: Path, base_entry: ModelEntry, out_path: Path, permute: bool = True
) -> str:
    """Write ``adapter_dir`` (a PEFT ``save_pretrained`` folder) as a GGUF LoRA for ``base_entry``;
    return the file's sha256. ``permute=False`` skips the llama Q/K permutation (only to test it)."""
    import numpy as np
    from gguf import GGUFReader

    adapter_dir = Path(adapter_dir)
    settings, weights = _read_adapter(adapter_dir)
    base_path = catalog.locate(base_entry)
    _check_base(adapter_dir, base_path)
    reader = GGUFReader(base_path)
    architecture = reader.fields["general.architecture"].contents()
    heads = reader.fields[f"{architecture}.attention.head_count"].contents()
    kv_heads = reader.fields[f"{architecture}.attention.head_count_kv"].contents()
    base_shapes = {tensor.name: [int(n) for n in tensor.shape] for tensor in reader.tensors}

    alpha = float(settings["lora_alpha"])
    if settings.get("use_rslora"):
        alpha *= math.sqrt(settings["r"])  # llama.cpp divides by rank; rsLoRA divides by its square root
    pairs: dict[str, dict[str, np.ndarray]] = {}
    modules: dict[str, str] = {}
    for key, tensor in weights.items():
        match = _KEY.search(key)
        if match is None:
            raise TuningError(
                f"{adapter_dir}: the adapter changes {key}, which has no GGUF LoRA counterpart; train "
                "LoRA on the attention and MLP projections only."
            )
        layer, module, side = match.groups()
        name = f"blk.{layer}.{GGUF_NAMES[module]}.weight"
        pairs.setdefault(name, {})[side] = tensor.float().numpy()
        modules[name] = module
    tensors: list[tuple[str, np.ndarray]] = []
    for name in sorted(pairs, key=_natural):
        pair = pairs[name]
        if set(pair) != {"A", "B"}:
            raise TuningError(f"{adapter_dir}: {name} has lora_{'A' if 'A' not in pair else 'B'} missing.")
        lora_a, lora_b = pair["A"], pair["B"]
        rank = lora_a.shape[0]
        lora_b = lora_b * (_scale(settings, modules[name], rank) / (alpha / rank))
        expected = base_shapes.get(name)  # GGUF order: [in, out]
        if expected is None or expected != [lora_a.shape[1], lora_b.shape[0]] or lora_b.shape[1] != rank:
            raise TuningError(
                f"{adapter_dir} does not fit '{base_entry.id}': {name} is {expected} in the base, the "
                f"adapter's is [{lora_a.shape[1]}, {lora_b.shape[0]}]. Export it for the base it was "
                "trained on."
            )
        if permute and architecture in PERMUTED_ARCHITECTURES:
            if modules[name] == "self_attn.q_proj":
                lora_b = permute_rows(lora_b, heads)
            elif modules[name] == "self_attn.k_proj":
                lora_b = permute_rows(lora_b, kv_heads)
        tensors += [(f"{name}.lora_a", lora_a), (f"{name}.lora_b", lora_b)]
    if not tensors:
        raise TuningError(f"{adapter_dir} holds no LoRA weights; train the adapter again.")
    _write(out_path, architecture, alpha, tensors)
    return catalog.sha256_of(out_path)


def _read_adapter(adapter_dir: Path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not config_path.exists() or not weights_path.exists():
        raise TuningError(
            f"{adapter_dir} is not a trained adapter (adapter_config.json and adapter_model.safetensors "
            "are expected); train it again."
        )
    try:
        settings = json.loads(config_path.read_text(encoding="utf-8"))
        weights = load_file(weights_path)
    except (ValueError, OSError, SafetensorError) as error:
        raise TuningError(f"{adapter_dir} is damaged ({error}); train the adapter again.") from error
    if settings.get("peft_type") != "LORA" or settings.get("use_dora"):
        raise TuningError(f"{adapter_dir} is not a plain LoRA adapter; llama.cpp serves only LoRA.")
    return settings, weights


def _check_base(adapter_dir: Path, base_path: Path) -> None:
    """An adapter trained by Understudy names the GGUF it was trained on; refuse another one."""
    from engine.tuning.trainer import TRAINING_RECORD

    record_path = adapter_dir / TRAINING_RECORD
    if not record_path.exists():
        return
    trained_on = json.loads(record_path.read_text(encoding="utf-8")).get("result", {}).get("base_sha256")
    if trained_on and trained_on != catalog.remembered_sha256(base_path):
        raise TuningError(
            f"{adapter_dir} was trained on another base model (GGUF sha256 {trained_on[:12]}…) than "
            f"{base_path.name}; export it for the model it was trained on."
        )


def _scale(settings: dict, module: str, rank: int) -> float:
    """PEFT's scale for one module: its alpha over its rank (square root of it with rsLoRA)."""
    short = module.split(".")[-1]
    alpha = _pattern_value(settings.get("alpha_pattern") or {}, module, short, settings["lora_alpha"])
    return float(alpha) / (math.sqrt(rank) if settings.get("use_rslora") else rank)


def _pattern_value(patterns: dict, module: str, short: str, default):
    for pattern, value in patterns.items():
        if pattern in (module, short) or module.endswith(pattern):
            return value
    return default


def _natural(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _write(out_path: Path, architecture: str, alpha: float, tensors) -> None:
    """The GGUF file, written beside its target and renamed over it once complete and synced."""
    import gguf
    import numpy as np

    with files.publishing(Path(out_path)) as partial:
        writer = gguf.GGUFWriter(str(partial), architecture)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for name, array in tensors:
            writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
