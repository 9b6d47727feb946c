"""Standing consent: when a request may go to the cloud with no person at the keyboard (S6, S5).

The gateway answers agents while the user is away, so it cannot ask "send this?" each time. A request
goes out only under a consent the user gave beforehand: "always for this task type" (cloud.json), or
teacher mode (consent.json), switched on for a client, or all clients, until a time and/or for a
number of calls, to collect teacher answers for tuning. Local-only and a ``never_cloud`` pin win over
both. The user may instead choose "ask me": the request then waits, as a pending escalation, for the
review in the app.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, StrictInt, StrictStr

from engine import paths
from engine.config import ConfigModel, edit_config, load_config
from engine.errors import EscalationError, UnderstudyError
from engine.store import Store

ALL_CLIENTS = "*"
DEFAULT_ASK_TIMEOUT_S = 120.0


class TeacherMode(ConfigModel):
    """Teacher mode for one client (or ``*``): on until ``until_utc`` and/or while calls are left."""

    error_type: ClassVar[type[UnderstudyError]] = EscalationError

    until_utc: StrictStr | None = None  # ISO 8601, UTC
    calls_left: Annotated[StrictInt, Field(ge=0)] | None = None

    def active(self, now: datetime) -> bool:
        if self.calls_left is not None and self.calls_left <= 0:
            return False
        return self.until_utc is None or datetime.fromisoformat(self.until_utc) > now


class ConsentConfig(ConfigModel):
    """consent.json: teacher mode per client name, and whether an unconsented request waits for review."""

    error_type: ClassVar[type[UnderstudyError]] = EscalationError
    advice: ClassVar[str] = "fix it or delete it (teacher mode is then off)"
    entry_words: ClassVar[dict[str, str]] = {"teacher": "client"}

    teacher: dict[str, TeacherMode] = Field(default_factory=dict)
    ask_me: bool = False
    ask_timeout_s: Annotated[float, Field(gt=0)] = DEFAULT_ASK_TIMEOUT_S

    def teacher_for(self, client: str, now: datetime) -> tuple[str, TeacherMode] | None:
        """The client's own teacher mode when active, else the all-clients one when active."""
        for name in (client, ALL_CLIENTS):
            mode = self.teacher.get(name)
            if mode is not None and mode.active(now):
                return name, mode
        return None


def consent_config_path() -> Path:
    return paths.data_dir() / "consent.json"


def load_consent_config() -> ConsentConfig:
    return load_config(consent_config_path(), ConsentConfig)


@contextlib.contextmanager
def edit_consent_config() -> Iterator[ConsentConfig]:
    with edit_config(consent_config_path(), ConsentConfig) as config:
        yield config


def _now() -> datetime:
    return datetime.now(UTC)


def teacher_on(
    client: str = ALL_CLIENTS, calls: int | None = None, hours: float | None = None
) -> TeacherMode:
    """Switch teacher mode on for ``client``; without a limit it stays on until switched off."""
    if calls is not None and calls < 1:
        raise EscalationError("--calls must be at least 1")
    if hours is not None and hours <= 0:
        raise EscalationError("--hours must be more than 0")
    until = (_now() + timedelta(hours=hours)).isoformat() if hours is not None else None
    mode = TeacherMode(until_utc=until, calls_left=calls)
    with edit_consent_config() as config:
        config.teacher[client or ALL_CLIENTS] = mode
    return mode


def teacher_off(client: str | None = None) -> None:
    """Switch teacher mode off for ``client``, or for every client when None."""
    with edit_consent_config() as config:
        if client is None:
            config.teacher.clear()
        else:
            config.teacher.pop(client, None)


def teacher_status() -> dict[str, TeacherMode]:
    """The teacher modes still active, by client name (``*``: all clients)."""
    now = _now()
    return {name: mode for name, mode in load_consent_config().teacher.items() if mode.active(now)}


def set_ask_me(on: bool, timeout_s: float | None = None) -> None:
    with edit_consent_config() as config:
        config.ask_me = on
        if timeout_s is not None:
            config.ask_timeout_s = timeout_s


def take_teacher_call(client: str) -> bool:
    """Use one of the client's teacher calls, under the file's lock so two requests can't share the
    last one; False when teacher mode is no longer on for it."""
    with edit_consent_config() as config:
        found = config.teacher_for(client, _now())
        if found is None:
            return False
        name, mode = found
        if mode.calls_left is not None:
            config.teacher[name] = mode.with_changes(calls_left=mode.calls_left - 1)
        return True


@dataclass(frozen=True)
class Consent:
    """Whether a request may go to the cloud now, and why (the words go in x-understudy-route).

    ``ask``: not allowed yet, but the user wants to review it (a pending escalation, waited for).
    ``teacher``: allowed by teacher mode, which spends a call when it is sent.
    """

    allowed: bool
    why: str
    ask: bool = False
    teacher: bool = False


def task_type(task_id: int | None) -> str:
    """The escalation task type an "always" consent names: ``task <id>``, or ``general``."""
    from engine.escalation import DEFAULT_TASK_TYPE

    return DEFAULT_TASK_TYPE if task_id is None else f"task {task_id}"


def cloud_consent(store: Store, task_id: int | None, client: str) -> Consent:
    """Whether a request of ``task_id`` from ``client`` may go to the cloud without asking anyone.

    In order: local-only wins over everything, then a ``never_cloud`` pin, then a provider must be set
    up; then "always for this task type", then teacher mode, then "ask me"; else no.
    """
    from engine.escalation import load_cloud_config

    cloud = load_cloud_config()
    if cloud.local_only:
        return Consent(False, "local-only is on")
    if task_id is not None:
        rows = list(store.db.query("SELECT pin FROM tasks WHERE id = ?", [task_id]))
        if rows and rows[0]["pin"] == "never_cloud":
            return Consent(False, f"task {task_id} is pinned never_cloud")
    if cloud.active is None or cloud.active not in cloud.providers:
        return Consent(False, "no cloud provider is set up")
    if cloud.is_always_allowed(cloud.active, task_type(task_id)):
        return Consent(True, f"always for {task_type(task_id)}")
    consent = load_consent_config()
    found = consent.teacher_for(client, _now())
    if found is not None:
        who = "all clients" if found[0] == ALL_CLIENTS else found[0]
        return Consent(True, f"teacher mode for {who}", teacher=True)
    if consent.ask_me:
        return Consent(False, "waiting for your review", ask=True)
    return Consent(False, "cloud not consented")
