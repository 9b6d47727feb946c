"""A synthetic meeting-extraction task: e-mails with names, addresses, dates and phone numbers.

The gold answer copies its values from the e-mail, as a real extraction task does; scrubbing must keep
that true (the property that lets the task be learned) while no real name, address or number is left.
The dates and times are the shapes that were once taken for phone numbers or names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

# organizer, their e-mail address, the other attendees, date, time, a dial-in number or None
MEETINGS = [
    ("Maria Lopez", "maria.lopez@acme-corp.com", ["Tom Baker", "Priya Nair"], "03/02/2026", "12:15 pm", None),
    ("Tom Baker", "t.baker@example.co.uk", ["Sarah Connor"], "2026-06-09", "14:00", "+44 20 7946 0958"),
    ("Jürgen Schneider", "j.schneider@beispiel.de", ["Anna Kowalski", "Li Wei"], "Jun 9 2026", "9:30", None),
    ("Priya Nair", "priya.nair@example.in", ["Kenji Sato"], "March 3rd", "10:00 am", "(555) 123-4567"),
    (
        "Emily Watson",
        "emily.watson@example.com",
        ["James O'Brien", "Fatima Zahra"],
        "May 4",
        "Mon 9:30",
        None,
    ),
    (
        "Claire Dubois",
        "claire.dubois@exemple.fr",
        ["Pieter de Vries"],
        "12.03.2026",
        "16:45",
        "+33 6 12 34 56 78",
    ),
    (
        "Lucia Fernandez",
        "lucia.fernandez@correo.es",
        ["Carlos Ruiz", "Elena Garcia"],
        "Aug 9 2026",
        "5 pm",
        None,
    ),
    ("Oliver Smith", "oliver.smith@example.org", ["Hannah Lewis"], "2026-01-15", "08:30", "07911 123456"),
    ("Sophie Martin", "s.martin@example.net", ["Lucas Bernard", "Chloe Petit"], "June 22", "11:00", None),
    ("Daniel Becker", "daniel.becker@firma.de", ["Laura Fischer"], "02/11/2026", "13:00", "+49 30 1234567"),
    ("Aisha Khan", "aisha.khan@example.com", ["Omar Farouk", "Noah Williams"], "Dec 1 2026", "15:30", None),
    ("Lars Jensen", "lars.jensen@example.dk", ["Ingrid Olsen"], "2026-04-30", "9:00 am", None),
    ("Grace Hopper", "grace.hopper@navy.example", ["Alan Turing"], "Jan 5 2026", "10:15", "+1 415 555 0199"),
    ("Mateo Rossi", "mateo.rossi@esempio.it", ["Giulia Bianchi", "Luca Conti"], "9 June 2026", "17:00", None),
    ("Chen Jing", "chen.jing@example.cn", ["Wang Fang"], "Tue 14:30", "14:30", None),
    ("Isabel Moreno", "isabel.moreno@ejemplo.es", ["Javier Torres"], "April 12 2026", "12:00", "612 345 678"),
    (
        "Ethan Brown",
        "ethan.brown@example.com",
        ["Olivia Jones", "Liam Miller"],
        "11/20/2026",
        "3:45 pm",
        None,
    ),
    ("Eva Novak", "eva.novak@example.cz", ["Jan Novak"], "Jun 9", "10:30", None),
    (
        "Sven Lindqvist",
        "sven.lindqvist@example.se",
        ["Astrid Berg"],
        "2026-09-01",
        "09:00",
        "+46 8 123 456 78",
    ),
    (
        "Nadia Haddad",
        "nadia.haddad@example.com",
        ["Youssef Amrani", "Sara Cohen"],
        "Sept 12 2026",
        "16:00",
        None,
    ),
]


def meeting_messages(
    organizer: str, email: str, attendees: list[str], date: str, time: str, phone: str | None
) -> list[str]:
    """System prompt, the e-mail to extract from, and the gold JSON answer."""
    dial_in = f" Dial in on {phone} if you are remote." if phone else ""
    email_text = (
        "Extract the meeting as JSON with organizer, organizer_email, attendees, date and time.\n\n"
        f"From: {organizer} <{email}>\n"
        f"Hi {', '.join(attendees)},\nlet's sync on {date} at {time} about the roadmap.{dial_in}\n"
        f"Thanks,\n{organizer}"
    )
    answer: dict[str, Any] = {
        "organizer": organizer,
        "organizer_email": email,
        "attendees": [organizer, *attendees],
        "date": date,
        "time": time,
    }
    if phone:
        answer["phone"] = phone
    return ["You extract meetings from e-mails.", email_text, json.dumps(answer, ensure_ascii=False)]


def meeting_examples() -> list[list[str]]:
    return [meeting_messages(*meeting) for meeting in MEETINGS]


def personal_values(meeting: tuple) -> list[str]:
    """The real names, address and number of one meeting: none may survive scrubbing."""
    organizer, email, attendees, _date, _time, phone = meeting
    return [organizer, email, *attendees, *([phone] if phone else [])]


def answer_values(answer: Any) -> Iterator[str]:
    """Every string in a parsed JSON answer."""
    if isinstance(answer, dict):
        for value in answer.values():
            yield from answer_values(value)
    elif isinstance(answer, list):
        for value in answer:
            yield from answer_values(value)
    else:
        yield answer
