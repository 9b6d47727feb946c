"""``understudy bench train``: the trainer's speed against a naive padded loop, side by side.

Both loops train the same LoRA (same base, same initial weights) on the same examples, each example once,
measured in alternating order within one run so a busy machine slows both alike:

- packed (the trainer's): examples packed into rows of ``batch_tokens``, attention example by example,
  logits only where an answer token is predicted;
- padded (the usual first attempt): batches of ``batch_size`` examples padded to the longest, with an
  attention mask (sdpa), the model's own loss over the answer tokens (full logits at every position).

Speed is real (non-padding) tokens per second. The examples are generated with answer lengths spread like
a chat log's (log-normal, a few words to a few hundred), since padding waste depends on that spread.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from engine import catalog
from engine.tuning.datasets import Messages
from engine.tuning.trainer import (
    LEARNING_RATE,
    encode,
    load_base,
    pick_device,
    set_threads,
    use_packed_attention,
    with_lora,
)

VOCABULARY = (
    "the a of and to in is it that for on with as was at by this from be have are not or an they which one "
    "you had her all she there would their we him been has when who will more no if out so said what up "
    "its about into than them can only other new some could time these two may then do first any my now "
    "such like our over man me even most made after also did many before must through back years where "
    "much your way well down should because each just those people how too little state good very make "
    "world still own see men work long get here between both life being under never day same another know "
    "while last might us great old year off come since against go came right used take three"
)
TARGET_RATIO = 1.5


def synthetic_records(count: int, seed: int = 0) -> list[Messages]:
    """Chat records with short questions and answers of widely varying length."""
    rng = random.Random(seed)
    vocabulary = VOCABULARY.split()

    def sentence(words: int) -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(words)).capitalize() + "."

    records = []
    for _ in range(count):
        answer_words = max(3, min(300, round(rng.lognormvariate(3.8, 0.8))))
        records.append(
            [
                {"role": "user", "content": sentence(rng.randint(5, 30)) + " Explain."},
                {"role": "assistant", "content": sentence(answer_words)},
            ]
        )
    return records


def bench_train(
    model_id: str | None = None,
    examples: int = 32,
    batch_size: int = 4,
    batch_tokens: int = 1024,
    rounds: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Tokens per second of the packed trainer and of the padded loop, and their ratio."""
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from engine.tuning.dequantise import dequantised_base

    entry = catalog.load_catalog().get(model_id)
    set_threads()
    device = pick_device(None)
    model, tokenizer = load_base(dequantised_base(entry), device)
    encoded = [encode(tokenizer, messages) for messages in synthetic_records(examples, seed)]
    encoded = [example for example in encoded if len(example.input_ids) <= batch_tokens]
    torch.manual_seed(seed)
    model = with_lora(model)
    model.train()
    initial = {name: value.clone() for name, value in get_peft_model_state_dict(model).items()}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    loops = {
        "packed": lambda optimizer: _packed_pass(model, encoded, batch_tokens, seed, optimizer, device),
        "padded": lambda optimizer: _padded_pass(model, encoded, batch_size, pad, optimizer, device),
    }
    seconds: dict[str, list[float]] = {name: [] for name in loops}
    steps: dict[str, int] = {}
    for round_number in range(rounds):
        order = list(loops) if round_number % 2 == 0 else list(reversed(loops))
        for name in order:
            set_peft_model_state_dict(model, initial)
            parameters = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.0)
            started = time.perf_counter()
            steps[name] = loops[name](optimizer)
            seconds[name].append(time.perf_counter() - started)

    real_tokens = sum(len(example.input_ids) for example in encoded)
    padded_tokens = sum(
        len(batch) * max(len(e.input_ids) for e in batch) for batch in _batches(encoded, batch_size)
    )
    speed = {name: real_tokens / statistics.median(times) for name, times in seconds.items()}
    ratio = speed["packed"] / speed["padded"]
    return {
        "model": entry.id,
        "device": device,
        "threads": torch.get_num_threads(),
        "examples": len(encoded),
        "real_tokens": real_tokens,
        "rounds": rounds,
        "packed_tokens_per_second": round(speed["packed"], 1),
        "padded_tokens_per_second": round(speed["padded"], 1),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "packed_steps": steps["packed"],
        "padded_steps": steps["padded"],
        "batch_size": batch_size,
        "batch_tokens": batch_tokens,
        "padding_fraction": round(1 - real_tokens / padded_tokens, 3),
    }


def _packed_pass(model, examples, batch_tokens: int, seed: int, optimizer, device: str) -> int:
    from engine.tuning.trainer import collate, pack, row_loss

    use_packed_attention(model)
    rows = pack([len(e.input_ids) for e in examples], batch_tokens, seed)
    for row in rows:
        loss, count = row_loss(model, collate([examples[i] for i in row], device))
        (loss / count).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(rows)


def _batches(examples, batch_size: int):
    return [examples[start : start + batch_size] for start in range(0, len(examples), batch_size)]


def _padded_pass(model, examples, batch_size: int, pad: int, optimizer, device: str) -> int:
    import torch

    from engine.tuning.trainer import IGNORE

    model.set_attn_implementation("sdpa")
    batches = _batches(examples, batch_size)
    for batch in batches:
        longest = max(len(e.input_ids) for e in batch)
        room = [longest - len(e.input_ids) for e in batch]
        input_ids = torch.tensor([e.input_ids + [pad] * r for e, r in zip(batch, room, strict=True)])
        mask = torch.tensor([[1] * len(e.input_ids) + [0] * r for e, r in zip(batch, room, strict=True)])
        labels = torch.tensor([e.labels + [IGNORE] * r for e, r in zip(batch, room, strict=True)])
        output = model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            labels=labels.to(device),
            use_cache=False,
        )
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(batches)
