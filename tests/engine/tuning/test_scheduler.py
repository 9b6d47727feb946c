"""The nightly scheduler's rules, fed an injected clock and machine readings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import pytest

from engine.errors import TuningError
from engine.tuning.scheduler import (
    IdleReading,
    PowerReading,
    PsutilMachine,
    ScheduleSettings,
    in_window,
    load_schedule,
    next_window_start,
    save_schedule,
    settings_path,
    should_start,
)

DEFAULT = ScheduleSettings()
ON_AC = PowerReading(on_ac=True)
IDLE = IdleReading(load_per_core=0.05)


@dataclass
class FixedMachine:
    """Readings a test chooses: a laptop on battery, a busy desktop, ..."""

    power_reading: PowerReading
    idle_reading: IdleReading

    def power(self) -> PowerReading:
        return self.power_reading

    def idle(self) -> IdleReading:
        return self.idle_reading


def at(clock: str, day: int = 10) -> datetime:
    hours, minutes = map(int, clock.split(":"))
    return datetime(2026, 11, day, hours, minutes).astimezone()


@pytest.mark.parametrize(
    ("clock", "inside"),
    [("00:59", False), ("01:00", True), ("03:30", True), ("05:59", True), ("06:00", False), ("14:00", False)],
)
def test_the_default_window_is_one_to_six_at_night(clock, inside):
    assert in_window(at(clock), DEFAULT) is inside


@pytest.mark.parametrize(
    ("clock", "inside"),
    [("21:59", False), ("22:00", True), ("23:59", True), ("00:00", True), ("01:59", True), ("02:00", False)],
)
def test_a_window_may_cross_midnight(clock, inside):
    assert in_window(at(clock), ScheduleSettings(window_start="22:00", window_end="02:00")) is inside


def test_equal_ends_mean_any_time():
    settings = ScheduleSettings(window_start="00:00", window_end="00:00")
    assert all(in_window(at(clock), settings) for clock in ("00:00", "09:15", "23:59"))


def test_the_next_window_is_tonight_or_tomorrow_night():
    assert next_window_start(at("00:30"), DEFAULT) == at("01:00")
    assert next_window_start(at("07:00"), DEFAULT) == at("01:00", day=11)
    assert next_window_start(at("02:00"), DEFAULT) == at("02:00")


def test_a_job_starts_in_the_window_when_idle_on_ac_and_alone():
    allowed, reason = should_start(at("02:00"), ON_AC, IDLE, running_jobs=0, settings=DEFAULT)
    assert allowed, reason


@pytest.mark.parametrize(
    ("now", "power", "idle", "running", "why"),
    [
        (at("12:00"), ON_AC, IDLE, 0, "outside the tuning window 01:00-06:00"),
        (at("02:00"), PowerReading(on_ac=False, battery_percent=80), IDLE, 0, "on battery"),
        (at("02:00"), PowerReading(on_ac=None), IDLE, 0, "unknown power source"),
        (at("02:00"), ON_AC, IdleReading(load_per_core=0.9), 0, "busy"),
        (at("02:00"), ON_AC, IDLE, 1, "another tuning job is running"),
    ],
)
def test_a_job_waits_outside_the_window_on_battery_busy_or_beside_another(now, power, idle, running, why):
    allowed, reason = should_start(now, power, idle, running_jobs=running, settings=DEFAULT)
    assert not allowed
    assert why in reason


def test_the_conditions_can_be_switched_off():
    laptop = FixedMachine(PowerReading(on_ac=False), IdleReading(load_per_core=2.0))
    relaxed = DEFAULT.with_changes(require_idle=False, require_ac_power=False)
    assert should_start(at("03:00"), laptop.power(), laptop.idle(), 0, relaxed)[0]
    assert not should_start(at("03:00"), laptop.power(), laptop.idle(), 0, DEFAULT)[0]


def test_the_real_machine_gives_readings():
    machine = PsutilMachine()
    assert machine.power().on_ac in (True, False, None)
    assert machine.idle().load_per_core >= 0


def test_schedule_settings_are_saved_and_loaded(understudy_home):
    assert load_schedule() == DEFAULT
    changed = DEFAULT.with_changes(window_start="23:30", window_end="04:00", idle_load_per_core=0.5)
    save_schedule(changed)
    assert load_schedule() == changed
    assert json.loads(settings_path().read_text())["window_start"] == "23:30"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"window_start": "25:00"}, "window_start"),
        ({"window_end": "six"}, "window_end"),
        ({"require_idle": "yes"}, "require_idle"),
        ({"idle_load_per_core": -1}, "idle_load_per_core"),
        ({"nightly": True}, "unknown setting"),
    ],
)
def test_a_bad_schedule_file_names_the_setting(understudy_home, raw, message):
    settings_path().write_text(json.dumps(raw))
    with pytest.raises(TuningError, match=message):
        load_schedule()
