"""The encoders: unit float32 vectors, loaded once, and the static one agreeing with MiniLM on tasks."""

from __future__ import annotations

import numpy as np
import pytest
from task_log_sample import TASKS, request_of, shipped_records

from engine import embeddings
from engine.errors import EncoderError

FRESH_REQUESTS = {
    "unit_conversion": "Convert 3 meters to feet",
    "translate_french": "Translate 'good morning, how are you?' into French",
    "haiku": "write haiku: spring rain on the roof",
    "sql": "SQL to list all customers from Germany",
    "email_subject": "Give me a subject line for an email about our summer party",
    "summarise": "Summarize: The board approved the budget after a short debate and asked for a review.",
    "invoice_json": "Extract vendor, total and date as JSON: Invoice 5521 from Contoso, 2024-02-03, $99.00",
}


@pytest.fixture(scope="module")
def static_encoder():
    return embeddings.load_encoder(embeddings.STATIC)


def _nearest_tasks(encoder) -> list[str]:
    """For each fresh request, the sample task whose centroid (of 12 requests) is nearest."""
    records = shipped_records()
    centroids = []
    for task in TASKS:
        texts = [request_of(record) for record in records if record["task"] == task][:12]
        mean = encoder.encode(texts).mean(axis=0)
        centroids.append(mean / np.linalg.norm(mean))
    vectors = encoder.encode([FRESH_REQUESTS[task] for task in TASKS])
    return [TASKS[index] for index in (vectors @ np.stack(centroids).T).argmax(axis=1)]


def test_static_encoder_gives_unit_float32_rows_and_is_loaded_once(static_encoder):
    vectors = static_encoder.encode(["Convert 3 miles to km", "", "Convert 3 miles to km"])

    assert vectors.dtype == np.float32
    assert vectors.shape == (3, static_encoder.dim) == (3, 256)
    assert np.allclose(np.linalg.norm(vectors[[0, 2]], axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2])
    assert np.isfinite(vectors).all()
    assert embeddings.load_encoder(embeddings.STATIC) is static_encoder


def test_vectors_survive_the_database_blob_round_trip(static_encoder):
    vector = static_encoder.encode(["a haiku about tea"])[0]

    assert np.array_equal(embeddings.from_blob(embeddings.to_blob(vector)), vector)


def test_static_encoder_places_fresh_requests_in_their_tasks_as_minilm_does(static_encoder):
    minilm = embeddings.load_encoder(embeddings.MINILM)

    static_tasks = _nearest_tasks(static_encoder)
    minilm_tasks = _nearest_tasks(minilm)

    assert minilm.encode(["x"]).shape == (1, 384)
    assert static_tasks == list(TASKS)
    assert minilm_tasks == list(TASKS)


def test_an_unknown_encoder_is_a_clear_error():
    with pytest.raises(EncoderError, match="no encoder 'word2vec'"):
        embeddings.load_encoder("word2vec")
