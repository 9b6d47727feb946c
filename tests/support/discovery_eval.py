"""Writes resources/discovery_eval.jsonl: a mixed agent log of eight known tasks, split for discovery's eval.

Each line is an OpenAI chat-format record plus ``"task"`` (None for a request of no task) and
``"split"``: ``train`` (the log discovery clusters), ``heldout`` (later requests of the same tasks, to be
placed in them) or ``unrelated`` (requests of no task, to go to the generalist). Six tasks vary their
wording a lot; two are an agent's recurring calls, a handful of phrasings repeated verbatim (the
inbox digest: five phrasings, sixty calls; the commit message: three phrasings, twenty-four calls), the
shape that collapses when repeats are counted once. Held-out requests never repeat a train request of a
varied task, and some use a phrasing the train part never shows.

Run ``.venv/bin/python tests/support/discovery_eval.py`` to regenerate it (seeded: the same file each
time).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

EVAL_PATH = Path(__file__).resolve().parents[2] / "resources" / "discovery_eval.jsonl"
SEED = 11

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]  # fmt: skip


def _date(rng: random.Random) -> str:
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.choice([2023, 2024, 2025, 2026])
    name = MONTHS[month - 1]
    return rng.choice(
        [
            f"{day}/{month}/{year}",
            f"{month}-{day}-{year % 100:02d}",
            f"{name} {day}, {year}",
            f"{day} {name[:3]} {year}",
            f"the {day}th of {name} {year}",
            f"{name[:3]}. {day} '{year % 100:02d}",
            f"{year}.{month:02d}.{day:02d}",
        ]
    )


DATE_TEMPLATES = [
    "Normalise this date to ISO 8601: {d}",
    "Convert the date '{d}' to YYYY-MM-DD.",
    "What is {d} in ISO format?",
    "Reformat {d} as an ISO 8601 date please",
    "Turn this into a standard YYYY-MM-DD date: {d}",
    "date normalization: {d} -> ?",
    "Parse the date {d} and give it back as year-month-day.",
]
DATE_UNSEEN = ["Rewrite the date {d} in the 2024-01-31 style.", "Standardise this date for our database: {d}"]

TICKETS = [
    "The app crashes every time I upload a photo larger than 10 MB.",
    "I was charged twice for my March subscription.",
    "Password reset emails never arrive, I checked spam.",
    "Can you add dark mode to the Android app?",
    "Our whole team is locked out since this morning, production is down!",
    "The invoice PDF shows the wrong VAT number.",
    "Export to CSV drops every row after 1,000.",
    "How do I change the email address on my account?",
    "The dashboard takes over a minute to load since the last update.",
    "I want to cancel my plan and get a refund.",
    "Two-factor codes are rejected as expired.",
    "The API returns 500 on /v2/orders since 9am.",
    "Typo on the pricing page: 'anual' instead of 'annual'.",
    "Webhook deliveries are delayed by several hours.",
]
TRIAGE_TEMPLATES = [
    'Triage this support ticket and return JSON with priority, category and team: "{ticket}"',
    "Classify the following ticket as JSON "
    '{{"priority": ..., "category": ..., "assignee_team": ...}}: {ticket}',
    "Support ticket: {ticket}\nGive me its triage (severity, area, owning team) as a JSON object.",
    "Read this customer ticket and output JSON with urgency, product area and which team should handle it. "
    "Ticket: {ticket}",
    "Ticket triage, JSON only. Fields: priority (P1-P4), category, team. Text: {ticket}",
    "Help me route this ticket. Respond with JSON containing priority, category, team.\n\n{ticket}",
]
TRIAGE_UNSEEN = [
    'New ticket came in: "{ticket}". Which queue, how urgent, what kind of issue? Answer in JSON.'
]

MEETINGS = [
    "Standup Mon 9:30 with Ana, Raj and Li. Raj to fix the login bug by Wednesday; Ana reviews the API docs.",
    "Call with Acme on 12 March, 14:00. Attendees: Tom (us), Greta and Paul (Acme). Tom sends the quote "
    "Friday.",
    "Budget review Thursday 3pm, Sara, Omar, Jin. Omar updates the forecast; Jin books the offsite venue.",
    "Retro on 2 May: Kim, Lea, Bo. Action: Lea writes the incident postmortem, Bo sets up alerts.",
    "Design sync tomorrow 11:00 with Mia and Noah; Mia shares the mockups, Noah checks accessibility.",
    "Board prep, 20/06 at 10am: CEO, CFO, Dana. Dana compiles the KPIs by Tuesday.",
    "Hiring panel Fri 16:30 - Eve, Sam, Iris. Sam collects feedback, Iris schedules the final round.",
    "Kickoff with Globex on June 3rd 9am: Ben, Yara, Leo. Leo drafts the project plan; Ben sets up Slack.",
    "1:1 Ana and Max Wednesday 2pm. Max to finish the onboarding checklist next week.",
    "Vendor call 8 Oct 15:00 with Priya and Chen; Chen negotiates the renewal, Priya updates legal.",
    "Sprint planning 14/01 10:00, whole team (Ada, Finn, Zoe). Finn estimates the search epic; Zoe demos "
    "Friday.",
    "Quick sync with legal, Tuesday 4pm: Nora and Hugo. Hugo redlines the NDA, Nora signs off by EOD.",
    "Marketing weekly, 27 Feb 13:30 - Lily, Marco, Dev. Marco books the ads, Dev fixes the landing page.",
    "Incident review Sunday 18:00 with Ravi, Olga, Tim; Olga adds a runbook, Tim rotates the keys.",
]
MEETING_TEMPLATES = [
    "Extract the meeting details as JSON (attendees, date, time, action items): {m}",
    "From these meeting notes, give me a JSON object with attendees, when it is and the action items.\n{m}",
    "Parse these notes into JSON: participants, datetime, tasks with owners. Notes: {m}",
    'Pull the attendees, date/time and to-dos out of this as JSON: "{m}"',
    "Meeting notes -> JSON {{attendees, date, time, actions}}:\n{m}",
    "Turn my meeting notes into structured JSON with who attended, the date and time, and who does what. {m}",
]
MEETING_UNSEEN = ["Who was in this meeting, when was it and what has to be done? Reply as JSON. {m}"]

UNITS = [
    ("miles", "kilometers"), ("pounds", "kilograms"), ("feet", "meters"), ("inches", "centimeters"),
    ("gallons", "liters"), ("ounces", "grams"), ("degrees Fahrenheit", "degrees Celsius"),
    ("acres", "hectares"), ("cups", "milliliters"), ("kilometers", "miles"), ("kilograms", "pounds"),
    ("yards", "meters"),
]  # fmt: skip
UNIT_TEMPLATES = [
    "Convert {n} {a} to {b}.",
    "How many {b} is {n} {a}?",
    "What is {n} {a} in {b}?",
    "{n} {a} to {b} please",
    "Can you convert {n} {a} into {b} for my recipe?",
    "Quick conversion: {n} {a} = ? {b}",
]
UNIT_UNSEEN = ["my car manual says {n} {a}, how much is that in {b}"]

EMAIL_TOPICS = [
    "the quarterly team offsite", "our new pricing plans", "a delayed product launch", "the holiday office "
    "closure", "a webinar on cloud security", "welcoming a new sales director", "the annual customer survey",
    "a server maintenance window on Sunday", "a reminder about expense reports", "our office move to Berlin",
    "the launch of our mobile app", "a price increase for annual plans",
]  # fmt: skip
EMAIL_TEMPLATES = [
    "Write a subject line for an email about {topic}.",
    "Suggest five catchy email subject lines announcing {topic}.",
    "I need a short, punchy subject line for my email on {topic}.",
    "Give me an email subject for a message to customers about {topic}.",
    "Subject line ideas for an internal email regarding {topic}?",
]
EMAIL_UNSEEN = ["What should I put in the subject field of my email about {topic}?"]

SQL_QUESTIONS = [
    "which five customers spent the most last year", "how many orders we got each month in 2025",
    "which employees earn more than their manager", "which products were never ordered",
    "the average salary per department", "the second highest salary", "which users signed up in the last "
    "7 days", "the running total of sales by day", "how many invoices are unpaid per status",
    "which customers ordered in January but not in February",
    "the top 3 products by revenue in each category",
]  # fmt: skip
SQL_TEMPLATES = [
    "Write a SQL query for this question: {q}?",
    "Turn this question into SQL (tables: orders, customers, products, employees): {q}",
    "I need a PostgreSQL query that tells me {q}.",
    "SQL please: {q}?",
    "What SELECT statement answers '{q}' on our sales database?",
    "Text to SQL: {q}",
]
SQL_UNSEEN = ["Our analyst asks {q}. Can you give me the query for MySQL?"]

DIGEST_PHRASINGS = [
    "Summarise my unread emails into a short bullet list.",
    "Give me a digest of today's unread inbox.",
    "What's important in my unread mail? Bullet points please.",
    "Make a quick summary of the new emails in my inbox.",
    "Anything urgent in my inbox? Summarise the unread messages.",
]
DIGEST_UNSEEN = ["Summarize my unread emails in a few bullets."]
COMMIT_PHRASINGS = [
    "Write a commit message for the staged changes.",
    "Suggest a concise git commit message for my current diff.",
    "Commit message for what I just changed, conventional commits style.",
]
COMMIT_UNSEEN = ["Write a git commit message for the staged diff."]

UNRELATED = [
    "What is the capital of Australia?",
    "Tell me a joke about penguins.",
    "Explain how vaccines train the immune system.",
    "Recommend a good science fiction novel.",
    "Why is the sky blue?",
    "Write a haiku about autumn rain.",
    "What are the rules of chess castling?",
    "Give me a recipe for banana bread.",
    "Who painted the Mona Lisa?",
    "How do black holes form?",
    "Suggest a name for my golden retriever puppy.",
    "What's a good stretching routine for lower back pain?",
    "Translate 'good morning' into Japanese.",
    "Explain the difference between a list and a tuple in Python.",
    "What should I pack for a weekend in Lisbon?",
    "Write a limerick about a sleepy cat.",
    "How does compound interest work?",
    "Who won the football World Cup in 2014?",
    "Give me three tips for a job interview.",
    "What is photosynthesis?",
    "Plan a 30-minute beginner running workout.",
    "How do I keep basil alive indoors?",
    "Describe the plot of Hamlet in three sentences.",
    "What's the difference between weather and climate?",
    "Help me write a birthday toast for my sister.",
    "Is coffee bad for sleep?",
    "Explain recursion to a ten-year-old.",
    "What are some fun things to do in Kyoto?",
    "How many planets are in the solar system?",
    "Write a short motivational quote for Monday.",
]


def _fill(templates: list[str], rng: random.Random) -> str:
    """One of ``templates`` with every placeholder a task's templates use filled in."""
    source, target = rng.choice(UNITS)
    return rng.choice(templates).format(
        d=_date(rng),
        ticket=rng.choice(TICKETS),
        topic=rng.choice(EMAIL_TOPICS),
        m=rng.choice(MEETINGS),
        n=rng.choice([1, 2, 3, 5, 7, 10, 12, 25, 40, 100, 3.5, 0.75]),
        a=source,
        b=target,
        q=rng.choice(SQL_QUESTIONS),
    )


# task -> (train requests, held-out requests, phrasings of train, phrasings only held out)
VARIED: dict[str, tuple[int, int, list[str], list[str]]] = {
    "date_normalisation": (70, 15, DATE_TEMPLATES, DATE_UNSEEN),
    "ticket_triage": (60, 15, TRIAGE_TEMPLATES, TRIAGE_UNSEEN),
    "meeting_extraction": (60, 15, MEETING_TEMPLATES, MEETING_UNSEEN),
    "unit_conversion": (45, 15, UNIT_TEMPLATES, UNIT_UNSEEN),
    "email_subject": (40, 15, EMAIL_TEMPLATES, EMAIL_UNSEEN),
    "sql_from_question": (50, 15, SQL_TEMPLATES, SQL_UNSEEN),
}
# task -> (train requests, held-out requests, the phrasings repeated verbatim, phrasings only held out)
REPEATED: dict[str, tuple[int, int, list[str], list[str]]] = {
    "inbox_digest": (60, 12, DIGEST_PHRASINGS, DIGEST_UNSEEN),
    "commit_message": (24, 10, COMMIT_PHRASINGS, COMMIT_UNSEEN),
}
TASKS = (*VARIED, *REPEATED)
UNSEEN_SHARE = 0.2  # of a task's held-out requests, those in a phrasing the train part never shows


def _varied(task: str, rng: random.Random) -> tuple[list[str], list[str]]:
    train_count, heldout_count, templates, unseen = VARIED[task]
    train: list[str] = []
    while len(train) < train_count:
        request = _fill(templates, rng)
        if request not in train:
            train.append(request)
    heldout: list[str] = []
    while len(heldout) < heldout_count:
        new_phrasing = len(heldout) < round(UNSEEN_SHARE * heldout_count)
        request = _fill(unseen if new_phrasing else templates, rng)
        if request not in train and request not in heldout:
            heldout.append(request)
    return train, heldout


def _repeated(task: str, rng: random.Random) -> tuple[list[str], list[str]]:
    train_count, heldout_count, phrasings, unseen = REPEATED[task]
    train = [phrasings[index % len(phrasings)] for index in range(train_count)]
    heldout = [unseen[0]] + [rng.choice(phrasings) for _ in range(heldout_count - 1)]
    return train, heldout


def _record(request: str, task: str | None, split: str) -> dict:
    answer = "..." if task is None else f"({task} answer)"
    messages = [{"role": "user", "content": request}, {"role": "assistant", "content": answer}]
    return {"messages": messages, "task": task, "split": split}


def records(seed: int = SEED) -> list[dict]:
    """Train records of all tasks interleaved in a seeded order, then held-out ones, then unrelated ones."""
    rng = random.Random(seed)
    train, heldout = [], []
    for task in TASKS:
        make: Callable = _varied if task in VARIED else _repeated
        task_train, task_heldout = make(task, rng)
        train += [_record(request, task, "train") for request in task_train]
        heldout += [_record(request, task, "heldout") for request in task_heldout]
    rng.shuffle(train)
    rng.shuffle(heldout)
    return train + heldout + [_record(request, None, "unrelated") for request in UNRELATED]


def shipped_records() -> list[dict]:
    """The records of the shipped file, in file order."""
    return [json.loads(line) for line in EVAL_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    lines = [json.dumps(record, ensure_ascii=False) for record in records()]
    EVAL_PATH.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} records to {EVAL_PATH}")


if __name__ == "__main__":
    main()
