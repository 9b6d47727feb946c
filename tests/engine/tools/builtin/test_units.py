"""Unit conversion across kinds of quantity, and refusals of unknown or incompatible units."""

from __future__ import annotations

import pytest
from tool_sandbox import NO_GRANTS

from engine.errors import ToolError
from engine.tools.builtin.units import UnitConvertTool


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "expected"),
    [
        (5, "km", "mi", 3.106855961),
        (3, "feet", "inches", 36),
        (1, "lb", "g", 453.59237),
        (100, "C", "F", 212),
        (0, "K", "celsius", -273.15),
        (1, "gallon", "litres", 3.785411784),
        (100, "km/h", "mph", 62.13711922),
        (2, "GiB", "MB", 2147.483648),
        (100, "Mb", "MB", 12.5),
    ],
)
def test_unit_convert(value, from_unit, to_unit, expected):
    result = UnitConvertTool().run({"value": value, "from_unit": from_unit, "to_unit": to_unit}, NO_GRANTS)
    assert result.data["value"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("from_unit", "to_unit", "message"),
    [("kg", "m", "mass.*length"), ("C", "km", "temperature"), ("parsec", "m", "unknown unit 'parsec'")],
)
def test_unit_convert_refuses_incompatible_or_unknown_units(from_unit, to_unit, message):
    with pytest.raises(ToolError, match=message):
        UnitConvertTool().run({"value": 1, "from_unit": from_unit, "to_unit": to_unit}, NO_GRANTS)
