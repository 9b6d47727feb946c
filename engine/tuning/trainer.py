"""LoRA training (S5): an explicit loop over packed examples, with atomic checkpoints and resume.

Read it top to bottom like a recipe: ``train`` loads the dequantised base and the dataset, wraps the
model with PEFT LoRA, then runs the loop (micro-batches, gradient accumulation, optimizer step, progress,
checkpoint) and saves the adapter.

- Examples are rendered with the model's chat template (or, for a GGUF without one, the plain
  ``role: content`` layout the llama.cpp backend falls back to), so training sees exactly the prompt the
  served model will see. Only the tokens of the last assistant message (its end-of-turn marker included)
  carry a label; everything else is context.
- Examples are packed several to a row of ``batch_tokens`` tokens instead of padded. Position ids
  restart at each example, and attention is computed example by example (``packed_attention``): no
  example sees another, and no time goes into the row-long attention matrix a mask would still compute
  (about a third of a 1,000-token step). Logits are computed only where a label is, which skips most
  of the large vocabulary projection.
- With a rehearsal file (the base's own answers to everyday requests, ``engine.tuning.rehearsal``),
  every micro-batch of task examples is followed by a packed row of rehearsal examples, run with the
  adapter switched off and on; the KL divergence between the two, times ``rehearsal_weight``, joins the
  loss, so the adapter changes the model only where the task needs it.
- The data order is a seeded shuffle per epoch, so a step's micro-batches are a function of the seed
  and the step alone: resuming needs only the step number.
- A checkpoint (LoRA weights, optimizer, scheduler, RNG state, step and data position) is written into a
  temporary folder, fsynced and renamed, so a kill at any moment leaves the previous complete one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine import files
from engine.errors import TrainingCancelled, TuningError
from engine.tuning.datasets import Messages, read_records

RANK = 16
ALPHA = 32.0
LEARNING_RATE = 1e-3
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
IGNORE = -100
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
TRAINING_RECORD = "understudy-training.json"
KEEP_CHECKPOINTS = 2

Progress = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    """What to train. Steps are optimizer steps; each takes ``gradient_accumulation`` packed rows."""

    base_model_id: str
    dataset_folder: Path
    output_dir: Path
    rank: int = RANK
    alpha: float = ALPHA
    learning_rate: float = LEARNING_RATE
    epochs: float = 2.0
    max_steps: int | None = None  # when set, exactly this many steps (the data repeats as needed)
    min_steps: int = 20  # a small dataset repeats until it has had this many steps
    batch_tokens: int = 1024  # one packed row; longer examples are left out
    gradient_accumulation: int = 1
    warmup_fraction: float = 0.1
    checkpoint_every: int = 10
    seed: int = 0
    resume: bool = False
    device: str | None = None  # None: cuda, then mps, else cpu
    target_modules: tuple[str, ...] = TARGET_MODULES
    rehearsal_file: Path | None = None  # the base's own answers (engine.tuning.rehearsal): kept unchanged
    # What a unit of drift from the base on rehearsal rows costs against the task loss. Measured on a
    # ten-example task, 20 steps, SmolLM2 135M: 1 kept 86% of the general set, 5 91%, 20 91-94% on its
    # first version (before its fragile items were dropped), 50 89-91%; the task was learned throughout.
    rehearsal_weight: float = 20.0


@dataclass
class TrainResult:
    adapter_dir: Path
    steps: int
    final_loss: float
    train_tokens: int
    tokens_per_second: float
    seconds: float
    resumed_from_step: int | None
    validation_loss: float | None = None
    base_sha256: str = ""
    skipped_examples: int = 0
    losses: list[float] = field(default_factory=list)


def estimate_seconds(n_tokens: int, tokens_per_second: float) -> float:
    """How long training ``n_tokens`` takes at a measured speed (a prior job's or ``bench train``'s)."""
    if tokens_per_second <= 0:
        raise TuningError("A training speed must be positive; run `understudy bench train` to measure one.")
    return n_tokens / tokens_per_second


# Data ---------------------------------------------------------------------------------------------


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def render(tokenizer, messages: Messages) -> tuple[str, str, bool]:
    """(prompt, prompt + answer, whether the tokenizer adds its special tokens) for a record whose last
    message is the answer to learn."""
    if tokenizer.chat_template:
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise TuningError(
                "This model's chat template does not render a conversation as its prompt followed by the "
                "answer, so answer tokens cannot be told apart; pick another base model."
            )
        return prompt, full, False  # the template writes any BOS itself, as llama.cpp renders it
    # The llama.cpp backend's layout for a GGUF without a chat template; like llama.cpp, the tokenizer
    # adds a BOS when the model asks for one.
    prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages[:-1]) + "assistant:"
    return prompt, prompt + messages[-1]["content"] + (tokenizer.eos_token or ""), True


def encode(tokenizer, messages: Messages) -> Example:
    """Token ids of the rendered record, with labels only on the answer's tokens."""
    prompt, full, add_special = render(tokenizer, messages)
    encoded = tokenizer(full, add_special_tokens=add_special, return_offsets_mapping=True)
    labels = [
        token if start >= len(prompt) and index > 0 else IGNORE
        for index, (token, (start, _end)) in enumerate(
            zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        )
    ]
    return Example(list(encoded["input_ids"]), labels)


def pack(lengths: list[int], capacity: int, seed: int) -> list[list[int]]:
    """Example indices grouped into rows of at most ``capacity`` tokens: a seeded shuffle, then first
    fit, then the rows themselves shuffled."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    rows: list[list[int]] = []
    room: list[int] = []
    for index in order:
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    rng.shuffle(rows)
    return rows


def row_stream(lengths: list[int], capacity: int, seed: int) -> Iterator[list[int]]:
    """Packed rows, epoch after epoch, each epoch with its own seeded shuffle."""
    epoch = 0
    while True:
        yield from pack(lengths, capacity, seed * 100_003 + epoch)
        epoch += 1


def collate(examples: list[Example], device: str):
    """One packed row: input ids, restarting position ids, and where (and what) to predict."""
    import torch

    input_ids = [token for example in examples for token in example.input_ids]
    positions = [position for example in examples for position in range(len(example.input_ids))]
    labels = [label for example in examples for label in example.labels]
    # Position t predicts token t + 1; an example's first token is never labelled, so nothing is
    # predicted across the boundary between two packed examples.
    predict_at = [t for t in range(len(labels) - 1) if labels[t + 1] != IGNORE]
    targets = [labels[t + 1] for t in predict_at]
    return (
        torch.tensor([input_ids], device=device),
        torch.tensor([positions], device=device),
        torch.tensor(predict_at, device=device),
        torch.tensor(targets, device=device),
    )


PACKED_ATTENTION = "understudy_packed"


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Causal attention for each example of a packed row on its own (block-diagonal), for transformers'
    attention interface. Examples start where the position ids restart at 0."""
    import torch
    from torch.nn.functional import scaled_dot_product_attention

    positions = kwargs.get("position_ids")
    length = query.shape[2]
    if positions is None or query.shape[0] != 1 or key.shape[2] != length:
        starts = [0]
    else:
        starts = (positions[0] == 0).nonzero().flatten().tolist() or [0]
    window = kwargs.get("sliding_window")
    pieces = []
    for start, end in itertools.pairwise([*starts, length]):
        size = end - start
        mask = None
        if window and size > window:  # a sliding-window layer (gemma3) on a long example
            index = torch.arange(size, device=query.device)
            distance = index[:, None] - index[None, :]
            mask = (distance >= 0) & (distance < window)
        pieces.append(
            scaled_dot_product_attention(
                query[:, :, start:end],
                key[:, :, start:end],
                value[:, :, start:end],
                attn_mask=mask,
                is_causal=mask is None,
                scale=scaling,
                enable_gqa=True,
            )
        )
    return torch.cat(pieces, dim=2).transpose(1, 2).contiguous(), None


def use_packed_attention(model) -> None:
    """Switch ``model`` (a transformers model, or PEFT around one) to ``packed_attention``."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    model.set_attn_implementation(PACKED_ATTENTION)


def row_loss(model, batch) -> tuple[Any, int]:
    """Summed cross-entropy over a row's answer tokens, and how many there are."""
    import torch

    input_ids, positions, predict_at, targets = batch
    # No KV cache: with one, transformers' own masks ignore restarting positions (packed examples would
    # attend to each other under plain sdpa) and nothing here needs one.
    logits = model(
        input_ids=input_ids, position_ids=positions, logits_to_keep=predict_at, use_cache=False
    ).logits[0]
    loss = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    return loss, len(targets)


def rehearsal_drift(model, batch) -> tuple[Any, int]:
    """Summed KL divergence, over a row's answer tokens, of the tuned model's next-token distribution
    from the base's (the same model with its adapter switched off), and how many tokens there are."""
    import torch
    from torch.nn.functional import kl_div, log_softmax

    input_ids, positions, predict_at, _targets = batch
    arguments = {"input_ids": input_ids, "position_ids": positions, "logits_to_keep": predict_at}
    with torch.no_grad(), model.disable_adapter():
        base = log_softmax(model(**arguments, use_cache=False).logits[0].float(), dim=-1)
    tuned = log_softmax(model(**arguments, use_cache=False).logits[0].float(), dim=-1)
    return kl_div(tuned, base, log_target=True, reduction="sum"), len(predict_at)


def _rehearse(model, rows: list[list[Example]], weight: float, device: str) -> tuple[float, int]:
    """Backpropagate the drift from the base on rehearsal rows; return the mean drift per token and
    the tokens run."""
    batches = [collate(row, device) for row in rows]
    answer_tokens = sum(len(batch[2]) for batch in batches)
    total = 0.0
    for batch in batches:
        drift, _count = rehearsal_drift(model, batch)
        (weight * drift / answer_tokens).backward()
        total += drift.item()
    return total / max(1, answer_tokens), sum(int(batch[0].shape[1]) for batch in batches)


def load_examples(tokenizer, path: Path, capacity: int) -> tuple[list[Example], int]:
    """The encoded records of a JSONL file that fit a row, and how many did not."""
    examples = [encode(tokenizer, messages) for messages in read_records(path)]
    kept = [e for e in examples if len(e.input_ids) <= capacity and any(x != IGNORE for x in e.labels)]
    return kept, len(examples) - len(kept)


# Model --------------------------------------------------------------------------------------------


def pick_device(requested: str | None) -> str:
    import torch

    if requested:
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_base(folder: Path, device: str):
    """The dequantised float model and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device)
    return model, tokenizer


@contextmanager
def quiet_peft() -> Iterator[None]:
    """PEFT 0.21 calls a transformers method that transformers 5.23 marks as deprecated."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def with_lora(model, rank: int = RANK, alpha: float = ALPHA, target_modules: Sequence[str] = TARGET_MODULES):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=list(target_modules),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with quiet_peft():
        return get_peft_model(model, lora)


def load_trained(adapter_dir: Path, device: str = "cpu"):
    """A trained adapter on its dequantised base, in torch (for checks against what llama.cpp serves)."""
    from peft import PeftModel

    settings = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    model, tokenizer = load_base(Path(settings["base_model_name_or_path"]), device)
    with quiet_peft():
        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    return model, tokenizer


def base_folder(base_model_id: str, on_progress: Progress | None = None) -> Path:
    from engine import catalog
    from engine.tuning.dequantise import dequantised_base

    return dequantised_base(catalog.load_catalog().get(base_model_id), on_progress)


def set_threads() -> None:
    import torch

    from engine.backends.llama_cpp import physical_cores

    torch.set_num_threads(physical_cores())


# The loop -----------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train a LoRA adapter on ``config.dataset_folder``'s train split; save it under ``output_dir``."""
    import torch

    progress = on_progress or (lambda event: None)
    _check(config)
    set_threads()
    device = pick_device(config.device)
    base = base_folder(config.base_model_id, progress)
    model, tokenizer = load_base(base, device)
    use_packed_attention(model)
    train_path = Path(config.dataset_folder) / "train.jsonl"
    examples, skipped = load_examples(tokenizer, train_path, config.batch_tokens)
    if not examples:
        raise TuningError(
            f"No training example fits in {config.batch_tokens} tokens; raise batch_tokens or shorten them."
        )
    rehearsal: list[Example] = []
    if config.rehearsal_file is not None:
        rehearsal = load_examples(tokenizer, Path(config.rehearsal_file), config.batch_tokens)[0]
    lengths = [len(e.input_ids) for e in examples]
    rows_per_epoch = len(pack(lengths, config.batch_tokens, config.seed))
    total_steps = planned_steps(config, rows_per_epoch)
    fingerprint = _fingerprint(config, base, examples + rehearsal, total_steps)

    torch.manual_seed(config.seed)
    model = with_lora(model, config.rank, config.alpha, config.target_modules)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=0.0)
    warmup = max(1, round(config.warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(warmup, total_steps))

    checkpoints = Path(config.output_dir) / CHECKPOINTS
    state = {"step": 0, "position": 0, "train_tokens": 0, "losses": []}
    resumed_from = None
    if config.resume:
        resumed = _load_last_checkpoint(checkpoints, model, optimizer, scheduler, fingerprint)
        if resumed is not None:
            state, resumed_from = resumed, resumed["step"]
    else:
        shutil.rmtree(checkpoints, ignore_errors=True)

    rows = row_stream(lengths, config.batch_tokens, config.seed)
    for _ in range(state["position"]):  # skip what the checkpoint already trained on
        next(rows)
    # One rehearsal row follows each task row, so the task rows' position is the rehearsal rows' too.
    rehearsal_rows = row_stream([len(e.input_ids) for e in rehearsal], config.batch_tokens, config.seed + 1)
    for _ in range(state["position"] if rehearsal else 0):
        next(rehearsal_rows)
    progress(
        {
            "event": "start",
            "total_steps": total_steps,
            "examples": len(examples),
            "rehearsal_examples": len(rehearsal),
            "skipped_examples": skipped,
            "rows_per_epoch": rows_per_epoch,
            "resumed_from_step": resumed_from,
            "device": device,
        }
    )
    model.train()
    started = time.perf_counter()
    tokens_this_run = 0
    last_saved = state["step"]
    while state["step"] < total_steps:
        if cancel is not None and cancel.is_set():
            if state["step"] > last_saved:
                _save_checkpoint(checkpoints, model, optimizer, scheduler, state, fingerprint)
            raise TrainingCancelled(
                f"Training stopped at step {state['step']} of {total_steps}; resume it with --resume."
            )
        batches = [[examples[i] for i in next(rows)] for _ in range(config.gradient_accumulation)]
        state["position"] += config.gradient_accumulation
        answer_tokens = sum(1 for b in batches for e in b for label in e.labels[1:] if label != IGNORE)
        step_loss = 0.0
        for batch in batches:
            loss, _count = row_loss(model, collate(batch, device))
            (loss / answer_tokens).backward()
            step_loss += loss.item()
            tokens = sum(len(e.input_ids) for e in batch)
            tokens_this_run += tokens
            state["train_tokens"] += tokens
        drift = 0.0
        if rehearsal:
            rows_of_rehearsal = [[rehearsal[i] for i in next(rehearsal_rows)] for _ in batches]
            drift, tokens = _rehearse(model, rows_of_rehearsal, config.rehearsal_weight, device)
            tokens_this_run += tokens
            state["train_tokens"] += tokens
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        state["losses"].append(step_loss / answer_tokens)
        elapsed = time.perf_counter() - started
        steps_this_run = state["step"] - (resumed_from or 0)
        progress(
            {
                "event": "step",
                "step": state["step"],
                "total_steps": total_steps,
                "loss": round(state["losses"][-1], 4),
                "rehearsal_drift": round(drift, 5),
                "learning_rate": scheduler.get_last_lr()[0],
                "tokens_per_second": round(tokens_this_run / elapsed, 1),
                "eta_seconds": round(elapsed / steps_this_run * (total_steps - state["step"]), 1),
            }
        )
        if state["step"] % config.checkpoint_every == 0 and state["step"] < total_steps:
            path = _save_checkpoint(checkpoints, model, optimizer, scheduler, state, fingerprint)
            last_saved = state["step"]
            progress({"event": "checkpoint", "step": state["step"], "path": str(path)})
    seconds = time.perf_counter() - started

    validation_loss = _validation_loss(model, tokenizer, Path(config.dataset_folder), config, device)
    result = TrainResult(
        adapter_dir=Path(config.output_dir) / ADAPTER,
        steps=state["step"],
        final_loss=_smoothed(state["losses"]),
        train_tokens=state["train_tokens"],
        tokens_per_second=tokens_this_run / seconds if seconds > 0 else 0.0,
        seconds=seconds,
        resumed_from_step=resumed_from,
        validation_loss=validation_loss,
        base_sha256=base.name,
        skipped_examples=skipped,
        losses=state["losses"],
    )
    _save_adapter(model, result, config)
    progress({"event": "done", **_summary(result)})
    return result


def planned_steps(config: TrainConfig, rows_per_epoch: int) -> int:
    """Optimizer steps of a run over ``rows_per_epoch`` packed rows: ``max_steps`` when set, else the
    epochs' worth, and at least ``min_steps`` (a small dataset repeats)."""
    return config.max_steps or max(
        config.min_steps, math.ceil(config.epochs * rows_per_epoch / config.gradient_accumulation)
    )


def _check(config: TrainConfig) -> None:
    if not (Path(config.dataset_folder) / "train.jsonl").exists():
        raise TuningError(f"{config.dataset_folder} has no train.jsonl; build the dataset first.")
    for name in ("rank", "batch_tokens", "gradient_accumulation", "checkpoint_every", "min_steps"):
        if getattr(config, name) < 1:
            raise TuningError(f"{name} must be at least 1, not {getattr(config, name)}.")
    if config.max_steps is not None and config.max_steps < 1:
        raise TuningError(f"max_steps must be at least 1, not {config.max_steps}.")
    if config.max_steps is None and config.epochs <= 0:
        raise TuningError(f"epochs must be positive, not {config.epochs}.")


def _schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to a tenth of the learning rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _smoothed(losses: list[float]) -> float:
    """The mean loss of the last few steps: one packed row alone is a noisy figure."""
    tail = losses[-5:]
    return sum(tail) / len(tail)


def _validation_loss(model, tokenizer, folder: Path, config: TrainConfig, device: str) -> float | None:
    import torch

    path = folder / "val.jsonl"
    if not path.exists():
        return None
    examples, _skipped = load_examples(tokenizer, path, config.batch_tokens)
    if not examples:
        return None
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in pack([len(e.input_ids) for e in examples], config.batch_tokens, 0):
            loss, n = row_loss(model, collate([examples[i] for i in row], device))
            total += loss.item()
            count += n
    return total / count


def _fingerprint(config: TrainConfig, base: Path, examples: list[Example], total_steps: int) -> str:
    """What must not change between a checkpoint and its resumption."""
    described = {
        key: value
        for key, value in asdict(config).items()
        if key not in ("output_dir", "resume", "device", "checkpoint_every", "dataset_folder")
    }
    described |= {"base": base.name, "total_steps": total_steps}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    for example in examples:
        digest.update(json.dumps([example.input_ids, example.labels]).encode())
    return digest.hexdigest()


def _summary(result: TrainResult) -> dict[str, Any]:
    summary = asdict(result)
    summary["adapter_dir"] = str(result.adapter_dir)
    summary.pop("losses")
    return summary


# Checkpoints and the saved adapter ------------------------------------------------------------------


def _save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict, fingerprint: str) -> Path:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    target = folder / f"step-{state['step']:06d}"
    with files.publishing(target) as partial:
        partial.mkdir()
        weights = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
        save_file(weights, partial / "adapter_model.safetensors")
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate(),
            },
            partial / "optimizer.pt",
        )
        state_text = json.dumps({**state, "fingerprint": fingerprint})
        (partial / "state.json").write_text(state_text, encoding="utf-8")
    for old in sorted(folder.glob("step-*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _load_last_checkpoint(folder: Path, model, optimizer, scheduler, fingerprint: str) -> dict | None:
    """Restore the newest complete checkpoint; None when there is none to resume from."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    for candidate in sorted(folder.glob("step-*"), reverse=True):
        try:
            state = json.loads((candidate / "state.json").read_text(encoding="utf-8"))
            weights = load_file(candidate / "adapter_model.safetensors")
            saved = torch.load(candidate / "optimizer.pt", weights_only=False)
        except (OSError, ValueError, RuntimeError):
            continue  # unreadable: fall back to the one before
        if state.get("fingerprint") != fingerprint:
            raise TuningError(
                f"The checkpoint in {candidate} belongs to a different training run (other data, base "
                "or settings); start afresh without --resume."
            )
        set_peft_model_state_dict(model, weights)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        random.setstate(saved["python_rng"])
        state.pop("fingerprint")
        return state
    return None


def _save_adapter(model, result: TrainResult, config: TrainConfig) -> None:
    """The PEFT adapter folder plus a record of how it was trained. The folder is swapped in by one
    atomic exchange (``engine.files.publish``), so a kill at any moment leaves the previous adapter or
    this one, never neither."""
    with files.publishing(result.adapter_dir) as partial:
        model.save_pretrained(partial)
        record = {"base_model_id": config.base_model_id, "config": asdict(config), "result": _summary(result)}
        (partial / TRAINING_RECORD).write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
