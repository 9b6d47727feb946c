"""S3, task discovery: group the logged requests into the tasks the user actually does.

1. Embed every current, successful request (``turns.user_text``); vectors are cached in the
   ``embeddings`` table under the encoder's name, so a re-run embeds only new requests (and a change
   of encoder re-embeds everything).
2. Cluster with scikit-learn's HDBSCAN (Euclidean distance on unit vectors, which orders pairs as
   cosine distance does). Every request counts, repeats included: a request made sixty times is sixty
   points, so an agent's recurring call is a task even with a handful of wordings (deduplicated, it
   would be a handful of points under any cluster size, and lost to the outliers). The parameters grow
   with the log: ``min_cluster_size = clamp(round(0.6 * sqrt(n)), 5, 200)`` (11 for 350 requests, 19
   for 1,000, 60 for 10,000), so a task needs a noticeable share of a small log but not of a large
   one, and a wording repeated that often is a cluster of its own rather than swallowed by a nearby
   task (at 0.8 * sqrt(n), an inbox digest worded five ways lost one wording to the email subject
   lines); ``min_samples = max(2, min_cluster_size // 5)``, small, so dense regions are not eaten by
   the noise label. Clusters of a few wordings repeated are then joined when close (see
   ``_merge_phrasings``). Above ``LARGE_LOG`` requests it clusters the top ``LARGE_LOG_DIMENSIONS``
   principal components instead of all dimensions: 10,000 requests (20 synthetic blobs) take 5 s
   instead of 200 s (on the sample log, 32 components cost purity 1.00 -> 0.94, so small logs keep
   every dimension).
3. Each cluster gets a centroid (normalised mean of its members) and a radius that holds every member
   with a margin for new wordings (see ``_centroid_and_radius``). An outlier joins the nearest cluster
   when it lies within that cluster's radius; the result reports the outlier share before and after.
   The radius is the one boundary of a task: discovery, ``assign`` and the router all use it.
4. Labels: a task found before keeps its label; a new one is named by an optional ``Namer`` (the CLI
   and the app ask the default generalist, ``ModelNamer``), falling back to the cluster's most
   distinctive words by c-TF-IDF, ``tf(t, c) * log(1 + A / f(t))``, with tf the share of the
   cluster's words that are ``t`` (each word counted once per request), ``A`` the mean number of words
   per cluster and ``f(t)`` the count of ``t`` over all clusters (the remaining outliers as one more
   class); English stop words removed. Examples are the requests nearest the centroid.
5. Ids stay stable: new clusters are matched one-to-one to the previous discovered tasks (retired
   ones too) by centroid with the Hungarian algorithm on cosine distance; a pair counts only when the
   new centroid lies within the old task's radius. Matched tasks keep their id, pin, threshold and
   adapters; unmatched old ones are retired; tasks and ``turns.cluster_id`` are written in one
   transaction.

Tasks the user named or built from a dataset are not clustered; ``place_task`` (run by ``discover``
for those without a centroid in the current encoder's space) gives them a centroid and radius from
their turns and their datasets' requests, so their specialists can be routed to as well.

``assign`` places one new request without re-clustering: the nearest task, if within its radius.

Measured by ``understudy bench discover`` on the shipped synthetic logs (resources/discovery_eval.jsonl:
eight agent tasks, two of them a few wordings repeated; resources/task_log_sample.jsonl: seven).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from engine import embeddings
from engine.embeddings import Encoder
from engine.errors import DiscoveryError, UnderstudyError
from engine.store import Store, utc_now

if TYPE_CHECKING:
    from engine.backends import Backend

MIN_REQUESTS = 10
MIN_PLACED_REQUESTS = 3
MIN_RADIUS = 0.05
DEFAULT_RADIUS = 0.35  # a typical task's radius in the static encoder's space (0.17 to 0.41 on the eval log)
FEW_DISTINCT = 10  # distinct requests under which a cluster's spread is not measured
RADIUS_MARGIN = 0.3  # of the median member's distance, added past the farthest member's
LARGE_LOG = 3000
LARGE_LOG_DIMENSIONS = 32
KEYWORDS = 8
LABEL_WORDS = 3
EXAMPLES = 3
EXAMPLE_CHARS = 200
EMBED_BATCH = 256
NAME_TOKENS = 10
NAME_WORDS = 4
NAME_SHOTS = (  # worked examples for ``ModelNamer``: (requests, their task's name)
    (
        (
            "Double this recipe for 8 people: 200 g flour, 2 eggs",
            "Scale the pancake recipe down to 2 servings",
            "How much butter if I make 1.5x this cake?",
        ),
        "recipe scaling",
    ),
    (
        (
            "Review this Python function for bugs: def add(a, b): return a - b",
            "Any problems in this diff?",
            "Look over my pull request and suggest fixes",
        ),
        "code review",
    ),
)
EXTRA_STOP_WORDS = frozenset({"please", "thanks", "thank", "like", "just", "want", "need", "hi", "hello"})
_WORD = re.compile(r"[a-z][a-z0-9+#_-]*[a-z0-9+#]")
_NAME = re.compile(r"[\w' /+#-]+")

Namer = Callable[[Sequence[str]], str | None]
"""Proposes a readable name for a new task from a few of its requests; None when it has none."""


@dataclass
class Cluster:
    task_id: int
    label: str
    keywords: list[str]
    size: int
    examples: list[str]
    radius: float
    new: bool  # False when it kept the id of an earlier run's task


@dataclass
class DiscoveryResult:
    n_requests: int
    n_clusters: int
    outlier_share_before: float
    outlier_share_after: float
    clusters: list[Cluster]
    retired_task_ids: list[int]
    encoder: str
    min_cluster_size: int
    min_samples: int
    embedded_now: int  # requests that had no cached vector for this encoder
    duration_s: float
    purity: float | None = None  # only when the true tasks of the requests are known (tests, benches)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Assignment(NamedTuple):
    task_id: int | None  # None: no task is close enough
    distance: float | None  # cosine distance to the nearest task, None when there are no tasks


@dataclass(frozen=True)
class Task:
    """A task as the user sees it: what it is, how it is pinned and which specialist serves it."""

    id: int
    label: str
    source: str  # discovered, named or dataset
    size: int
    pin: str
    confidence_threshold: float | None  # None: the router's default
    keywords: list[str]
    examples: list[str]
    encoder: str | None  # the space its centroid lives in; None until it is placed
    radius: float | None
    created_utc: str
    updated_utc: str
    retired_utc: str | None
    adapter_id: int | None  # the active specialist adapter, if any

    def to_dict(self) -> dict[str, Any]:
        """The stable keys of `understudy tasks --json`."""
        return asdict(self)


def list_tasks(store: Store, include_retired: bool = False) -> list[Task]:
    """Every task in id order, with its active adapter; retired ones only when asked for."""
    where = "" if include_retired else "WHERE tasks.retired_utc IS NULL"
    rows = store.db.query(
        "SELECT tasks.id, tasks.label, tasks.source, tasks.size, tasks.pin, tasks.confidence_threshold, "
        "tasks.keywords_json, tasks.examples_json, tasks.encoder, tasks.radius, tasks.created_utc, "
        "tasks.updated_utc, tasks.retired_utc, adapters.id AS adapter_id FROM tasks "
        f"LEFT JOIN adapters ON adapters.task_id = tasks.id AND adapters.status = 'active' {where} "
        "ORDER BY tasks.id"
    )
    tasks = []
    for row in rows:
        keywords = json.loads(row.pop("keywords_json"))
        examples = json.loads(row.pop("examples_json"))
        tasks.append(Task(**row, keywords=keywords, examples=examples))
    return tasks


def cluster_parameters(n_requests: int) -> tuple[int, int]:
    """HDBSCAN's (min_cluster_size, min_samples) for a log of ``n_requests``; see the module doc."""
    min_cluster_size = min(200, max(5, round(0.6 * math.sqrt(n_requests))))
    return min_cluster_size, max(2, min_cluster_size // 5)


def requests(store: Store) -> list[tuple[int, str]]:
    """(turn id, request) of every current, successful turn in a conversation not deleted, leaving out
    turns placed under a task the user named or built from a dataset (those are not discovery's)."""
    return [
        (row["id"], row["user_text"])
        for row in store.db.query(
            "SELECT turns.id, turns.user_text FROM turns "
            "JOIN conversations ON conversations.id = turns.conversation_id "
            "LEFT JOIN tasks ON tasks.id = turns.cluster_id "
            "WHERE turns.status = 'ok' AND turns.replaced_by IS NULL AND conversations.deleted_utc IS NULL "
            "AND TRIM(turns.user_text) != '' AND (tasks.id IS NULL OR tasks.source = 'discovered') "
            "ORDER BY turns.id"
        )
    ]


def embed_turns(store: Store, encoder: Encoder, rows: Sequence[tuple[int, str]]) -> tuple[np.ndarray, int]:
    """Vectors of ``rows`` (turn id, text) from the cache, encoding and caching the missing ones;
    returns the matrix and how many were encoded now."""
    cached = {
        row["turn_id"]: row["vector"]
        for row in store.db.query("SELECT turn_id, vector FROM embeddings WHERE encoder = ?", [encoder.name])
    }
    missing = [(turn_id, text) for turn_id, text in rows if turn_id not in cached]
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        vectors = encoder.encode([text for _, text in batch])
        with store.transaction():
            for (turn_id, _), vector in zip(batch, vectors, strict=True):
                blob = embeddings.to_blob(vector)
                store.db.execute(
                    "INSERT OR REPLACE INTO embeddings (turn_id, encoder, vector) VALUES (?, ?, ?)",
                    [turn_id, encoder.name, blob],
                )
                cached[turn_id] = blob
    matrix = np.zeros((len(rows), encoder.dim), dtype=np.float32)
    for index, (turn_id, _) in enumerate(rows):
        matrix[index] = embeddings.from_blob(cached[turn_id])
    return matrix, len(missing)


def discover(
    store: Store,
    encoder: Encoder | None = None,
    known_labels: Mapping[int, str] | None = None,
    namer: Namer | None = None,
) -> DiscoveryResult:
    """(Re)build the discovered tasks from the whole log; ``known_labels`` (turn id -> true task)
    adds the clusters' purity to the result. New tasks are named by ``namer`` (see ``name_task``);
    tasks found before keep their label."""
    started = time.perf_counter()
    encoder = encoder or embeddings.load_encoder()
    rows = requests(store)
    if len(rows) < MIN_REQUESTS:
        raise DiscoveryError(
            f"the log has {len(rows)} usable request(s); discovery needs at least {MIN_REQUESTS}. Chat a "
            "while longer, or import older history with `understudy logs import --jsonl FILE`"
        )
    vectors, embedded_now = embed_turns(store, encoder, rows)
    min_cluster_size, min_samples = cluster_parameters(len(rows))
    members = _merge_phrasings(vectors, _hdbscan(vectors, min_cluster_size, min_samples))
    outliers_before = float(np.mean(members < 0))

    n_clusters = int(members.max()) + 1 if len(members) else 0
    centroids = np.zeros((n_clusters, vectors.shape[1]), dtype=np.float32)
    radii = np.zeros(n_clusters, dtype=np.float32)
    for cluster in range(n_clusters):
        centroids[cluster], radii[cluster] = _centroid_and_radius(vectors[members == cluster])
    assigned = members.copy()
    if n_clusters:
        distances = 1.0 - vectors @ centroids.T
        nearest = distances.argmin(axis=1)
        for index in np.flatnonzero(members < 0):
            cluster = nearest[index]
            if distances[index, cluster] <= radii[cluster]:
                assigned[index] = cluster
    outliers_after = float(np.mean(assigned < 0))

    texts = [text for _, text in rows]
    keywords = _keywords(texts, assigned, n_clusters)
    task_ids, retired = _match_previous(store, vectors, [turn_id for turn_id, _ in rows], centroids)
    examples = []
    for cluster in range(n_clusters):
        inside = np.flatnonzero(assigned == cluster)
        order = inside[np.argsort(1.0 - vectors[inside] @ centroids[cluster])]
        examples.append(list(dict.fromkeys(texts[index][:EXAMPLE_CHARS] for index in order))[:EXAMPLES])
    kept_labels = {
        row["id"]: row["label"]
        for row in store.db.query(
            "SELECT id, label FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps([task_id for task_id in task_ids if task_id is not None])],
        )
    }
    labels = [
        kept_labels.get(task_id)
        or name_task(examples[cluster], keywords[cluster], namer)
        or f"task {cluster + 1}"
        for cluster, task_id in enumerate(task_ids)
    ]
    clusters = []
    now = utc_now()
    with store.transaction():
        for cluster in range(n_clusters):
            label = labels[cluster]
            size = int(np.sum(assigned == cluster))
            values = {
                "label": label,
                "keywords_json": json.dumps(keywords[cluster], ensure_ascii=False),
                "examples_json": json.dumps(examples[cluster], ensure_ascii=False),
                "centroid": embeddings.to_blob(centroids[cluster]),
                "size": size,
                "encoder": encoder.name,
                "radius": float(radii[cluster]),
                "updated_utc": now,
            }
            task_id = task_ids[cluster]
            if task_id is None:
                task_id = store.insert("tasks", {**values, "source": "discovered", "created_utc": now})
            else:
                assignments = ", ".join(f"{column} = ?" for column in values)
                store.db.execute(
                    f"UPDATE tasks SET {assignments}, retired_utc = NULL WHERE id = ?",
                    [*values.values(), task_id],
                )
            clusters.append(
                Cluster(
                    task_id=task_id,
                    label=label,
                    keywords=keywords[cluster],
                    size=size,
                    examples=examples[cluster],
                    radius=round(float(radii[cluster]), 4),
                    new=task_ids[cluster] is None,
                )
            )
        for task_id in retired:
            store.db.execute(
                "UPDATE tasks SET retired_utc = ?, updated_utc = ? WHERE id = ?", [now, now, task_id]
            )
        current = {
            row["id"]: row["cluster_id"]
            for row in store.db.query(
                "SELECT id, cluster_id FROM turns WHERE id IN (SELECT value FROM json_each(?))",
                [json.dumps([turn_id for turn_id, _ in rows])],
            )
        }
        for (turn_id, _), cluster in zip(rows, assigned, strict=True):
            task_id = None if cluster < 0 else clusters[cluster].task_id
            if current.get(turn_id) != task_id:
                store.db.execute("UPDATE turns SET cluster_id = ? WHERE id = ?", [task_id, turn_id])

    for row in list(
        store.db.query(
            "SELECT id FROM tasks WHERE source != 'discovered' AND retired_utc IS NULL "
            "AND (centroid IS NULL OR encoder IS NOT ?)",
            [encoder.name],
        )
    ):
        place_task(store, row["id"], encoder)
    purity = None
    if known_labels is not None:
        purity = _purity([known_labels.get(turn_id) for turn_id, _ in rows], assigned)
    clusters.sort(key=lambda cluster: -cluster.size)
    return DiscoveryResult(
        n_requests=len(rows),
        n_clusters=n_clusters,
        outlier_share_before=round(outliers_before, 4),
        outlier_share_after=round(outliers_after, 4),
        clusters=clusters,
        retired_task_ids=retired,
        encoder=encoder.name,
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        embedded_now=embedded_now,
        duration_s=round(time.perf_counter() - started, 3),
        purity=None if purity is None else round(purity, 4),
    )


def _hdbscan(vectors: np.ndarray, min_cluster_size: int, min_samples: int) -> np.ndarray:
    """Cluster labels (-1: outlier); a large log is clustered on its top principal components."""
    from sklearn.cluster import HDBSCAN

    points = vectors.astype(np.float64)
    if len(points) > LARGE_LOG:
        centred = points - points.mean(axis=0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        points = centred @ components[:LARGE_LOG_DIMENSIONS].T
        points /= np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True)
    return model.fit_predict(points)


def _merge_phrasings(vectors: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Cluster labels with the clusters of a few phrasings repeated joined, closest first: two clusters
    of under ``FEW_DISTINCT`` distinct requests each whose centroids lie within ``DEFAULT_RADIUS`` of
    each other.

    HDBSCAN sees a request repeated verbatim as one infinitely dense point, so an agent's recurring call
    made in five wordings becomes five clusters. The spread of such a cluster cannot be measured, so it
    is given a typical task's radius, and another such cluster within that radius is taken for another
    wording of the same task. Clusters whose spread is measured are left alone: two real tasks can lie
    that close (ticket triage and meeting extraction, 0.31 apart in the eval log).
    """
    members = members.copy()
    while True:
        narrow = [
            cluster
            for cluster in range(members.max() + 1)
            if len(np.unique(vectors[members == cluster], axis=0)) < FEW_DISTINCT
        ]
        if len(narrow) < 2:
            return members
        centroids = np.stack([_centroid(vectors[members == cluster]) for cluster in narrow])
        distances = 1.0 - centroids @ centroids.T
        np.fill_diagonal(distances, np.inf)
        first, second = np.unravel_index(np.argmin(distances), distances.shape)
        if distances[first, second] > DEFAULT_RADIUS:
            return members
        kept, joined = sorted((narrow[first], narrow[second]))
        members[members == joined] = kept
        members[members > joined] -= 1


def _centroid(vectors: np.ndarray) -> np.ndarray:
    """The normalised mean: a repeated request weighs as often as it was made."""
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def _centroid_and_radius(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """The centroid and a radius that holds every member with room for its near neighbours.

    The radius is the farthest member's distance plus ``RADIUS_MARGIN`` times the median one. A
    percentile would leave its top members outside by construction, and the router would call a task's
    own requests "at its edge"; the margin, a share of the task's own typical spread, reaches a new
    wording just past the farthest one seen. Distances are taken over distinct vectors: repeats say how
    often a request comes, not how widely the task varies. Under ``FEW_DISTINCT`` of them the spread is
    not measurable, so the radius is at least a typical task's (``DEFAULT_RADIUS``).
    """
    centroid = _centroid(vectors)
    distinct = np.unique(vectors, axis=0)
    distances = 1.0 - distinct @ centroid
    radius = max(MIN_RADIUS, float(distances.max()) + RADIUS_MARGIN * float(np.median(distances)))
    if len(distinct) < FEW_DISTINCT:
        radius = max(radius, DEFAULT_RADIUS)
    return centroid, radius


def _match_previous(
    store: Store, vectors: np.ndarray, turn_ids: list[int], centroids: np.ndarray
) -> tuple[list[int | None], list[int]]:
    """The earlier task id for each new cluster (None: a new task) and the active ids to retire.

    An earlier task's centroid and radius are taken as stored when they live in this encoder's space,
    else recomputed from the current vectors of the requests it held.
    """
    previous = list(
        store.db.query(
            "SELECT id, centroid, radius, retired_utc FROM tasks WHERE source = 'discovered' "
            "AND centroid IS NOT NULL AND encoder IS NOT NULL"
        )
    )
    position = {turn_id: index for index, turn_id in enumerate(turn_ids)}
    held: dict[int, list[int]] = {}
    for row in store.db.query(
        "SELECT id, cluster_id FROM turns "
        "WHERE cluster_id IN (SELECT id FROM tasks WHERE source = 'discovered')"
    ):
        if row["id"] in position:
            held.setdefault(row["cluster_id"], []).append(position[row["id"]])
    old_ids, old_centroids, old_radii = [], [], []
    for row in previous:
        centroid = embeddings.from_blob(row["centroid"])
        radius = row["radius"]
        if centroid.shape[0] != vectors.shape[1] or radius is None:
            if row["id"] not in held:
                continue
            centroid, radius = _centroid_and_radius(vectors[held[row["id"]]])
        old_ids.append(row["id"])
        old_centroids.append(centroid)
        old_radii.append(radius)

    task_ids: list[int | None] = [None] * len(centroids)
    matched_old: set[int] = set()
    if old_ids and len(centroids):
        from scipy.optimize import linear_sum_assignment

        distances = 1.0 - centroids @ np.stack(old_centroids).T
        for new, old in zip(*linear_sum_assignment(distances), strict=True):
            if distances[new, old] <= old_radii[old]:
                task_ids[new] = old_ids[old]
                matched_old.add(old_ids[old])
    retired = [row["id"] for row in previous if row["retired_utc"] is None and row["id"] not in matched_old]
    active_without_centroid = store.db.query(
        "SELECT id FROM tasks WHERE source = 'discovered' AND retired_utc IS NULL "
        "AND (centroid IS NULL OR encoder IS NULL)"
    )
    retired += [row["id"] for row in active_without_centroid]
    return task_ids, retired


def _keywords(texts: list[str], assigned: np.ndarray, n_clusters: int) -> list[list[str]]:
    """The top c-TF-IDF words of each cluster (see the module doc)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop = ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS
    classes = [Counter() for _ in range(n_clusters + 1)]  # the last one: outliers left over
    for text, cluster in zip(texts, assigned, strict=True):
        words = {word for word in _WORD.findall(text.lower()) if word not in stop and not word.isdigit()}
        classes[cluster if cluster >= 0 else n_clusters].update(words)
    totals = [sum(counts.values()) for counts in classes]
    used = [total for total in totals if total]
    average_words = sum(used) / max(1, len(used))
    across: Counter = Counter()
    for counts in classes:
        across.update(counts)
    keywords = []
    for cluster in range(n_clusters):
        counts, total = classes[cluster], max(1, totals[cluster])
        scores = {
            word: count / total * math.log(1 + average_words / across[word])
            for word, count in counts.items()
            if count >= 2
        }
        keywords.append(
            [word for word, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))][:KEYWORDS]
        )
    return keywords


def _purity(truth: list[str | None], assigned: np.ndarray) -> float:
    """Share of clustered, labelled requests whose cluster's majority task is their own."""
    by_cluster: dict[int, Counter] = {}
    for label, cluster in zip(truth, assigned, strict=True):
        if cluster >= 0 and label is not None:
            by_cluster.setdefault(int(cluster), Counter())[label] += 1
    total = sum(sum(counts.values()) for counts in by_cluster.values())
    return sum(counts.most_common(1)[0][1] for counts in by_cluster.values()) / total if total else 0.0


# Naming new tasks ----------------------------------------------------------------------------------


def name_task(examples: Sequence[str], keywords: Sequence[str], namer: Namer | None = None) -> str:
    """A new task's label: the namer's proposal when it is usable (see ``_usable_name``), else its top
    keywords (empty when it has none); users recognise "ticket triage" sooner than "ticket, team,
    priority"."""
    proposal = namer(examples) if namer is not None else None
    return _usable_name(proposal, examples) or ", ".join(keywords[:LABEL_WORDS])


def _usable_name(proposal: str | None, examples: Sequence[str]) -> str | None:
    """The proposal's first line up to a colon, trimmed of list marks and quotes, when it is 1 to
    ``NAME_WORDS`` plain words, does not end in a stop word, and one of them begins like a word of the
    examples (its first five letters, so "conversion" counts for "convert"): a small model sometimes
    answers with code, the start of a sentence, or a worked example's name, and keywords beat all
    three."""
    if not proposal:
        return None
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    name = re.split(r"[\n:]", proposal.strip(), maxsplit=1)[0].strip(" -*\"'`.,;")
    words = name.lower().split()
    if not words or len(words) > NAME_WORDS or not _NAME.fullmatch(name) or words[-1] in ENGLISH_STOP_WORDS:
        return None
    seen = {word for example in examples for word in re.findall(r"\w+", example.lower())}
    grounded = any(
        len(word) >= 3
        and word not in ENGLISH_STOP_WORDS
        and any(other.startswith(word[:5]) for other in seen)
        for word in words
    )
    return name if grounded else None


class ModelNamer:
    """Names new tasks with a local chat model, the default generalist unless ``model_id``: a few greedy
    tokens per new task, after two worked examples (a 135M model answers with a name only then). An
    answer cut off by the token limit before its first line or colon ended is no name.

    The model is loaded on the first call; when it cannot be (not installed, unreadable) or fails, this
    and every later call give None, so discovery keeps keyword labels and never fails for a name.
    """

    def __init__(self, model_id: str | None = None) -> None:
        self.model_id = model_id
        self._backend: Backend | None = None
        self._unavailable = False

    def __call__(self, examples: Sequence[str]) -> str | None:
        from engine import backends, catalog
        from engine.backends import GenerationOptions, drain

        if self._unavailable:
            return None
        messages = [{"role": "system", "content": "You name the kind of task that a list of requests share."}]
        for shot, name in NAME_SHOTS:
            messages += [
                {"role": "user", "content": "\n".join(f"- {request}" for request in shot)},
                {"role": "assistant", "content": name},
            ]
        messages.append({"role": "user", "content": "\n".join(f"- {request}" for request in examples)})
        try:
            if self._backend is None:
                self._backend = backends.load(catalog.load_catalog().get(self.model_id))
            options = GenerationOptions(max_tokens=NAME_TOKENS, temperature=0.0, seed=0)
            completion = drain(self._backend.stream_chat(messages, options))
        except UnderstudyError:
            self._unavailable = True
            return None
        finished = completion.finish_reason == "stop" or re.search(r"[\n:]", completion.text)
        return completion.text if finished else None


def place_task(store: Store, task_id: int, encoder: Encoder | None = None) -> bool:
    """Give a task named by the user or built from a dataset a centroid and radius, so its specialist
    can be routed to: from the requests of the turns placed under it and the last user message of
    each example in its datasets. Returns False (changing nothing) with fewer than
    ``MIN_PLACED_REQUESTS`` of them."""
    encoder = encoder or embeddings.load_encoder()
    texts = [
        row["user_text"]
        for row in store.db.query(
            "SELECT user_text FROM turns WHERE cluster_id = ? AND status = 'ok' AND replaced_by IS NULL",
            [task_id],
        )
    ]
    for row in store.db.query("SELECT path FROM datasets WHERE task_id = ?", [task_id]):
        for name in ("train.jsonl", "val.jsonl"):
            texts += _dataset_requests(Path(row["path"]) / name)
    texts = [text for text in dict.fromkeys(texts) if text.strip()]
    if len(texts) < MIN_PLACED_REQUESTS:
        return False
    centroid, radius = _centroid_and_radius(encoder.encode(texts))
    with store.transaction():
        store.db.execute(
            "UPDATE tasks SET centroid = ?, radius = ?, encoder = ?, updated_utc = ? WHERE id = ?",
            [embeddings.to_blob(centroid), radius, encoder.name, utc_now(), task_id],
        )
    return True


def _dataset_requests(path: Path) -> list[str]:
    """The last user message of each chat record in a dataset file (none if it is unreadable)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    requests = []
    for line in lines:
        try:
            messages = json.loads(line)["messages"]
            requests.append(next(m["content"] for m in reversed(messages) if m["role"] == "user"))
        except (ValueError, KeyError, TypeError, StopIteration):
            continue
    return requests


# Placing new requests ------------------------------------------------------------------------------


@dataclass
class TaskIndex:
    """The current tasks' centroids in one matrix, for nearest-task look-ups without the database."""

    encoder: str | None
    ids: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    radii: list[float] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)
    confidence_thresholds: list[float | None] = field(default_factory=list)

    @classmethod
    def load(cls, store: Store) -> TaskIndex:
        """Every task not retired that has a centroid, in the space of the encoder most of them use."""
        rows = list(
            store.db.query(
                "SELECT id, label, centroid, encoder, radius, pin, confidence_threshold FROM tasks "
                "WHERE retired_utc IS NULL AND centroid IS NOT NULL AND encoder IS NOT NULL ORDER BY id"
            )
        )
        if not rows:
            return cls(encoder=None)
        encoder = Counter(row["encoder"] for row in rows).most_common(1)[0][0]
        rows = [row for row in rows if row["encoder"] == encoder]
        return cls(
            encoder=encoder,
            ids=[row["id"] for row in rows],
            labels=[row["label"] for row in rows],
            centroids=np.stack([embeddings.from_blob(row["centroid"]) for row in rows]),
            radii=[row["radius"] if row["radius"] is not None else DEFAULT_RADIUS for row in rows],
            pins=[row["pin"] for row in rows],
            confidence_thresholds=[row["confidence_threshold"] for row in rows],
        )

    def nearest(self, vector: np.ndarray) -> tuple[int, float, float | None]:
        """(position of the nearest task, its cosine distance, distance to the second nearest)."""
        distances = 1.0 - self.centroids @ vector
        order = np.argsort(distances)
        second = float(distances[order[1]]) if len(order) > 1 else None
        return int(order[0]), float(distances[order[0]]), second


def assign(store: Store, request: int | str, encoder: Encoder | None = None) -> Assignment:
    """The task of one request, without re-clustering.

    ``request`` is a turn id (its vector is cached and its ``cluster_id`` set) or a text (nothing is
    written). The nearest task counts when the request lies within its radius, as in discovery.
    """
    index = TaskIndex.load(store)
    if index.encoder is None:
        return Assignment(None, None)
    encoder = encoder or embeddings.load_encoder(index.encoder, build=False)
    if encoder.name != index.encoder:
        raise DiscoveryError(
            f"the tasks were built with the {index.encoder} encoder, not {encoder.name}; "
            "run `understudy discover` again"
        )
    if isinstance(request, str):
        vector = encoder.encode([request])[0]
    else:
        rows = list(store.db.query("SELECT user_text FROM turns WHERE id = ?", [request]))
        if not rows:
            raise DiscoveryError(f"there is no turn {request}")
        vector = embed_turns(store, encoder, [(request, rows[0]["user_text"])])[0][0]
    position, distance, _ = index.nearest(vector)
    task_id = index.ids[position] if distance <= index.radii[position] else None
    if not isinstance(request, str):
        with store.transaction():
            store.db.execute("UPDATE turns SET cluster_id = ? WHERE id = ?", [task_id, request])
    return Assignment(task_id, round(distance, 4))
