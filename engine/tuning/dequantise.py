"""The float model a LoRA is trained on, dequantised from the catalog's GGUF by transformers.

Dequantising takes about a minute on a small CPU, so the result is saved (``save_pretrained``, with its
tokenizer) under ``<cache dir>/bases/<sha256 of the GGUF>/`` (``paths.cache_dir``) and reused. The
folder is built under a temporary name and renamed into place, so a half-written base is never used.

Training on the dequantised weights and serving the adapter on the quantised GGUF works because the
float weights are exactly what the quantised ones decode to (the error is the quantisation's own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from engine import catalog, files, paths
from engine.catalog import ModelEntry
from engine.errors import TuningError

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "gemma3")
COMPLETE_MARK = "understudy-base.json"
# Raised whenever what is saved changes, so a base built by an older version is built again.
BASE_FORMAT = 3
# llama.cpp's token types (GGUF tokenizer.ggml.token_type).
NORMAL_TOKEN, CONTROL_TOKEN, USER_DEFINED_TOKEN = 1, 3, 4

Progress = Callable[[dict], None]


def gguf_architecture(gguf_path: Path, fields) -> str:
    """``general.architecture`` of a GGUF file, from its ``GGUFReader`` fields."""
    field = fields.get("general.architecture")
    if field is None:
        raise TuningError(f"{gguf_path} has no general.architecture; it is not a model GGUF.")
    return field.contents()


def dequantised_base(entry: ModelEntry, on_progress: Progress | None = None) -> Path:
    """The folder of ``entry``'s float model (config, weights, tokenizer), dequantising it once."""
    gguf_path = catalog.locate(entry)
    digest = catalog.remembered_sha256(gguf_path)
    folder = paths.cache_dir() / "bases" / digest
    if _complete(folder):
        return folder
    from gguf import GGUFReader

    # Read once: parsing a 262k-token vocabulary (gemma3's) takes about 10 s.
    fields = GGUFReader(gguf_path).fields
    architecture = gguf_architecture(gguf_path, fields)
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise TuningError(
            f"Model '{entry.id}' is a {architecture} model; tuning supports "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}. Pick another base with --base."
        )
    if on_progress:
        on_progress({"event": "dequantise", "model_id": entry.id, "sha256": digest})
    try:
        # Replaces a folder left unfinished, or built by an older version.
        with files.publishing(folder) as partial:
            _dequantise(gguf_path, fields, partial)
            mark = {
                "model_id": entry.id,
                "architecture": architecture,
                "gguf_sha256": digest,
                "format": BASE_FORMAT,
            }
            (partial / COMPLETE_MARK).write_text(json.dumps(mark) + "\n", encoding="utf-8")
    except Exception as error:
        if _complete(folder):  # another process finished it first
            return folder
        if isinstance(error, TuningError):
            raise
        raise TuningError(
            f"Could not dequantise '{entry.id}' ({gguf_path}) for training: {type(error).__name__}: "
            f"{error}. Check the file with `understudy models verify {entry.id}`."
        ) from error
    if on_progress:
        on_progress({"event": "dequantised", "model_id": entry.id, "path": str(folder)})
    return folder


def _complete(folder: Path) -> bool:
    try:
        mark = json.loads((folder / COMPLETE_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return mark.get("format") == BASE_FORMAT


def _dequantise(gguf_path: Path, fields, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent,
        gguf_file=gguf_path.name,  # transformers 5.3 dequantises GGUF weights into float Linear layers
        dtype=torch.float32,
    )
    model.save_pretrained(target)
    _gguf_tokenizer(gguf_path, fields).save_pretrained(target)


def _gguf_tokenizer(gguf_path: Path, fields):
    """The GGUF's own tokenizer as a plain tokenizers-backed one, with the special tokens the GGUF names.

    transformers 5.3 converts SmolLM2's tokenizer into a CodeLlamaTokenizer that tokenizes right once
    but, saved and loaded again, rebuilds its pre-tokenizer and splits every word on an unknown token;
    it also names <|im_start|> as end of sequence. Saving the converted tokenizers object under the
    generic class keeps the vocabulary, merges and pre-tokenizer exactly (the same ids llama.cpp gives).
    A SentencePiece vocabulary (gemma3's) is built from the GGUF instead: see ``_sentencepiece_backend``.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if fields["tokenizer.ggml.model"].contents() == "llama":
        backend = _sentencepiece_backend(fields)
        template = fields.get("tokenizer.chat_template")
        chat_template = None if template is None else template.contents()
    else:
        converted = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        backend, chat_template = converted.backend_tokenizer, converted.chat_template
    special = {}
    for name, key in (
        ("bos_token", "bos"),
        ("eos_token", "eos"),
        ("unk_token", "unknown"),
        ("pad_token", "padding"),
    ):
        field = fields.get(f"tokenizer.ggml.{key}_token_id")
        if field is not None:
            special[name] = backend.id_to_token(int(field.contents()))
    flags = {key: fields.get(f"tokenizer.ggml.add_{key}_token") for key in ("bos", "eos")}
    if any(flag is not None for flag in flags.values()):  # add them as llama.cpp does
        from tokenizers.processors import TemplateProcessing

        bos = [special["bos_token"]] if flags["bos"] is not None and flags["bos"].contents() else []
        eos = [special["eos_token"]] if flags["eos"] is not None and flags["eos"].contents() else []
        backend.post_processor = TemplateProcessing(
            single=[*bos, "$A", *eos],
            special_tokens=[(token, backend.token_to_id(token)) for token in bos + eos],
        )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **special)
    tokenizer.chat_template = chat_template
    return tokenizer


def _sentencepiece_backend(fields):
    """llama.cpp's SentencePiece tokenizer rebuilt as a tokenizers BPE with byte fallback.

    transformers 5.3 turns gemma3's GGUF vocabulary into a Unigram model, which reads the scores as
    probabilities and cuts "What is the capital of Italy?" into 14 pieces where llama.cpp gives 7, so a
    model would be trained on token sequences it is never served. llama.cpp joins the adjacent pair whose
    joined text is the vocabulary entry with the highest score, again and again; a BPE whose merges are
    every such pair, ranked by that score, does the same. Control and user-defined entries (turn
    markers, runs of spaces or newlines, HTML tags) are matched in the raw text first, as in llama.cpp.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    tokens = fields["tokenizer.ggml.tokens"].contents()
    scores = fields["tokenizer.ggml.scores"].contents()
    kinds = fields["tokenizer.ggml.token_type"].contents()
    vocab = {token: index for index, token in enumerate(tokens)}
    ranked = []
    for token, score, kind in zip(tokens, scores, kinds, strict=True):
        if kind != NORMAL_TOKEN:
            continue
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in vocab and right in vocab:
                ranked.append((-score, vocab[token], cut, left, right))
    ranked.sort()
    unknown = fields.get("tokenizer.ggml.unknown_token_id")
    model = BPE(
        vocab=vocab,
        merges=[(left, right) for *_order, left, right in ranked],
        unk_token=None if unknown is None else tokens[int(unknown.contents())],
        byte_fallback=True,
        fuse_unk=True,
    )
    backend = Tokenizer(model)
    space = [normalizers.Replace(" ", "\u2581")]
    add_prefix = fields.get("tokenizer.ggml.add_space_prefix")
    if add_prefix is None or add_prefix.contents():  # llama.cpp's default for SentencePiece
        space.insert(0, normalizers.Prepend("\u2581"))
    backend.normalizer = normalizers.Sequence(space)
    backend.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    backend.add_tokens(
        [
            AddedToken(token, special=kind == CONTROL_TOKEN, normalized=False)
            for token, kind in zip(tokens, kinds, strict=True)
            if kind in (CONTROL_TOKEN, USER_DEFINED_TOKEN)
        ]
    )
    return backend
