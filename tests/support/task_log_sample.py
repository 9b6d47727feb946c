"""Writes resources/task_log_sample.jsonl: a synthetic log of requests from seven known tasks.

Each line is an OpenAI chat-format record (``{"messages": [...]}``, some with a system message) plus a
``"task"`` label, so discovery's clusters can be scored for purity. Templates and fillers vary the
wording a lot on purpose: a task is recognised by what is asked, not by one fixed phrasing.

Run ``.venv/bin/python tests/task_log_sample.py`` to regenerate it (seeded: the same file each time).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SAMPLE_PATH = Path(__file__).resolve().parents[2] / "resources" / "task_log_sample.jsonl"
PER_TASK = 50
SEED = 7

UNITS = [
    ("miles", "kilometers"), ("kilometers", "miles"), ("pounds", "kilograms"), ("kilograms", "pounds"),
    ("feet", "meters"), ("inches", "centimeters"), ("gallons", "liters"), ("ounces", "grams"),
    ("cups", "milliliters"), ("yards", "meters"), ("degrees Fahrenheit", "degrees Celsius"),
    ("degrees Celsius", "degrees Fahrenheit"), ("acres", "hectares"), ("knots", "km/h"),
]  # fmt: skip
UNIT_TEMPLATES = [
    "Convert {n} {a} to {b}.",
    "How many {b} is {n} {a}?",
    "What is {n} {a} in {b}?",
    "{n} {a} to {b} please",
    "Can you convert {n} {a} into {b} for my recipe?",
    "I need {n} {a} expressed in {b}.",
    "Quick conversion: {n} {a} = ? {b}",
    "my car manual says {n} {a}, how much is that in {b}",
]

EMAIL_TOPICS = [
    "the quarterly team offsite",
    "our new pricing plans",
    "a delayed product launch",
    "the holiday office closure",
    "a webinar on cloud security",
    "welcoming a new sales director",
    "the annual customer survey",
    "a 20% spring discount",
    "a server maintenance window on Sunday",
    "the results of the hackathon",
    "a reminder about expense reports",
    "our office move to Berlin",
    "a job offer follow-up",
    "an overdue invoice reminder",
    "the launch of our mobile app",
]
EMAIL_TEMPLATES = [
    "Write a subject line for an email about {t}.",
    "Suggest five catchy email subject lines announcing {t}.",
    "I need a short, punchy subject line for my email on {t}.",
    "Give me an email subject for a message to customers about {t}.",
    "What would be a good subject line for a newsletter covering {t}?",
    "Subject line ideas for an internal email regarding {t}?",
    "Come up with an attention-grabbing email subject about {t}, under 8 words.",
]

SQL_ASKS = [
    "returns the top 5 customers by total order value",
    "counts orders per month in 2023",
    "finds employees earning more than their manager",
    "lists products that were never ordered",
    "deletes duplicate rows from the users table",
    "computes the average salary per department",
    "joins orders with customers and shows the customer name",
    "finds the second highest salary",
    "selects users who signed up in the last 7 days",
    "updates the price of all items in category 3",
    "shows the running total of sales by day",
    "groups invoices by status and sums the amounts",
]
SQL_TEMPLATES = [
    "Write a SQL query that {a}.",
    "How do I write a query in PostgreSQL that {a}?",
    "SQL question: I need a SELECT statement that {a}.",
    "Can you help me with SQL? I want something that {a}, tables are orders, customers, products.",
    "In MySQL, what's the query that {a}?",
    "Give me an SQLite query which {a}.",
]

FRENCH_PHRASES = [
    "Where is the train station?", "I would like a coffee, please.", "The meeting is postponed until Monday.",
    "Thank you for your help yesterday.", "How much does this cost?", "My flight was cancelled.",
    "We are looking forward to your visit.", "Please close the door behind you.",
    "The weather is beautiful today.", "Can I pay by credit card?", "I have lost my keys.",
    "Happy birthday, my friend!", "The report is due on Friday.", "Do you speak English?",
]  # fmt: skip
FRENCH_TEMPLATES = [
    "Translate to French: {p}",
    "How do you say '{p}' in French?",
    "Please translate this sentence into French: {p}",
    'French translation of "{p}"?',
    "Can you put this in French for me? {p}",
    "What's the French for: {p}",
]

SUMMARY_TEXTS = [
    "The city council met on Tuesday to discuss the new bike lanes. After a long debate, members voted "
    "seven to two to fund a pilot on three streets, with a review planned after six months.",
    "Our Q3 revenue rose 12% year over year, driven by strong demand in Europe, while costs grew only 4%. "
    "Management expects similar growth next quarter but warned about currency risks.",
    "Researchers found that people who walk at least 8,000 steps a day have a lower risk of heart disease. "
    "The study followed 20,000 adults for ten years and controlled for diet and smoking.",
    "The software update fixes a crash when opening large files, improves battery life on laptops and adds "
    "a dark mode. Users should restart the app after installing it.",
    "Due to heavy snowfall, all schools in the district will remain closed on Thursday and Friday. Parents "
    "will receive an email when classes resume, and online lessons are optional.",
    "The novel follows a young doctor who moves to a remote island, where she uncovers a decades-old secret "
    "about the lighthouse and slowly earns the trust of the islanders.",
    "Customer complaints about late deliveries doubled in March. The logistics team traced the delays to a "
    "new warehouse system and has rolled back two of its features.",
    "The museum will open a new wing dedicated to modern photography next spring. Entry will be free on "
    "the first Sunday of each month, and guided tours can be booked online.",
]
SUMMARY_TEMPLATES = [
    "Summarise this in one sentence: {x}",
    "Can you give me a short summary of the following text? {x}",
    "TL;DR please: {x}",
    "Summarize the key points of this paragraph in two bullet points:\n{x}",
    "Write a brief summary (max 20 words) of: {x}",
    "Condense this for a busy manager: {x}",
    "Please summarize:\n\n{x}",
    "What is the gist of this? {x}",
]

VENDORS = ["Acme Supplies", "Globex GmbH", "Initech Ltd", "Umbrella Corp", "Stark Office", "Wayne Print"]
INVOICE_TEMPLATES = [
    "Extract the invoice number, date, total and vendor as JSON from: Invoice #{n} from {v}, dated {d}, "
    "total due {c}.",
    "Return JSON with fields invoice_number, vendor, date, amount for this text: '{v} - INV-{n} - {d} - "
    "amount {c}'",
    "Parse this invoice line into JSON (number, supplier, issue date, total): {v} invoice {n} issued {d}, "
    "{c} incl. VAT",
    "Pull out invoice_id, vendor_name, invoice_date and total_amount as a JSON object: 'Bill no. {n} / "
    "{v} / {d} / {c}'",
    "From the following invoice, give me JSON with the vendor, the invoice number, the date and the total. "
    "INVOICE {n}, {v}, Date: {d}, Total: {c}",
]

HAIKU_THEMES = [
    "autumn leaves",
    "a rainy Monday morning",
    "the ocean at night",
    "my cat sleeping in the sun",
    "the first snow of winter",
    "a cup of green tea",
    "cherry blossoms",
    "a city at dawn",
    "an old mountain temple",
    "fireflies in July",
    "a train leaving the station",
    "the full moon",
]
HAIKU_TEMPLATES = [
    "Write a haiku about {t}.",
    "Compose a haiku on {t}.",
    "Give me a 5-7-5 haiku about {t}.",
    "Could you write me a short haiku inspired by {t}?",
    "haiku about {t} please",
    "I'd love a haiku capturing {t}.",
]

SYSTEM_PROMPTS = [None, None, None, "You are a helpful assistant.", "Answer briefly."]


def _request(task: str, rng: random.Random) -> tuple[str, str]:
    """One (request, answer) of ``task``."""
    if task == "unit_conversion":
        a, b = rng.choice(UNITS)
        n = rng.choice([1, 2, 3, 5, 7, 10, 12, 15, 25, 40, 72, 100, 250, 3.5, 0.75])
        return rng.choice(UNIT_TEMPLATES).format(n=n, a=a, b=b), f"{n} {a} is about ... {b}."
    if task == "email_subject":
        topic = rng.choice(EMAIL_TOPICS)
        return rng.choice(EMAIL_TEMPLATES).format(t=topic), f"Subject: News about {topic}"
    if task == "sql":
        return rng.choice(SQL_TEMPLATES).format(a=rng.choice(SQL_ASKS)), "SELECT ... FROM ...;"
    if task == "translate_french":
        return rng.choice(FRENCH_TEMPLATES).format(p=rng.choice(FRENCH_PHRASES)), "En français : ..."
    if task == "summarise":
        return rng.choice(SUMMARY_TEMPLATES).format(x=rng.choice(SUMMARY_TEXTS)), "In short: ..."
    if task == "invoice_json":
        request = rng.choice(INVOICE_TEMPLATES).format(
            n=rng.randint(1000, 99999),
            v=rng.choice(VENDORS),
            d=f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            c=f"{rng.choice(['$', 'EUR ', '£'])}{rng.randint(20, 9000)}.{rng.randint(0, 99):02d}",
        )
        return request, '{"invoice_number": "...", "vendor": "...", "date": "...", "total": "..."}'
    theme = rng.choice(HAIKU_THEMES)
    return rng.choice(HAIKU_TEMPLATES).format(t=theme), f"A haiku on {theme} ..."


TASKS = ("unit_conversion", "email_subject", "sql", "translate_french", "summarise", "invoice_json", "haiku")


def records(per_task: int = PER_TASK, seed: int = SEED) -> list[dict]:
    """The sample's records, tasks interleaved in a seeded random order."""
    rng = random.Random(seed)
    labelled = []
    for task in TASKS:
        seen: set[str] = set()
        while len(seen) < per_task:
            request, answer = _request(task, rng)
            if request in seen:
                continue
            seen.add(request)
            messages = []
            system = rng.choice(SYSTEM_PROMPTS)
            if system:
                messages.append({"role": "system", "content": system})
            messages += [{"role": "user", "content": request}, {"role": "assistant", "content": answer}]
            labelled.append({"messages": messages, "task": task})
    rng.shuffle(labelled)
    return labelled


def shipped_records() -> list[dict]:
    """The records of the shipped file, in file order."""
    return [json.loads(line) for line in SAMPLE_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def request_of(record: dict) -> str:
    return next(message["content"] for message in record["messages"] if message["role"] == "user")


def write_records(path: Path, chosen: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in chosen), encoding="utf-8"
    )
    return path


def true_tasks(store) -> dict[int, str]:
    """Turn id -> the task the sample says it belongs to, for every turn holding a sample request."""
    truth = {request_of(record): record["task"] for record in shipped_records()}
    return {
        row["id"]: truth[row["user_text"]]
        for row in store.db.query("SELECT id, user_text FROM turns")
        if row["user_text"] in truth
    }


def main() -> None:
    lines = [json.dumps(record, ensure_ascii=False) for record in records()]
    SAMPLE_PATH.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} records to {SAMPLE_PATH}")


if __name__ == "__main__":
    main()
