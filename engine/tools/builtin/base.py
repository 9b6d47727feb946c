"""What every built-in tool shares: argument checking, the schema shape, truncation and number display.

A model's arguments are checked before a tool sees them, so each tool's ``execute`` can trust their shape
and a bad call comes back as a message naming the argument to fix.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ToolError
from engine.tools import DEFAULT_TIMEOUT_S, OUTPUT_LIMIT_CHARS, Risk, ToolContext, ToolResult


class BuiltinTool:
    """Shared by the built-ins: arguments are checked against the schema before ``execute`` sees them."""

    name: str
    description: str
    parameters: dict[str, Any]
    risk: Risk
    examples: tuple[str, ...]
    source = "builtin"

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        validate_arguments(self.name, self.parameters, arguments)
        return self.execute(arguments, context)

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        raise NotImplementedError


def validate_arguments(tool_name: str, schema: dict[str, Any], arguments: Any) -> None:
    """Raise a ToolError naming the first bad argument, so the model can correct its call."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(arguments))
    if error is None:
        return
    properties = schema.get("properties", {})
    expected = ", ".join(
        f"{name} ({'required' if name in schema.get('required', ()) else 'optional'})" for name in properties
    )
    where = "/".join(str(part) for part in error.absolute_path)
    problem = f"argument '{where}': {error.message}" if where else error.message
    raise ToolError(
        f"'{tool_name}' was called with bad arguments: {problem}. It takes: {expected or 'nothing'}"
    )


def object_schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An arguments schema that refuses unknown arguments, so a misspelt one is reported, not ignored."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def truncate(text: str, limit: int = OUTPUT_LIMIT_CHARS) -> tuple[str, bool]:
    """The text cut to ``limit`` characters with a note saying so, and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"\n[truncated: showing {limit:,} of {len(text):,} characters]", True


def format_number(value: int | float) -> str:
    """Integers exactly; floats to 12 significant digits, which hides binary rounding noise."""
    return str(value) if isinstance(value, int) else f"{value:.12g}"
