"""Discovery (S3) on the shipped 350-request log of seven known tasks: purity, outliers, labels, ids
that stay stable as the log grows, and incremental assignment; on the shipped eval log of eight agent
tasks: held-out requests placed in their task, unrelated ones in none, every member within its task's
radius; a few wordings repeated forming one task; and names for new tasks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from discovery_eval import COMMIT_PHRASINGS
from discovery_eval import shipped_records as eval_records
from fake_backend import Reply
from task_log_sample import TASKS, request_of, shipped_records, true_tasks, write_records

from engine import discovery, embeddings
from engine.errors import DiscoveryError
from engine.log_import import import_chat_jsonl
from engine.store import Store, TurnRecord

WORDS_OF_TASK = {
    "unit_conversion": {"miles", "kilometers", "meters", "feet", "pounds", "kilograms", "conversion"},
    "email_subject": {"subject", "email"},
    "sql": {"sql", "query"},
    "translate_french": {"french", "translate"},
    "summarise": {"summary", "summarize", "summarise"},
    "invoice_json": {"invoice", "json", "vendor"},
    "haiku": {"haiku"},
}


@pytest.fixture
def store(tmp_path):
    """90% of the sample log imported (the rest arrives later in the stability test)."""
    records = shipped_records()
    store = Store.open()
    import_chat_jsonl(store, write_records(tmp_path / "first.jsonl", records[: len(records) * 9 // 10]))
    return store


def _majorities(store, truth: dict[int, str] | None = None) -> dict[int, str]:
    """Task id -> the true task most of its requests belong to (``truth``: turn id -> task, by default
    the sample log's)."""
    truth = true_tasks(store) if truth is None else truth
    counts: dict[int, Counter] = {}
    for row in store.db.query("SELECT id, cluster_id FROM turns WHERE cluster_id IS NOT NULL"):
        counts.setdefault(row["cluster_id"], Counter())[truth[row["id"]]] += 1
    return {task_id: counter.most_common(1)[0][0] for task_id, counter in counts.items()}


def test_the_seven_tasks_come_back_pure_with_few_outliers_and_telling_labels(store):
    result = discovery.discover(store, known_labels=true_tasks(store))

    print(
        f"\nrequests {result.n_requests}, clusters {result.n_clusters}, purity {result.purity}, outliers "
        f"{result.outlier_share_before} -> {result.outlier_share_after} ({result.encoder})"
    )
    assert result.n_requests == 315
    assert result.purity >= 0.9
    assert result.outlier_share_after <= min(0.1, result.outlier_share_before)
    majorities = _majorities(store)
    assert sorted(majorities.values()) == sorted(TASKS)
    for cluster in result.clusters:
        assert set(cluster.keywords) & WORDS_OF_TASK[majorities[cluster.task_id]], cluster
        assert len(cluster.examples) == 3
        assert cluster.new
    stored = {row["id"]: row for row in store.db.query("SELECT * FROM tasks")}
    assert {cluster.task_id for cluster in result.clusters} == set(stored)
    assert all(
        row["encoder"] == embeddings.STATIC and row["source"] == "discovered" for row in stored.values()
    )
    assert sum(cluster.size for cluster in result.clusters) == round(315 * (1 - result.outlier_share_after))


def test_ids_stay_stable_when_ten_percent_more_requests_arrive(store, tmp_path):
    first = discovery.discover(store)
    before = {row["id"]: row["cluster_id"] for row in store.db.query("SELECT id, cluster_id FROM turns")}
    import_chat_jsonl(store, write_records(tmp_path / "all.jsonl", shipped_records()))

    second = discovery.discover(store, known_labels=true_tasks(store))

    after = {row["id"]: row["cluster_id"] for row in store.db.query("SELECT id, cluster_id FROM turns")}
    kept = sum(after[turn_id] == task_id for turn_id, task_id in before.items()) / len(before)
    print(
        f"\n{second.n_requests} requests: {kept:.1%} of the earlier ones kept their task, "
        f"purity {second.purity}"
    )
    assert second.n_requests == 350
    assert second.embedded_now == 35
    assert {cluster.task_id for cluster in second.clusters} == {cluster.task_id for cluster in first.clusters}
    assert not any(cluster.new for cluster in second.clusters)
    assert second.retired_task_ids == []
    assert kept >= 0.97
    assert second.purity >= 0.9


def test_a_rerun_on_the_same_log_embeds_nothing_and_changes_nothing(store):
    discovery.discover(store)
    before = list(store.db.query("SELECT id, cluster_id FROM turns ORDER BY id"))

    again = discovery.discover(store)

    assert again.embedded_now == 0
    assert list(store.db.query("SELECT id, cluster_id FROM turns ORDER BY id")) == before


def test_a_task_whose_requests_are_gone_is_retired_and_the_others_keep_their_ids(store):
    discovery.discover(store)
    haiku = next(task_id for task_id, task in _majorities(store).items() if task == "haiku")
    kept_ids = set(_majorities(store)) - {haiku}
    for row in list(
        store.db.query("SELECT DISTINCT conversation_id FROM turns WHERE cluster_id = ?", [haiku])
    ):
        store.delete_conversation(row["conversation_id"])

    result = discovery.discover(store)

    assert haiku in result.retired_task_ids
    assert {cluster.task_id for cluster in result.clusters} == kept_ids
    retired = next(iter(store.db.query("SELECT retired_utc FROM tasks WHERE id = ?", [haiku])))
    assert retired["retired_utc"] is not None


def test_new_requests_are_assigned_without_reclustering(store):
    discovery.discover(store)
    haiku = next(task_id for task_id, task in _majorities(store).items() if task == "haiku")
    tasks_before = list(store.db.query("SELECT * FROM tasks ORDER BY id"))

    task_id, distance = discovery.assign(store, "Write me a haiku about the summer sea")
    unrelated = discovery.assign(store, "What is the capital of Australia?")

    assert task_id == haiku and 0 <= distance < 0.5
    assert unrelated.task_id is None and unrelated.distance > distance
    turn_id = store.log_turn(
        TurnRecord(conversation_id=None, user_text="Compose a haiku on falling snow", model_id="smollm2")
    )
    assert discovery.assign(store, turn_id).task_id == haiku
    assert (
        next(iter(store.db.query("SELECT cluster_id FROM turns WHERE id = ?", [turn_id])))["cluster_id"]
        == haiku
    )
    assert store.db["embeddings"].count_where("turn_id = ?", [turn_id]) == 1
    assert list(store.db.query("SELECT * FROM tasks ORDER BY id")) == tasks_before


def test_a_change_of_encoder_re_embeds_and_keeps_the_ids(store):
    first = discovery.discover(store)

    second = discovery.discover(store, encoder=embeddings.load_encoder(embeddings.MINILM))

    assert second.encoder == embeddings.MINILM and second.embedded_now == 315
    assert {row["encoder"] for row in store.db.query("SELECT encoder FROM embeddings")} == {embeddings.MINILM}
    kept = {cluster.task_id for cluster in second.clusters if not cluster.new}
    print(f"\nMiniLM after the static encoder: {len(kept)} of {second.n_clusters} clusters kept their ids")
    assert len(kept) >= 6
    assert kept | set(second.retired_task_ids) == {cluster.task_id for cluster in first.clusters}


def test_a_task_built_from_a_dataset_is_placed_by_its_examples(store, tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    requests = [
        f"Rewrite this sentence as a pirate would say it: {line}" for line in ("hello", "the bus is late")
    ]
    requests.append("Say it like a pirate: I am going to the shop")
    write_records(
        folder / "train.jsonl",
        [
            {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "Arr"}]}
            for text in requests
        ],
    )
    now = "2026-01-01T00:00:00+00:00"
    with store.transaction():
        pirate = store.insert(
            "tasks", {"label": "pirate speak", "source": "dataset", "created_utc": now, "updated_utc": now}
        )
        store.insert(
            "datasets",
            {
                "task_id": pirate,
                "path": str(folder),
                "sha256": "0",
                "n_train": 3,
                "n_val": 0,
                "created_utc": now,
            },
        )

    discovery.discover(store)

    row = next(iter(store.db.query("SELECT encoder, radius, retired_utc FROM tasks WHERE id = ?", [pirate])))
    assert row["encoder"] == embeddings.STATIC and row["radius"] > 0 and row["retired_utc"] is None
    assert discovery.assign(store, "Rewrite this like a pirate: where is my hat").task_id == pirate


def test_too_small_a_log_is_a_clear_error():
    with pytest.raises(DiscoveryError, match="needs at least 10"):
        discovery.discover(Store.open())


def test_a_large_log_is_clustered_on_its_principal_components():
    generator = np.random.default_rng(0)
    blob = generator.integers(0, 12, discovery.LARGE_LOG + 500)
    points = generator.normal(size=(12, 256))[blob] + generator.normal(scale=0.8, size=(len(blob), 256))
    points /= np.linalg.norm(points, axis=1, keepdims=True)

    found = discovery._hdbscan(points.astype(np.float32), *discovery.cluster_parameters(len(blob)))

    assert found.max() + 1 == 12
    assert all(len(set(blob[found == cluster])) == 1 for cluster in range(12))


def test_cluster_parameters_grow_with_the_log():
    assert discovery.cluster_parameters(20) == (5, 2)
    assert discovery.cluster_parameters(350) == (11, 2)
    assert discovery.cluster_parameters(10_000) == (60, 12)
    assert discovery.cluster_parameters(10**7)[0] == 200


def test_tasks_are_listed_as_typed_records_with_their_active_specialist():
    store = Store.open()
    now = "2026-01-01T00:00:00+00:00"
    with store.transaction():
        named = store.insert(
            "tasks",
            {
                "label": "pirate speak",
                "source": "named",
                "keywords_json": '["pirate", "arr"]',
                "examples_json": '["Say it like a pirate"]',
                "pin": "never_cloud",
                "created_utc": now,
                "updated_utc": now,
            },
        )
        retired = store.insert(
            "tasks",
            {
                "label": "old",
                "source": "discovered",
                "created_utc": now,
                "updated_utc": now,
                "retired_utc": now,
            },
        )
        adapter = store.insert(
            "adapters",
            {
                "task_id": named,
                "base_model_id": "smollm2",
                "path": "/nowhere",
                "sha256": "0",
                "status": "active",
                "created_utc": now,
            },
        )

    [task] = discovery.list_tasks(store)

    assert task == discovery.Task(
        id=named, label="pirate speak", source="named", size=0, pin="never_cloud", confidence_threshold=None,
        keywords=["pirate", "arr"], examples=["Say it like a pirate"], encoder=None, radius=None,
        created_utc=now, updated_utc=now, retired_utc=None, adapter_id=adapter,
    )  # fmt: skip
    assert [task.id for task in discovery.list_tasks(store, include_retired=True)] == [named, retired]
    assert set(task.to_dict()) == {
        "id", "label", "source", "size", "pin", "confidence_threshold", "keywords", "examples", "encoder",
        "radius", "created_utc", "updated_utc", "retired_utc", "adapter_id",
    }  # fmt: skip


def _chat(request: str) -> dict:
    return {"messages": [{"role": "user", "content": request}, {"role": "assistant", "content": "..."}]}


@pytest.mark.parametrize("repeats", [7, 20])
def test_a_task_of_three_wordings_repeated_forms_one_cluster(store, tmp_path, repeats):
    """An agent's recurring call: 21 or 60 requests in three wordings, each repeat counted."""
    commits = [_chat(wording) for wording in COMMIT_PHRASINGS for _ in range(repeats)]
    import_chat_jsonl(store, write_records(tmp_path / "commits.jsonl", commits))
    truth = {
        row["id"]: "commit_message" if row["user_text"] in COMMIT_PHRASINGS else None
        for row in store.db.query("SELECT id, user_text FROM turns")
    } | true_tasks(store)

    result = discovery.discover(store, known_labels=truth)

    placed = Counter(
        row["cluster_id"]
        for row in store.db.query("SELECT id, cluster_id FROM turns")
        if truth[row["id"]] == "commit_message"
    )
    [(task_id, count)] = placed.items()
    assert task_id is not None and count == 3 * repeats
    assert _majorities(store, truth)[task_id] == "commit_message"
    assert sorted(_majorities(store, truth).values()) == sorted([*TASKS, "commit_message"])
    assert result.purity >= 0.95


@pytest.fixture
def eval_store(tmp_path):
    """The eval log's train part discovered; (store, turn id -> true task, held-out and unrelated records)."""
    records = eval_records()
    train = [record for record in records if record["split"] == "train"]
    store = Store.open()
    import_chat_jsonl(store, write_records(tmp_path / "train.jsonl", train))
    by_request = {request_of(record): record["task"] for record in train}
    truth = {
        row["id"]: by_request[row["user_text"]] for row in store.db.query("SELECT id, user_text FROM turns")
    }
    discovery.discover(store)
    return store, truth, [record for record in records if record["split"] != "train"]


def test_held_out_requests_land_in_their_task_and_unrelated_ones_in_none(eval_store):
    store, truth, later = eval_store
    majorities = _majorities(store, truth)
    heldout = [record for record in later if record["split"] == "heldout"]
    unrelated = [record for record in later if record["split"] == "unrelated"]

    placed = [majorities.get(discovery.assign(store, request_of(record)).task_id) for record in heldout]
    strays = [discovery.assign(store, request_of(record)) for record in unrelated]

    share = np.mean([task == record["task"] for task, record in zip(placed, heldout, strict=True)])
    print(f"\n{len(heldout)} held-out requests, {share:.1%} placed in their task")
    assert sorted(set(majorities.values())) == sorted({record["task"] for record in heldout})
    assert share >= 0.95
    assert [stray.task_id for stray in strays] == [None] * len(unrelated)


def test_every_request_of_a_task_lies_within_its_radius(eval_store):
    store, _, _ = eval_store
    index = discovery.TaskIndex.load(store)
    tasks = {task_id: (index.centroids[place], index.radii[place]) for place, task_id in enumerate(index.ids)}
    rows = list(
        store.db.query(
            "SELECT turns.cluster_id, embeddings.vector FROM turns JOIN embeddings ON embeddings.turn_id = "
            "turns.id WHERE turns.cluster_id IS NOT NULL"
        )
    )

    beyond = []
    for row in rows:
        centroid, radius = tasks[row["cluster_id"]]
        distance = 1.0 - float(centroid @ embeddings.from_blob(row["vector"]))
        if distance > radius:
            beyond.append((row["cluster_id"], distance, radius))

    assert len(rows) >= 0.95 * store.db["turns"].count and beyond == []


def test_new_tasks_take_a_usable_name_from_the_namer_and_keep_it(store):
    asked: list[list[str]] = []

    def namer(examples):
        asked.append(list(examples))
        if any("haiku" in example.lower() for example in examples):
            return '"Haiku writing"\nA haiku is a short poem.'
        return "code review"  # no word of theirs: keywords beat it

    result = discovery.discover(store, namer=namer)

    majorities = _majorities(store)
    labels = {majorities[cluster.task_id]: cluster.label for cluster in result.clusters}
    assert labels.pop("haiku") == "Haiku writing"
    keyword_labels = {
        majorities[cluster.task_id]: ", ".join(cluster.keywords[:3]) for cluster in result.clusters
    }
    assert all(label == keyword_labels[task] for task, label in labels.items())
    assert len(asked) == 7 and all(len(examples) == 3 for examples in asked)

    def no_namer(examples):
        raise AssertionError("tasks found before are not named again")

    again = discovery.discover(store, namer=no_namer)

    assert {cluster.task_id: cluster.label for cluster in again.clusters} == {
        cluster.task_id: cluster.label for cluster in result.clusters
    }


def test_the_model_namer_asks_the_default_generalist_for_a_few_tokens(fake_model):
    fake_model.script(Reply("Ticket triage"))
    examples = ["Triage this support ticket: the app crashes", "Ticket triage, JSON only: login fails"]

    name = discovery.name_task(examples, ["ticket", "json"], discovery.ModelNamer())

    [request] = fake_model.requests
    assert name == "Ticket triage"
    assert request.options["max_tokens"] == discovery.NAME_TOKENS and request.options["temperature"] == 0.0
    assert request.messages[-1]["content"] == "\n".join(f"- {example}" for example in examples)


def test_a_name_cut_off_by_the_token_limit_is_no_name(fake_model, monkeypatch):
    monkeypatch.setattr(discovery, "NAME_TOKENS", 3)
    fake_model.script(Reply("Ticket triage desk team"), Reply("Ticket triage\nfor support"))
    examples = ["Triage this support ticket: the app crashes"]
    namer = discovery.ModelNamer()

    assert discovery.name_task(examples, ["ticket", "json"], namer) == "ticket, json"
    assert discovery.name_task(examples, ["ticket", "json"], namer) == "Ticket triage"


def test_without_a_model_to_load_names_fall_back_to_keywords(store):
    namer = discovery.ModelNamer("no-such-model")

    result = discovery.discover(store, namer=namer)

    assert namer(["Write a haiku about rain"]) is None
    assert all(cluster.label == ", ".join(cluster.keywords[:3]) for cluster in result.clusters)
