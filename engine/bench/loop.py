"""Whether the loop closes by itself: teacher answers in, specialists out, requests routed to them.

In a throwaway data dir, for each of a few synthetic narrow tasks with programmatic gold answers
(``TASKS``), ``requests`` teacher answers are imported as a ``gpt-4o`` log (``import_chat_jsonl``, no
ratings); discovery (S3) finds the tasks; the planner queues and ``run_due`` runs the due jobs, as
``tune run-due --ignore-window`` does, until none is queued; then ``fresh`` new requests per task and
``UNRELATED`` ones go through plain routing (``Agent.run_turn``).

Per task: exact match of the generalist alone (``before``) and of the routed answer (``after``), the
share of its requests served by its own specialist, training seconds, and the general-set scores the
gate recorded for base and candidate. Overall: mean exact match after, the share of task requests
served by their specialist, the share of unrelated requests the generalist kept.

The engine reads its data dir from ``UNDERSTUDY_HOME``; so that nothing here writes the process's
environment, the loop runs in a child process given its own.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.paths import HOME_VARIABLE

TEACHER = "gpt-4o"
SEED = 0
FRESH_SEED = 1
ANSWER_MAX_TOKENS = 64
RESULT_FILE = "loop-result.json"

UNRELATED = (
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "How many legs does a spider have?",
    "Suggest a name for a grey kitten.",
    "What is the boiling point of water in Fahrenheit?",
    "Give me a tip for sleeping better.",
    "Who wrote Romeo and Juliet?",
    "Explain photosynthesis in one sentence.",
    "What is 12 times 12?",
    "Recommend a board game for four players.",
    "Why is the sky blue?",
    "Tell me a short joke about cats.",
    "What language is spoken in Brazil?",
    "How do I boil an egg?",
    "Name three primary colours.",
    "What is the largest planet in the solar system?",
    "Write one sentence encouraging a friend before an exam.",
    "What does a thermometer measure?",
    "How many minutes are in a day?",
    "Describe the smell of rain in a few words.",
)

# Synthetic tasks --------------------------------------------------------------------------------------

Example = tuple[str, str]  # (request, gold answer)

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DATE_REQUESTS = (
    "Normalise this date to ISO 8601: {date}",
    "Normalise this date to ISO 8601 format: {date}",
    "Please normalise this date to ISO 8601: {date}",
)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date_example(rng: random.Random) -> Example:
    """A date written one of several human ways; its ISO 8601 form."""
    day = date(2020, 1, 1) + timedelta(days=rng.randrange(365 * 10))
    month = MONTHS[day.month - 1]
    written = rng.choice(
        (
            f"{month} {_ordinal(day.day)}, {day.year}",
            f"{month} {day.day}, {day.year}",
            f"{day.day} {month} {day.year}",
            f"{month[:3]} {day.day}, {day.year}",
            f"the {_ordinal(day.day)} of {month} {day.year}",
        )
    )
    return rng.choice(DATE_REQUESTS).format(date=written), day.isoformat()


TICKET_TEAMS = {
    "billing": (
        "I was charged twice for my subscription",
        "my invoice shows the wrong amount",
        "I still have not received my refund",
    ),
    "accounts": (
        "I cannot log in to my account",
        "the password reset email never arrives",
        "my two-factor code is rejected",
    ),
    "engineering": (
        "the app crashes when I open settings",
        "the export button throws an error",
        "the dashboard shows a blank page",
    ),
}
TICKET_PRIORITIES = {
    "high": ("and nobody on our team can work", "and it is blocking our launch today"),
    "medium": ("and it keeps happening every few days", "and it slows us down"),
    "low": ("but it is only a minor annoyance", "but there is no rush"),
}
TICKET_GREETINGS = ("Hi,", "Hello,", "Hey team,", "Good morning,", "Dear support,")
TICKET_REQUESTS = (
    "Triage this ticket as JSON with priority and team: {ticket}",
    "Triage this support ticket as JSON with priority and team: {ticket}",
)


def ticket_example(rng: random.Random) -> Example:
    """A ticket built from a team's problem and a priority's impact; the rules' answer as JSON."""
    team = rng.choice(sorted(TICKET_TEAMS))
    priority = rng.choice(sorted(TICKET_PRIORITIES))
    greeting = rng.choice(TICKET_GREETINGS)
    ticket = f"{greeting} {rng.choice(TICKET_TEAMS[team])} {rng.choice(TICKET_PRIORITIES[priority])}."
    answer = json.dumps({"priority": priority, "team": team})
    return rng.choice(TICKET_REQUESTS).format(ticket=ticket), answer


NAMES = [
    "Alice",
    "Bob",
    "Carla",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
]
TOPICS = ("the budget", "the roadmap", "hiring", "the launch plan", "customer feedback", "the release")
MEETING_REQUESTS = (
    "Extract the meeting as JSON with date and attendees: {note}",
    "Extract this meeting as JSON with date and attendees: {note}",
)


def meeting_example(rng: random.Random) -> Example:
    """A short note of who meets when about what; the date and attendees as JSON."""
    day = date(2026, 1, 1) + timedelta(days=rng.randrange(365))
    attendees = rng.sample(NAMES, rng.randint(2, 3))
    who = " and ".join([", ".join(attendees[:-1]), attendees[-1]])
    note = rng.choice(
        (
            f"{who} meet on {day.isoformat()} to discuss {rng.choice(TOPICS)}.",
            f"Meeting on {day.isoformat()} with {who} about {rng.choice(TOPICS)}.",
        )
    )
    answer = json.dumps({"date": day.isoformat(), "attendees": attendees})
    return rng.choice(MEETING_REQUESTS).format(note=note), answer


TASKS: dict[str, Callable[[random.Random], Example]] = {
    "date normalisation": date_example,
    "ticket triage": ticket_example,
    "meeting extraction": meeting_example,
}


def examples(task: str, count: int, seed: int, exclude: set[str] = frozenset()) -> list[Example]:
    """``count`` examples of ``task`` from ``seed``, none of whose requests is in ``exclude``."""
    rng = random.Random(f"{task}:{seed}")
    made: list[Example] = []
    for _ in range(count * 50):
        example = TASKS[task](rng)
        if example[0] not in exclude:
            made.append(example)
        if len(made) == count:
            break
    return made


# The bench ----------------------------------------------------------------------------------------


def bench_loop(tasks: int = 3, requests: int = 200, fresh: int = 60, steps: int | None = None) -> dict:
    """The figures of one whole loop (see the module doc), run in a child process and scratch data dir."""
    if not 1 <= tasks <= len(TASKS):
        raise ValueError(f"tasks must be 1 to {len(TASKS)}")
    options = {"tasks": tasks, "requests": requests, "fresh": fresh, "steps": steps}
    with tempfile.TemporaryDirectory(prefix="understudy-loop-bench-") as folder:
        environment = {**os.environ, HOME_VARIABLE: folder}
        environment.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # training beside llama.cpp, as the app's worker
        subprocess.run(
            [sys.executable, "-m", "engine.bench.loop", json.dumps(options)], env=environment, check=True
        )
        return json.loads((Path(folder) / RESULT_FILE).read_text(encoding="utf-8"))


def run_loop(tasks: int, requests: int, fresh: int, steps: int | None) -> dict[str, Any]:
    """The loop itself, in this process's data dir (the child's scratch one)."""
    from engine import paths
    from engine.store import Store

    names = list(TASKS)[:tasks]
    home = paths.data_dir()
    store = Store.open()
    taught = {name: examples(name, requests, SEED) for name in names}
    _import_teacher_log(store, taught, home / "teacher.jsonl")
    clusters_of = _discover(store, taught)
    jobs_run = _tune_until_done(store, steps)
    fresh_requests = {
        name: examples(name, fresh, FRESH_SEED, exclude={request for request, _ in taught[name]})
        for name in names
    }
    per_task, served, exact_after = {}, [], []
    agent = _agent(store)
    for name in names:
        figures, exact, specialist = _serve_task(agent, store, fresh_requests[name], clusters_of[name])
        per_task[name] = figures
        exact_after.extend(exact)
        served.extend(specialist)
    unrelated_to_generalist = [agent.route(request).target == "generalist" for request in UNRELATED]
    store.close()
    return {
        "tasks": per_task,
        "requests_per_task": requests,
        "fresh_per_task": fresh,
        "steps": steps,
        "jobs": jobs_run,
        "mean_exact_after": _share(exact_after),
        "served_by_specialist": _share(served),
        "unrelated": len(UNRELATED),
        "unrelated_to_generalist": _share(unrelated_to_generalist),
    }


def _import_teacher_log(store, taught: dict[str, list[Example]], path: Path) -> None:
    """Every example as one OpenAI chat record answered by the teacher, tasks interleaved as in a log."""
    from engine.log_import import import_chat_jsonl

    records = [
        {
            "id": f"{name}-{index}",
            "model": TEACHER,
            "messages": [{"role": "user", "content": request}, {"role": "assistant", "content": answer}],
        }
        for name, pairs in taught.items()
        for index, (request, answer) in enumerate(pairs)
    ]
    random.Random(SEED).shuffle(records)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    import_chat_jsonl(store, path, teacher=TEACHER)


def _discover(store, taught: dict[str, list[Example]]) -> dict[str, set[int]]:
    """Run discovery; each true task's clusters (those whose imported turns are mostly of it)."""
    from engine.discovery import discover

    task_of = {request: name for name, pairs in taught.items() for request, _ in pairs}
    discover(store)
    counts: dict[int, Counter] = {}
    for row in store.db.query("SELECT user_text, cluster_id FROM turns WHERE cluster_id IS NOT NULL"):
        counts.setdefault(row["cluster_id"], Counter())[task_of.get(row["user_text"])] += 1
    clusters_of: dict[str, set[int]] = {name: set() for name in taught}
    for cluster_id, counter in counts.items():
        majority = counter.most_common(1)[0][0]
        if majority in clusters_of:
            clusters_of[majority].add(cluster_id)
    return clusters_of


def _tune_until_done(store, steps: int | None) -> list[dict[str, Any]]:
    """Plan, queue and run due jobs as ``tune run-due --ignore-window`` does, until none is queued.

    The bench keeps the machine busy itself, so the schedule's idle and power conditions are waived.
    """
    from engine.tuning import jobs
    from engine.tuning.pipeline import TuneRequest, run_due
    from engine.tuning.planner import plan_due_jobs, queue_due_jobs
    from engine.tuning.scheduler import PsutilMachine, load_schedule

    schedule = load_schedule().model_copy(
        update={
            "window_start": "00:00",
            "window_end": "00:00",
            "require_idle": False,
            "require_ac_power": False,
        }
    )
    finished = []
    while True:
        now = datetime.now().astimezone()
        plan = plan_due_jobs(store, now, schedule, ignore_window=True)
        if steps is None:
            queue_due_jobs(store, plan)
        else:
            for planned in plan:
                if planned.queued:
                    request = TuneRequest(task=planned.task_id, train={"max_steps": steps})
                    jobs.create(store, jobs.KIND_TUNE, request.as_args(), planned.task_id)
        job, _ = run_due(store, PsutilMachine(), now, schedule)
        if job is None:
            return finished
        finished.append({"job_id": job.id, "task_id": job.task_id, "status": job.status, "error": job.error})


def _agent(store):
    from engine.agent import Agent
    from engine.backends import GenerationOptions
    from engine.catalog import load_catalog

    generation = GenerationOptions(max_tokens=ANSWER_MAX_TOKENS, temperature=0.0, seed=SEED)
    return Agent(store, load_catalog(), generation=generation)


def _answer(agent, request: str, route: bool):
    """The answer and the routing decision of one plain turn (``route`` off: the generalist alone)."""
    turn = agent.run_turn(request, route=route)
    while True:
        try:
            next(turn)
        except StopIteration as stop:
            return stop.value


def _serve_task(
    agent, store, pairs: list[Example], clusters: set[int]
) -> tuple[dict[str, Any], list[bool], list[bool]]:
    """Each fresh request answered by the generalist alone, then routed: the task's figures, and per
    request whether the routed answer was exact and whether the task's specialist served it."""
    from engine.tuning import adapters
    from engine.tuning.evaluation import choose_measure, score_answer

    measure = choose_measure([answer for _, answer in pairs])
    before, after, served = [], [], []
    for request, gold in pairs:
        alone = _answer(agent, request, route=False)
        routed = _answer(agent, request, route=True)
        before.append(score_answer(alone.answer.strip(), gold, measure).exact)
        after.append(score_answer(routed.answer.strip(), gold, measure).exact)
        decision = routed.route
        served.append(
            decision is not None and decision.target == "specialist" and decision.task_id in clusters
        )
    made = [
        _adapter_figures(adapter)
        for cluster in sorted(clusters)
        for adapter in adapters.list_adapters(store, cluster)
    ]
    first = made[0] if made else {}
    figures = {
        "clusters": sorted(clusters),
        "exact_before": _share(before),
        "exact_after": _share(after),
        "served_by_specialist": _share(served),
        "training_seconds": round(sum(adapter["training_seconds"] or 0.0 for adapter in made), 1),
        "general_before": first.get("general_before"),
        "general_after": first.get("general_after"),
        "adapters": made,
    }
    return figures, after, served


def _adapter_figures(adapter) -> dict[str, Any]:
    """What the gate recorded of one adapter: its decision, reasons and general-set scores."""
    gate = adapter.evaluation.gate
    general = None if gate is None else gate.figures.general
    return {
        "id": adapter.id,
        "task_id": adapter.task_id,
        "status": adapter.status,
        "promoted": None if gate is None else gate.promote,
        "reasons": [] if gate is None else gate.reasons,
        "training_seconds": adapter.training.get("seconds"),
        "steps": adapter.training.get("steps"),
        "general_before": None if general is None else general.base,
        "general_after": None if general is None else general.candidate,
    }


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


if __name__ == "__main__":
    # The child process ``bench_loop`` starts, in its scratch data dir: run, and leave the figures there.
    from engine import paths as _paths

    _figures = run_loop(**json.loads(sys.argv[1]))
    (_paths.data_dir() / RESULT_FILE).write_text(json.dumps(_figures), encoding="utf-8")
