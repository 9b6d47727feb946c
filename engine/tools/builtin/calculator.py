"""The calculator: exact arithmetic so the model does not guess at sums.

Expressions are read as people type them ("15% of 1,840", "2^10") and evaluated by walking the syntax
tree, never by ``eval``, with limits that keep huge results from taking the machine down.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from engine.errors import ToolError
from engine.tools import Risk, ToolContext, ToolResult
from engine.tools.builtin.base import BuiltinTool, format_number, object_schema

CALCULATOR_MAX_CHARS = 300
CALCULATOR_MAX_EXPONENT = 10_000
CALCULATOR_MAX_BITS = 12_000  # about 3,600 decimal digits, within what Python will print
_BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "round": lambda value, digits=None: round(value, None if digits is None else _small_int(digits)),
    "abs": abs,
    "min": min,
    "max": max,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_ALLOWED = "numbers, + - * / // % **, parentheses, percentages and " + ", ".join([*_FUNCTIONS, *_CONSTANTS])
_GROUPED_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w.,])")
_PERCENT_OF = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*of\b\s*", re.IGNORECASE)
_BARE_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?=\s*(?:$|[),]))")


def _small_int(value: Any) -> int:
    if not isinstance(value, int) or abs(value) > 100:
        raise ToolError(f"round's digits must be a whole number between -100 and 100, not {value}")
    return value


def _calls_enclosing(expression: str) -> list[bool]:
    """For each character: whether the innermost parenthesis around it opens a function call."""
    stack: list[bool] = []
    inside_call: list[bool] = []
    for index, char in enumerate(expression):
        if char == "(":
            before = expression[:index].rstrip()
            stack.append(bool(before) and (before[-1].isalnum() or before[-1] == "_"))
        elif char == ")" and stack:
            stack.pop()
        inside_call.append(bool(stack) and stack[-1])
    return inside_call


def normalise_expression(expression: str) -> str:
    """Accept what people type: "23.5% of 1,840", "2^10", and the multiplication and division signs."""
    text = expression.strip().replace("\u00d7", "*").replace("\u00f7", "/").replace("^", "**")
    inside_call = _calls_enclosing(text)
    for match in reversed(list(_GROUPED_NUMBER.finditer(text))):
        if inside_call[match.start()]:
            raise ToolError(
                f"'{match.group()}' inside a function call is ambiguous: write "
                f"{match.group().replace(',', '')} without thousands separators, or separate the arguments "
                "with ', '"
            )
        text = text[: match.start()] + match.group().replace(",", "") + text[match.end() :]
    text = _PERCENT_OF.sub(r"\1/100*", text)
    return _BARE_PERCENT.sub(r"(\1/100)", text)


def evaluate_expression(expression: str) -> int | float:
    """Evaluate arithmetic by walking the syntax tree; nothing is ever passed to eval or exec."""
    if len(expression) > CALCULATOR_MAX_CHARS:
        raise ToolError(
            f"the expression is {len(expression):,} characters long; the calculator takes at most "
            f"{CALCULATOR_MAX_CHARS}. Split it into smaller steps"
        )
    normalised = normalise_expression(expression)
    try:
        tree = ast.parse(normalised, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise ToolError(
            f"'{expression}' is not an arithmetic expression the calculator can read ({error})"
        ) from None
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise ToolError(f"'{expression}' divides by zero") from None
    except OverflowError:
        raise ToolError(f"'{expression}' gives a number too large to compute") from None
    except (ValueError, TypeError) as error:
        raise ToolError(f"'{expression}' cannot be computed: {error}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError(f"'{expression}' does not give a finite number")
    return value


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATORS:
        return _UNARY_OPERATORS[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        _check_size(node.op, left, right)
        result = _BINARY_OPERATORS[type(node.op)](left, right)
        if isinstance(result, complex):
            raise ToolError(f"'{ast.unparse(node)}' has no real-number result")
        return result
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(argument) for argument in node.args))
    raise ToolError(f"the calculator only understands {_ALLOWED}; it cannot evaluate '{ast.unparse(node)}'")


def _check_size(op: ast.operator, left: Any, right: Any) -> None:
    """Refuse results whose size alone would take the machine down (9**9**9 has 370 million digits)."""
    if isinstance(op, ast.Pow):
        if abs(right) > CALCULATOR_MAX_EXPONENT:
            raise ToolError(
                f"the exponent {right} is too large; the calculator allows up to {CALCULATOR_MAX_EXPONENT:,}"
            )
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() * right > CALCULATOR_MAX_BITS
        ):
            raise ToolError(f"{left}**{right} is too large to compute")
    elif (
        isinstance(op, ast.Mult)
        and isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > CALCULATOR_MAX_BITS
    ):
        raise ToolError("the product is too large to compute")


class CalculatorTool(BuiltinTool):
    name = "calculator"
    examples = (
        "how much is 17 times 23?",
        "what's 15% of 80",
        "calculate (4.5 + 3) * 12",
        "square root of 729",
        "divide 1000 by 7",
        "what is 2 to the power of 10?",
    )
    description = (
        "Evaluate arithmetic exactly instead of guessing: numbers, + - * / // % ** (or ^), parentheses, "
        "sqrt, round, abs, min, max, log, exp, sin, cos, tan, pi, e, and percentages like '23.5% of 1,840'."
    )
    parameters = object_schema(
        {
            "expression": {
                "type": "string",
                "minLength": 1,
                "description": "e.g. '(3 + 4) * 2' or '15% of 80'",
            }
        },
        required=("expression",),
    )
    risk: Risk = "read"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        expression = arguments["expression"]
        value = evaluate_expression(expression)
        shown = format_number(value)
        if isinstance(value, float):
            value = float(shown)
        return ToolResult(f"{expression.strip()} = {shown}", {"expression": expression, "value": value})
