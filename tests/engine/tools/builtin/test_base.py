"""Arguments are checked against each tool's schema before it runs, and the bad one is named."""

from __future__ import annotations

import pytest
from tool_sandbox import NO_GRANTS

from engine.errors import ToolError
from engine.tools.builtin.calculator import CalculatorTool
from engine.tools.builtin.units import UnitConvertTool


def test_arguments_are_checked_against_the_schema_and_the_bad_one_is_named():
    with pytest.raises(ToolError, match="'value'"):
        UnitConvertTool().run({"value": "five", "from_unit": "km", "to_unit": "mi"}, NO_GRANTS)
    with pytest.raises(ToolError, match="'to_unit' is a required property"):
        UnitConvertTool().run({"value": 5, "from_unit": "km"}, NO_GRANTS)
    with pytest.raises(ToolError, match="'confirm' was unexpected"):
        CalculatorTool().run({"expression": "1", "confirm": True}, NO_GRANTS)
