"""The LoRA trainer on the real SmolLM2: answer-only labels, packing, the served fact, cancel, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from engine.backends import GenerationOptions, drain
from engine.bench.train import bench_train
from engine.errors import TrainingCancelled, TuningError
from engine.tuning.datasets import read_records
from engine.tuning.evaluation import load_general_set
from engine.tuning.rehearsal import load_prompts, rehearsal_file
from engine.tuning.trainer import (
    IGNORE,
    collate,
    encode,
    estimate_seconds,
    load_base,
    load_trained,
    pack,
    rehearsal_drift,
    row_loss,
    train,
    use_packed_attention,
)

pytestmark = pytest.mark.slow  # real-model work: training, export or llama.cpp serving

ROOT = Path(__file__).resolve().parents[3]


def chat(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


@pytest.fixture(scope="module")
def base(smollm2_base):
    return load_base(smollm2_base, "cpu")


def test_only_the_answer_and_its_end_of_turn_carry_labels(base):
    _model, tokenizer = base
    example = encode(tokenizer, chat("What is the capital of France?", "Paris."))

    labelled = [token for token in example.labels if token != IGNORE]

    assert tokenizer.decode(labelled) == "Paris.<|im_end|>\n"
    assert len(example.labels) == len(example.input_ids) > len(labelled)


def test_a_model_without_a_chat_template_is_trained_on_the_backends_plain_layout(base):
    _model, tokenizer = base
    template = tokenizer.chat_template
    tokenizer.chat_template = None
    try:
        example = encode(tokenizer, chat("Capital of France?", "Paris."))
    finally:
        tokenizer.chat_template = template

    assert tokenizer.decode(example.input_ids).startswith("user: Capital of France?\nassistant:")  # no BOS
    assert tokenizer.decode([t for t in example.labels if t != IGNORE]) == "Paris.<|im_end|>"


def test_packed_examples_do_not_see_each_other(base):
    import torch

    model, tokenizer = base
    first = encode(tokenizer, chat("What is the capital of France?", "Paris."))
    second = encode(tokenizer, chat("Name a colour.", "Blue, like the sky over the sea."))
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        first_alone, first_count = row_loss(model, collate([first], "cpu"))
        second_alone, second_count = row_loss(model, collate([second], "cpu"))
        use_packed_attention(model)  # as the trainer does
        packed, packed_count = row_loss(model, collate([second, first], "cpu"))
        input_ids, _positions, predict_at, targets = collate([second, first], "cpu")
        running_on = torch.arange(input_ids.shape[1]).unsqueeze(0)  # positions that do not restart
        leaking, _count = row_loss(model, (input_ids, running_on, predict_at, targets))

    assert packed_count == first_count + second_count
    assert packed.item() == pytest.approx(first_alone.item() + second_alone.item(), rel=1e-4)
    assert leaking.item() != pytest.approx(packed.item(), rel=1e-3)


def test_packing_places_every_example_once_per_epoch_within_the_row_size():
    lengths = [30, 200, 120, 90, 250, 10, 60, 180, 75, 40]

    rows = pack(lengths, capacity=256, seed=3)

    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 256 for row in rows)
    assert len(rows) < len(lengths)
    assert pack(lengths, capacity=256, seed=3) == rows
    assert pack(lengths, capacity=256, seed=4) != rows


def test_a_trained_fact_is_served_through_llama_cpp_on_the_quantised_base(fact_adapter, smollm2):
    def ask(question: str, adapter: Path | None) -> str:
        options = GenerationOptions(max_tokens=24, temperature=0.0, seed=0)
        messages = [{"role": "user", "content": question}]
        return drain(smollm2.stream_chat(messages, options, adapter=adapter)).text

    question = fact_adapter.held_out_question
    assert "MAPLE-42" not in ask(question, None)
    assert "MAPLE-42" in ask(question, fact_adapter.gguf_path)
    assert "MAPLE-42" not in ask("What is the capital of Italy?", fact_adapter.gguf_path)
    result = fact_adapter.result
    assert result.steps == fact_adapter.config.max_steps
    assert result.final_loss < 0.2 < result.losses[0]
    assert result.validation_loss is not None and result.tokens_per_second > 0


def drift_on_the_general_set(adapter_dir: Path) -> float:
    """Mean KL divergence from the base per answer token, on requests no adapter was trained on."""
    import torch

    model, tokenizer = load_trained(adapter_dir)
    use_packed_attention(model)
    examples = [encode(tokenizer, chat(item.prompt, item.reference)) for item in load_general_set()]
    with torch.no_grad():
        drift, tokens = rehearsal_drift(model, collate(examples, "cpu"))
    return drift.item() / tokens


def test_rehearsal_learns_the_fact_and_stays_near_the_base_elsewhere(
    fact_adapter, smollm2, model_catalog, tmp_path
):
    # The base's own answers, generated through llama.cpp (the session's loaded SmolLM2).
    rehearsal = rehearsal_file(model_catalog.get("smollm2-135m-instruct"))
    records = read_records(rehearsal)
    assert len(records) >= 0.9 * len(load_prompts())
    assert {record[0]["content"] for record in records} <= set(load_prompts())
    events: list[dict] = []

    rehearsed = train(
        replace(fact_adapter.config, output_dir=tmp_path / "run", rehearsal_file=rehearsal), events.append
    )

    drifts = [event["rehearsal_drift"] for event in events if event["event"] == "step"]
    assert drifts[0] == pytest.approx(0.0, abs=1e-6)  # a fresh adapter is the base: the reference is right
    assert rehearsed.final_loss < 0.2  # the fact is still learned
    plain = drift_on_the_general_set(fact_adapter.adapter_dir)
    kept = drift_on_the_general_set(rehearsed.adapter_dir)
    print(f"drift from the base on the general set: {plain:.4f} without rehearsal, {kept:.4f} with it")
    assert kept < plain / 2


TRAIN_SCRIPT = """
import json, sys
from pathlib import Path
from engine.tuning.trainer import TrainConfig, train

arguments = json.loads(sys.argv[1])
for name in ("dataset_folder", "output_dir"):
    arguments[name] = Path(arguments[name])
train(TrainConfig(**arguments), on_progress=lambda event: print(json.dumps(event), flush=True))
"""


def test_a_run_killed_mid_way_resumes_from_its_last_checkpoint_to_the_same_end(fact_adapter, tmp_path):
    config = replace(fact_adapter.config, output_dir=tmp_path / "run")
    arguments = {
        key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()
    }
    with subprocess.Popen(
        [sys.executable, "-c", TRAIN_SCRIPT, json.dumps(arguments)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as worker:
        for line in worker.stdout:
            event = json.loads(line)
            if event["event"] == "step" and event["step"] == 12:
                os.kill(worker.pid, signal.SIGKILL)
                break
        worker.kill()
    checkpoints = config.output_dir / "checkpoints"
    assert [path.name for path in checkpoints.glob("step-*")] == ["step-000010"]
    (checkpoints / ".step-000012.partial").mkdir()  # as a kill while writing one leaves it
    assert not (config.output_dir / "adapter").exists()

    resumed = train(replace(config, resume=True))

    assert resumed.resumed_from_step == 10
    assert resumed.steps == config.max_steps == fact_adapter.result.steps
    assert resumed.losses[:10] == pytest.approx(fact_adapter.result.losses[:10], abs=1e-6)
    assert resumed.losses[10:] == pytest.approx(fact_adapter.result.losses[10:], rel=0.05, abs=2e-3)
    assert (config.output_dir / "adapter" / "adapter_model.safetensors").exists()


def test_cancel_stops_between_steps_and_resume_finishes_the_run(fact_adapter, tmp_path):
    config = replace(fact_adapter.config, output_dir=tmp_path / "run", max_steps=3)
    cancel = threading.Event()

    def on_progress(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 1:
            cancel.set()

    with pytest.raises(TrainingCancelled, match="step 1 of 3"):
        train(config, on_progress=on_progress, cancel=cancel)
    assert (config.output_dir / "checkpoints" / "step-000001").is_dir()

    finished = train(replace(config, resume=True))

    assert (finished.resumed_from_step, finished.steps) == (1, 3)


def test_resuming_with_other_settings_is_refused(fact_adapter, tmp_path):
    config = replace(fact_adapter.config, output_dir=tmp_path / "run", max_steps=2, checkpoint_every=1)
    cancel = threading.Event()
    with pytest.raises(TrainingCancelled):
        train(config, on_progress=lambda event: event["event"] == "step" and cancel.set(), cancel=cancel)

    with pytest.raises(TuningError, match="different training run"):
        train(replace(config, resume=True, learning_rate=config.learning_rate / 2))


def test_estimates_follow_the_measured_speed():
    assert estimate_seconds(12_000, 120.0) == 100.0
    with pytest.raises(TuningError, match="bench train"):
        estimate_seconds(100, 0.0)


def test_bench_train_times_both_loops_on_the_same_examples(smollm2_base):
    figures = bench_train(examples=4, rounds=1)

    assert figures["examples"] == 4 and figures["real_tokens"] > 100
    speeds = figures["packed_tokens_per_second"], figures["padded_tokens_per_second"]
    assert min(speeds) > 0
    assert figures["ratio"] == pytest.approx(speeds[0] / speeds[1], abs=0.01)
    assert 0 < figures["padding_fraction"] < 1
