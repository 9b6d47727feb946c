"""The date and time tool: the current time in any zone, and conversions between zones.

Small models do not know the date and get time-zone arithmetic wrong; the standard library does not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine.errors import ToolError
from engine.tools import Risk, ToolContext, ToolResult
from engine.tools.builtin.base import BuiltinTool, object_schema


def _zone(name: str):
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown time zone '{name}'; use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None


def _utc_offset(moment: datetime) -> str:
    minutes = round((moment.utcoffset() or timedelta(0)).total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class DateTimeTool(BuiltinTool):
    name = "datetime"
    examples = (
        "what's the date today?",
        "what time is it in Paris right now",
        "current time in New York",
        "convert 9am London time to Sydney time",
        "is it Monday or Tuesday today?",
        "what time is it?",
    )
    description = (
        "The current date and time in a time zone, or convert an ISO 8601 date-time from one time zone to "
        "another. Time zones are IANA names such as 'Europe/London' or 'America/New_York'."
    )
    parameters = object_schema(
        {
            "timezone": {
                "type": "string",
                "description": "zone to show the time in; the computer's own zone when omitted",
            },
            "datetime": {
                "type": "string",
                "description": "an ISO 8601 date-time to convert, e.g. '2025-03-01T09:30'; now when omitted",
            },
            "from_timezone": {
                "type": "string",
                "description": "the zone 'datetime' is in, when it has no UTC offset of its own",
            },
        }
    )
    risk: Risk = "read"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        target = _zone(arguments["timezone"]) if "timezone" in arguments else None
        if "datetime" in arguments:
            moment = self._parse(arguments["datetime"], arguments.get("from_timezone"))
        elif "from_timezone" in arguments:
            raise ToolError("'from_timezone' only applies with 'datetime'; give the date-time to convert")
        else:
            moment = datetime.now().astimezone()
        shown = moment.astimezone(target)
        zone_name = arguments.get("timezone") or shown.tzname() or "local time"
        offset = _utc_offset(shown)
        text = f"{shown:%A %d %B %Y, %H:%M:%S} {shown.tzname()} ({zone_name}, {offset})"
        return ToolResult(
            text,
            {"iso": shown.isoformat(), "timezone": zone_name, "utc_offset": offset, "weekday": f"{shown:%A}"},
        )

    @staticmethod
    def _parse(text: str, zone_name: str | None) -> datetime:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ToolError(
                f"'{text}' is not an ISO 8601 date-time; write it like '2025-03-01T09:30'"
            ) from None
        if moment.tzinfo is not None:
            if zone_name is not None:
                raise ToolError(f"'{text}' already has a UTC offset; leave out 'from_timezone' or the offset")
            return moment
        if zone_name is None:
            raise ToolError(f"'{text}' has no UTC offset: say which zone it is in with 'from_timezone'")
        return moment.replace(tzinfo=_zone(zone_name))
