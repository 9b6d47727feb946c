"""GGUF LoRA export: the file's format, and next-token logits of PEFT in torch against llama.cpp.

Two comparisons, because they answer different questions:

- On an F32 GGUF holding exactly the weights torch trained on (the Q4_1 file dequantised by the gguf
  package, the same numbers transformers dequantises), llama.cpp with the adapter must reproduce PEFT's
  logits at every prompt position up to float rounding (max abs difference < 0.25; measured 0.03-0.08
  on logits whose spread is about 30). This is where a wrong tensor name, transpose, scale or Q/K
  permutation shows.
- On the quantised Q4_1 base that is really served, llama.cpp computes with quantised weights and
  activations, so absolute logits differ from torch's (by about 1.4 without any adapter). The adapter's
  effect (logits with it minus logits without it) must still point the same way: cosine > 0.98 over all
  positions (measured 0.994-0.998), and the next token after the prompt must agree. Without the Q/K
  permutation the F32 comparison is off by 8-14 and the effect cosine falls to about 0.95.
"""

from __future__ import annotations

import json
import shutil

import pytest
from adapter_logits import comparison, peft_logits, write_float_gguf

from engine import catalog
from engine.errors import TuningError
from engine.tuning.export import export_gguf_adapter
from engine.tuning.trainer import TRAINING_RECORD

pytestmark = pytest.mark.slow  # real-model work: training, export or llama.cpp serving


@pytest.fixture(scope="module")
def smollm2_entry(model_catalog):
    return model_catalog.get("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def float_smollm2(tmp_path_factory, smollm2_entry):
    target = tmp_path_factory.mktemp("f32") / "smollm2-f32.gguf"
    write_float_gguf(catalog.locate(smollm2_entry), target)
    yield target
    target.unlink()


@pytest.fixture(scope="module")
def torch_logits(fact_adapter):
    def chat_prompt(tokenizer, prompt: str) -> str:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    return peft_logits(fact_adapter.adapter_dir, chat_prompt)


def test_the_export_is_a_gguf_lora_adapter_for_the_base(fact_adapter):
    import gguf

    reader = gguf.GGUFReader(fact_adapter.gguf_path)
    fields = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    shapes = {tensor.name: [int(n) for n in tensor.shape] for tensor in reader.tensors}

    assert fields["general.architecture"] == "llama"
    assert (fields["general.type"], fields["adapter.type"]) == ("adapter", "lora")
    assert reader.fields["adapter.lora.alpha"].types == [gguf.GGUFValueType.FLOAT32]
    assert fields["adapter.lora.alpha"] == fact_adapter.config.alpha
    names = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
    expected = {f"blk.{i}.{n}.weight.lora_{s}" for i in range(30) for n in names for s in "ab"}
    assert set(shapes) == expected
    rank = fact_adapter.config.rank
    assert shapes["blk.0.attn_k.weight.lora_a"] == [576, rank]  # GGUF order: in-features first
    assert shapes["blk.0.attn_k.weight.lora_b"] == [rank, 192]  # 3 key-value heads of 64
    assert shapes["blk.7.ffn_down.weight.lora_a"] == [1536, rank]
    assert fact_adapter.gguf_sha256 == catalog.sha256_of(fact_adapter.gguf_path)


def test_llama_cpp_reproduces_peft_logits_on_a_float_copy_of_the_base(
    fact_adapter, float_smollm2, torch_logits
):
    figures = comparison(float_smollm2, fact_adapter.gguf_path, torch_logits)

    assert figures["max_abs"] < 0.25
    assert figures["argmax_agreement"] == 1.0
    assert figures["effect_cosine"] > 0.999


def test_the_adapter_changes_the_quantised_base_as_it_changes_peft(fact_adapter, smollm2_entry, torch_logits):
    figures = comparison(catalog.locate(smollm2_entry), fact_adapter.gguf_path, torch_logits)

    assert figures["effect_cosine"] > 0.98
    assert figures["last_token_agrees"]


def test_a_missing_qk_permutation_would_be_caught(
    fact_adapter, smollm2_entry, float_smollm2, torch_logits, tmp_path
):
    unpermuted = tmp_path / "unpermuted.gguf"
    export_gguf_adapter(fact_adapter.adapter_dir, smollm2_entry, unpermuted, permute=False)

    right = comparison(float_smollm2, fact_adapter.gguf_path, torch_logits)
    wrong = comparison(float_smollm2, unpermuted, torch_logits)

    assert wrong["max_abs"] > 10 * right["max_abs"]
    assert wrong["effect_cosine"] < 0.99 < right["effect_cosine"]


def test_a_missing_damaged_or_foreign_adapter_is_refused_and_nothing_is_written(
    fact_adapter, smollm2_entry, tmp_path
):
    def refused(adapter_dir, message: str) -> None:
        out = tmp_path / "out.gguf"
        with pytest.raises(TuningError, match=message):
            export_gguf_adapter(adapter_dir, smollm2_entry, out)
        assert list(tmp_path.glob("out.gguf*")) == []

    refused(tmp_path / "nowhere", "not a trained adapter")

    damaged = tmp_path / "damaged"
    shutil.copytree(fact_adapter.adapter_dir, damaged)
    (damaged / "adapter_model.safetensors").write_bytes(b"\x00" * 100)
    refused(damaged, "is damaged")

    foreign = tmp_path / "foreign"
    shutil.copytree(fact_adapter.adapter_dir, foreign)
    record = json.loads((foreign / TRAINING_RECORD).read_text())
    record["result"]["base_sha256"] = "0" * 64
    (foreign / TRAINING_RECORD).write_text(json.dumps(record))
    refused(foreign, "trained on another base model")

    misshapen = tmp_path / "misshapen"
    shutil.copytree(fact_adapter.adapter_dir, misshapen)
    (misshapen / TRAINING_RECORD).unlink()
    from safetensors.torch import load_file, save_file

    weights = load_file(misshapen / "adapter_model.safetensors")
    key = next(k for k in weights if "layers.3.self_attn.q_proj.lora_A" in k)
    weights[key] = weights[key][:, :500].contiguous()
    save_file(weights, misshapen / "adapter_model.safetensors")
    refused(misshapen, r"does not fit 'smollm2-135m-instruct': blk\.3\.attn_q\.weight")
