"""The date and time tool: the time in a zone, conversions, and what it explains it cannot do."""

from __future__ import annotations

import pytest
from tool_sandbox import NO_GRANTS

from engine.errors import ToolError
from engine.tools.builtin.date_time import DateTimeTool


def test_datetime_gives_the_current_time_in_a_zone():
    result = DateTimeTool().run({"timezone": "Asia/Tokyo"}, NO_GRANTS)
    assert result.data["timezone"] == "Asia/Tokyo"
    assert result.data["utc_offset"] == "UTC+09:00"
    assert "JST" in result.text


def test_datetime_converts_between_zones():
    arguments = {
        "datetime": "2025-03-01T09:30",
        "from_timezone": "Europe/London",
        "timezone": "America/New_York",
    }
    result = DateTimeTool().run(arguments, NO_GRANTS)
    assert result.data["iso"] == "2025-03-01T04:30:00-05:00"
    assert result.data["weekday"] == "Saturday"
    offset = DateTimeTool().run({"datetime": "2025-07-01T12:00Z", "timezone": "Asia/Kolkata"}, NO_GRANTS)
    assert offset.data["iso"] == "2025-07-01T17:30:00+05:30"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "unknown time zone"),
        ({"datetime": "2025-03-01T09:30"}, "from_timezone"),
        ({"datetime": "yesterday", "from_timezone": "UTC"}, "ISO 8601"),
        ({"from_timezone": "UTC"}, "only applies"),
    ],
)
def test_datetime_explains_what_it_cannot_do(arguments, message):
    with pytest.raises(ToolError, match=message):
        DateTimeTool().run(arguments, NO_GRANTS)
