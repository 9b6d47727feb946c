"""Tuning (S4 + S5): from the log to a LoRA specialist that llama.cpp serves on the quantised base.

- ``datasets``: a task's examples from the log (rated up or accepted answers, approved cloud answers)
  or from a JSONL file, deduplicated, scrubbed of personal data and split into train and validation.
- ``base_model``: the float model dequantised from a GGUF by transformers, cached per sha256.
- ``trainer``: LoRA with peft + torch in an explicit loop (answer-only loss, packing, accumulation,
  atomic checkpoints and resume).
- ``export``: the PEFT adapter written as a GGUF LoRA adapter file for llama.cpp.
- ``train_bench``: the trainer's tokens/s against a naive padded loop, side by side.

Heavy libraries (torch, transformers, peft, gguf) are imported inside the functions that need them.
"""
