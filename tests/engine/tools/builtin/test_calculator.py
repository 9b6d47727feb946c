"""The calculator on what people type, and on a corpus of code and huge numbers it must refuse."""

from __future__ import annotations

import pytest
from tool_sandbox import NO_GRANTS

from engine.errors import ToolError
from engine.tools.builtin.calculator import CalculatorTool


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("23.5% of 1,840", 432.4),
        ("(3 + 4) * 2", 14),
        ("2^10", 1024),
        ("7 // 2 + 7 % 2", 4),
        ("-(2 ** 3)", -8),
        ("sqrt(16) + abs(-2)", 6),
        ("round(2.567, 2)", 2.57),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("200 * 15%", 30),
        ("1,234,567.5 / 2", 617283.75),
        ("log(e) + exp(0) + cos(0) + sin(0) + tan(0)", 3),
        ("round(pi, 4)", 3.1416),
    ],
)
def test_the_calculator_evaluates_arithmetic(expression, value):
    result = CalculatorTool().run({"expression": expression}, NO_GRANTS)
    assert result.data["value"] == pytest.approx(value)
    assert result.text.endswith(f"= {result.data['value']:.12g}")


def test_percent_of_a_number_with_a_thousands_separator_reads_as_people_mean_it():
    result = CalculatorTool().run({"expression": "23.5% of 1,840"}, NO_GRANTS)
    assert result.data["value"] == 432.4
    assert result.text == "23.5% of 1,840 = 432.4"


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('touch pwned')",
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "open('/etc/passwd')",
        "eval('1')",
        "lambda: 1",
        "[1, 2]",
        "'a' * 3",
        "x",
        "True + 1",
        "1 if 1 else 2",
        "9**9**9",
        "10**10000 * 10**10000",
        "2 ** 100000",
        "round(5, -10**6)",
        "1" * 5000,
        "1 + " * 2000 + "1",
        "(" * 200 + "1" + ")" * 200,
        "1 / 0",
        "sqrt(-1)",
        "1e308 * 10",
        "(-8) ** 0.5",
        "max(1,840)",
        "",
    ],
)
def test_the_calculator_refuses_everything_but_arithmetic(expression):
    with pytest.raises(ToolError):
        CalculatorTool().run({"expression": expression}, NO_GRANTS)
