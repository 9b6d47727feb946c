"""Next-token logits of a trained adapter in PEFT against llama.cpp serving its GGUF export.

Shared by the export test and the model-family tests; ``comparison`` reports the worst case over the
prompts, so a test states its bound once.
"""

from __future__ import annotations

import numpy as np

from engine.backends.llama_cpp import new_llama, physical_cores
from engine.tuning.trainer import load_trained

PROMPTS = ["Please tell me what project Blue Heron's codename is.", "What is the capital of Italy?"]


def write_float_gguf(source, target) -> None:
    """A copy of a GGUF model with every tensor dequantised to F32 (metadata kept)."""
    import gguf

    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(str(target), reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "general.file_type":
            writer.add_uint32(key, int(gguf.LlamaFileType.ALL_F32))
            continue
        value_type = field.types[0]
        item_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), value_type, item_type)
    for tensor in reader.tensors:
        writer.add_tensor(
            tensor.name, gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def peft_logits(adapter_dir, prompt_text) -> list[tuple]:
    """Per prompt: its rendered text, its tokens, and PEFT's logits at every position with and without
    the adapter; ``prompt_text(tokenizer, prompt)`` renders a prompt as the model is served it."""
    import torch

    model, tokenizer = load_trained(adapter_dir)
    figures = []
    for prompt in PROMPTS:
        text = prompt_text(tokenizer, prompt)
        tokens = tokenizer(text, add_special_tokens=False).input_ids
        with torch.no_grad():
            adapted = model(torch.tensor([tokens]), use_cache=False).logits[0].numpy()
            with model.disable_adapter():
                base = model(torch.tensor([tokens]), use_cache=False).logits[0].numpy()
        figures.append((text, tokens, adapted, base))
    return figures


def llama_cpp_logits(model_path, adapter, text: str, tokens: list[int]) -> np.ndarray:
    llama = new_llama(
        model_path=str(model_path),
        lora_path=None if adapter is None else str(adapter),
        n_ctx=256,
        n_threads=physical_cores(),
        logits_all=True,
        verbose=False,
    )
    try:
        assert llama.tokenize(text.encode(), add_bos=False, special=True) == tokens  # same prompt
        llama.eval(tokens)
        return np.array(llama.scores[: len(tokens)])
    finally:
        llama.close()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def comparison(model_path, adapter, torch_figures) -> dict[str, float]:
    """The worst case over the prompts of: max abs logit difference, effect cosine, argmax agreement."""
    worst = {"max_abs": 0.0, "effect_cosine": 1.0, "argmax_agreement": 1.0, "last_token_agrees": True}
    for text, tokens, adapted, base in torch_figures:
        served = llama_cpp_logits(model_path, adapter, text, tokens)
        served_base = llama_cpp_logits(model_path, None, text, tokens)
        worst["max_abs"] = max(worst["max_abs"], float(np.abs(served - adapted).max()))
        worst["effect_cosine"] = min(worst["effect_cosine"], cosine(served - served_base, adapted - base))
        agreement = float((served.argmax(-1) == adapted.argmax(-1)).mean())
        worst["argmax_agreement"] = min(worst["argmax_agreement"], agreement)
        worst["last_token_agrees"] &= bool(served[-1].argmax() == adapted[-1].argmax())
    return worst
