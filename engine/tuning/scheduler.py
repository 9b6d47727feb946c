"""When a queued tuning job may run: inside the nightly window, with the machine idle and on AC power,
and never beside another job.

The rules are one pure function, ``should_start``, fed the time and the machine's readings, so tests
inject them; ``PsutilMachine`` reads the real ones. Nothing here runs on its own: ``understudy tune
run-due`` queues the tasks that are due (``engine.tuning.planner``), asks these rules and runs the
oldest queued job when they allow it. Wire it to a timer
(cron ``*/15 * * * * understudy tune run-due``, a systemd user timer, Task Scheduler, launchd) or let
the desktop app call it while it is open.

Schedule settings live in ``<data dir>/tuning.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Protocol

from pydantic import AfterValidator, ConfigDict, Field

from engine import paths
from engine.config import ConfigModel, load_config, save_config, update_config
from engine.errors import TuningError, UnderstudyError

SETTINGS_FILE = "tuning.json"


def _parse_clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _checked_clock(text: str) -> str:
    try:
        _parse_clock(text)
    except ValueError:
        raise ValueError(f"must be a time of day as HH:MM, got {text!r}") from None
    return text


Clock = Annotated[str, AfterValidator(_checked_clock)]


class ScheduleSettings(ConfigModel):
    """The nightly window (local "HH:MM"; a window may cross midnight; equal ends mean all day) and the
    conditions a job waits for."""

    model_config = ConfigDict(frozen=True)
    error_type: ClassVar[type[UnderstudyError]] = TuningError
    advice: ClassVar[str] = "fix it or delete it for the defaults"
    field_word: ClassVar[str] = "setting"

    window_start: Clock = "01:00"
    window_end: Clock = "06:00"
    require_idle: bool = True
    require_ac_power: bool = True
    # Idle: the one-minute load average per CPU core is below this.
    idle_load_per_core: Annotated[float, Field(gt=0, le=64)] = 0.3

    def start_time(self) -> time:
        return _parse_clock(self.window_start)

    def end_time(self) -> time:
        return _parse_clock(self.window_end)


@dataclass(frozen=True)
class PowerReading:
    """On AC power (True), on battery (False) or unknown (None)."""

    on_ac: bool | None
    battery_percent: float | None = None


@dataclass(frozen=True)
class IdleReading:
    load_per_core: float


class Machine(Protocol):
    def power(self) -> PowerReading: ...

    def idle(self) -> IdleReading: ...


class PsutilMachine:
    """The real readings: battery state and the one-minute load average, through psutil."""

    def power(self) -> PowerReading:
        import psutil

        battery = psutil.sensors_battery()
        if battery is None:  # no battery: a desktop, always on mains
            return PowerReading(on_ac=True)
        return PowerReading(on_ac=battery.power_plugged, battery_percent=battery.percent)

    def idle(self) -> IdleReading:
        import psutil

        one_minute = psutil.getloadavg()[0]
        return IdleReading(load_per_core=one_minute / (psutil.cpu_count() or 1))


def in_window(now: datetime, settings: ScheduleSettings) -> bool:
    start, end, clock = settings.start_time(), settings.end_time(), now.time().replace(tzinfo=None)
    if start == end:
        return True
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # the window crosses midnight


def next_window_start(now: datetime, settings: ScheduleSettings) -> datetime:
    """When the window next opens (``now`` when it is open already)."""
    if in_window(now, settings):
        return now
    opening = now.replace(
        hour=settings.start_time().hour, minute=settings.start_time().minute, second=0, microsecond=0
    )
    return opening if opening > now else opening + timedelta(days=1)


def window_seconds_left(now: datetime, settings: ScheduleSettings) -> float:
    """How long the window stays open from ``now``; its whole length when it is closed (a run that
    ignores the window gets as long as a night would give it)."""
    start = now.replace(
        hour=settings.start_time().hour, minute=settings.start_time().minute, second=0, microsecond=0
    )
    end = now.replace(
        hour=settings.end_time().hour, minute=settings.end_time().minute, second=0, microsecond=0
    )
    if settings.start_time() == settings.end_time():
        return timedelta(days=1).total_seconds()
    if not in_window(now, settings):
        return (end - start).total_seconds() % timedelta(days=1).total_seconds()
    return (end - now).total_seconds() % timedelta(days=1).total_seconds()


def should_start(
    now: datetime,
    power: PowerReading,
    idle: IdleReading,
    running_jobs: int,
    settings: ScheduleSettings,
) -> tuple[bool, str]:
    """Whether a queued job may start now, and why (or why not), in words for the user."""
    if running_jobs:
        return False, "another tuning job is running; one runs at a time"
    if not in_window(now, settings):
        return False, (
            f"outside the tuning window {settings.window_start}-{settings.window_end} "
            f"(it is {now:%H:%M}); next window opens {next_window_start(now, settings):%Y-%m-%d %H:%M}"
        )
    if settings.require_ac_power and power.on_ac is not True:
        state = "on battery" if power.on_ac is False else "on an unknown power source"
        return False, f"the machine is {state}; tuning waits for AC power"
    if settings.require_idle and idle.load_per_core >= settings.idle_load_per_core:
        return False, (
            f"the machine is busy (load {idle.load_per_core:.2f} per core over the last minute, "
            f"idle below {settings.idle_load_per_core:.2f})"
        )
    return True, f"in the window {settings.window_start}-{settings.window_end}, idle and on AC power"


# Settings file -----------------------------------------------------------------------------------


def settings_path() -> Path:
    return paths.data_dir() / SETTINGS_FILE


def load_schedule(path: Path | None = None) -> ScheduleSettings:
    return load_config(path or settings_path(), ScheduleSettings)


def save_schedule(settings: ScheduleSettings, path: Path | None = None) -> None:
    """Written atomically: a crash leaves the old file or the new one."""
    save_config(path or settings_path(), settings)


def update_schedule(**changes) -> ScheduleSettings:
    """Change the saved schedule under the file's lock (a damaged file gives way to the defaults)."""
    return update_config(settings_path(), ScheduleSettings, **changes)
