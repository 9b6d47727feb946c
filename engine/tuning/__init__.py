"""Tuning (S4 + S5): from the log to a LoRA specialist that llama.cpp serves on the quantised base.

- ``datasets``: a task's examples from the log (rated up or accepted answers, approved cloud answers)
  or from a JSONL file, deduplicated, scrubbed of personal data and split into train and validation.
- ``base_choice``: which installed model a task's specialist starts from (best zero-shot score).
- ``dequantise``: the float model dequantised from a GGUF by transformers, cached per sha256.
- ``rehearsal``: the base's own answers to everyday prompts, trained on alongside the task.
- ``trainer``: LoRA with peft + torch in an explicit loop (answer-only loss, packing, accumulation,
  atomic checkpoints and resume).
- ``export``: the PEFT adapter written as a GGUF LoRA adapter file for llama.cpp.
- ``evaluation``: task and general-set scores through llama.cpp, and the gate that promotes.
- ``adapters``: the registry of adapters, atomic publish, promotion and rollback.
- ``jobs``: tuning jobs, one running at a time, their logs, stale and cancelled workers.
- ``events``: what a job reports, typed, its JSON lines, and the words a person reads for each.
- ``pipeline``: one job from dataset to gate, run as a row of ``jobs``.
- ``scheduler``: when a queued job may run (the nightly window, idle, AC power).
- ``overview``: where tuning stands, read in one go for the desktop app, and how long a job takes.

Heavy libraries (torch, transformers, peft, gguf) are imported inside the functions that need them.
"""
