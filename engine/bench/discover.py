"""How well discovery (S3) finds the tasks of a log and how well routing (S6) places later requests.

Runs on the shipped synthetic logs, each in a scratch database:

- resources/discovery_eval.jsonl: eight tasks of an agent's log, two of them a few phrasings repeated
  many times; its ``train`` records are discovered, its ``heldout`` ones (later requests of the same
  tasks) and ``unrelated`` ones (of no task) are routed.
- resources/task_log_sample.jsonl: seven tasks; every tenth record is held out, the rest discovered.

Per log: clusters against true tasks, how many true tasks are the majority of some cluster, purity, the
outlier share, the share of clustered requests beyond their own task's radius (where the router would
call them "at its edge"), and of the held-out requests the share the router places in their own task
(``heldout_placed``) and, of those, the share within the radius a specialist serves
(``heldout_within_radius``); of the unrelated ones, the share sent to the generalist.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from engine import embeddings, paths
from engine.discovery import TaskIndex, discover, embed_turns
from engine.embeddings import Encoder
from engine.log_import import import_chat_jsonl
from engine.router import Router
from engine.store import Store

EVAL_LOG = "resources/discovery_eval.jsonl"
SAMPLE_LOG = "resources/task_log_sample.jsonl"
SAMPLE_HELDOUT_EVERY = 10
SPLITS = ("train", "heldout", "unrelated")


def bench_discover(encoder_name: str | None = None) -> dict:
    """The figures of each shipped log (see the module doc), one entry per log."""
    encoder = embeddings.load_encoder(encoder_name or embeddings.DEFAULT_ENCODER)
    logs = {}
    for name, split in ((EVAL_LOG, _split_eval), (SAMPLE_LOG, _split_sample)):
        records = _read(paths.shipped_file(name))
        logs[Path(name).stem] = _score(*split(records), encoder)
    return {"encoder": encoder.name, "logs": logs}


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _request(record: dict) -> str:
    return next(message["content"] for message in record["messages"] if message["role"] == "user")


def _split_eval(records: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, held-out, unrelated) as the records' ``split`` says."""
    train, heldout, unrelated = (
        [record for record in records if record["split"] == split] for split in SPLITS
    )
    return train, heldout, unrelated


def _split_sample(records: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """Every ``SAMPLE_HELDOUT_EVERY``-th record held out, the rest to discover; none unrelated."""
    heldout = [record for index, record in enumerate(records, 1) if index % SAMPLE_HELDOUT_EVERY == 0]
    train = [record for index, record in enumerate(records, 1) if index % SAMPLE_HELDOUT_EVERY != 0]
    return train, heldout, []


def _score(train: list[dict], heldout: list[dict], unrelated: list[dict], encoder: Encoder) -> dict:
    with tempfile.TemporaryDirectory(prefix="understudy-discover-bench-") as folder:
        log = Path(folder) / "train.jsonl"
        log.write_text("".join(json.dumps(record) + "\n" for record in train), encoding="utf-8")
        store = Store.open(Path(folder) / "bench.db")
        import_chat_jsonl(store, log)
        truth = {_request(record): record["task"] for record in train}
        turns = [(row["id"], row["user_text"]) for row in store.db.query("SELECT id, user_text FROM turns")]
        found = discover(
            store, encoder=encoder, known_labels={turn_id: truth[text] for turn_id, text in turns}
        )
        placed_in = {
            row["id"]: row["cluster_id"]
            for row in store.db.query("SELECT id, cluster_id FROM turns WHERE cluster_id IS NOT NULL")
        }
        counts: dict[int, Counter] = {}
        for turn_id, text in turns:
            if turn_id in placed_in:
                counts.setdefault(placed_in[turn_id], Counter())[truth[text]] += 1
        majority = {task_id: counter.most_common(1)[0][0] for task_id, counter in counts.items()}
        index = TaskIndex.load(store)
        radius_of = dict(zip(index.ids, index.radii, strict=True))
        centroid_of = dict(zip(index.ids, index.centroids, strict=True))
        clustered = [(turn_id, text) for turn_id, text in turns if turn_id in placed_in]
        vectors, _ = embed_turns(store, encoder, clustered)
        beyond = sum(
            1.0 - float(vector @ centroid_of[placed_in[turn_id]]) > radius_of[placed_in[turn_id]] + 1e-6
            for (turn_id, _), vector in zip(clustered, vectors, strict=True)
        )
        router = Router(store, encoder=encoder)
        decisions = [(router.decide(_request(record)), record["task"]) for record in heldout]
        placed = [decision for decision, task in decisions if majority.get(decision.task_id) == task]
        to_generalist = [router.decide(_request(record)).task_id is None for record in unrelated]
        store.close()
    tasks = {record["task"] for record in train}
    return {
        "requests": found.n_requests,
        "tasks": len(tasks),
        "clusters": found.n_clusters,
        "tasks_found": len(set(majority.values()) & tasks),
        "purity": found.purity,
        "outlier_share": found.outlier_share_after,
        "members_beyond_radius": round(beyond / max(1, len(clustered)), 4),
        "heldout": len(heldout),
        "heldout_placed": round(len(placed) / max(1, len(heldout)), 4),
        "heldout_within_radius": round(
            sum(decision.distance <= decision.features["radius"] for decision in placed)
            / max(1, len(heldout)),
            4,
        ),
        "unrelated": len(unrelated),
        "unrelated_to_generalist": round(float(np.mean(to_generalist)), 4) if to_generalist else None,
        "labels": sorted(cluster.label for cluster in found.clusters),
    }
