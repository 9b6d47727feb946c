"""The built-in tools: calculator, date/time, units, files inside granted folders, commands and HTTP GET.

They register through the same ``register_tools`` hook as third-party plugins. Each checks its arguments
against its JSON schema before running, and every path a model names goes through
``resolve_inside_grants``, so nothing outside the folders the user granted is read, listed or written.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import math
import operator
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.hookspecs import hookimpl
from engine.tools import DEFAULT_TIMEOUT_S, OUTPUT_LIMIT_CHARS, Risk, ToolContext, ToolError, ToolResult

CONTENT_SEARCH_MAX_BYTES = 1024 * 1024  # larger files are matched by name only
FILE_READ_MAX_BYTES = 1024 * 1024
NOTE_MAX_CHARS = 1_000_000
SEARCH_MAX_RESULTS = 200
SEARCH_MAX_FILES_SCANNED = 20_000
SEARCH_SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv"})
HTTP_MAX_BYTES = 1024 * 1024
BINARY_SNIFF_BYTES = 8192


@hookimpl
def register_tools(register):
    for tool in BUILTIN_TOOLS:
        register(tool)


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


def _schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _truncate(text: str, limit: int = OUTPUT_LIMIT_CHARS) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"\n[truncated: showing {limit:,} of {len(text):,} characters]", True


# --- Paths -------------------------------------------------------------------------------------------


def granted_roots(context: ToolContext) -> list[Path]:
    """The granted folders, canonicalised (symlinks resolved) so containment checks compare like with like."""
    if not context.granted_folders:
        raise ToolError(
            "no folder is granted to the tools yet: the user must grant a folder first "
            "(`understudy tools grant FOLDER`, or Tools → Grant a folder… in the app)"
        )
    return [Path(os.path.realpath(Path(folder).expanduser())) for folder in context.granted_folders]


def resolve_inside_grants(path: str, context: ToolContext) -> Path:
    """The canonical path ``path`` names, if it lies inside a granted folder; a ToolError otherwise.

    Relative paths are taken from the first granted folder. ``..``, ``~`` and symlinks are resolved
    before the check, so none of them can lead outside.
    """
    roots = granted_roots(context)
    granted = ", ".join(str(root) for root in roots)
    if "\x00" in path:
        raise ToolError(f"the path {path!r} contains a null byte; name a file inside {granted}")
    try:
        candidate = Path(path).expanduser()
    except RuntimeError:  # "~" with no home directory to expand it to
        raise ToolError(f"'{path}' cannot be resolved; name a file inside {granted}") from None
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    resolved = Path(os.path.realpath(candidate))
    if _is_inside(resolved, roots):
        return resolved
    raise ToolError(
        f"'{path}' is outside the granted folders ({granted}); use a path inside one of them, "
        "or ask the user to grant the folder"
    )


def _is_inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _looks_binary(head: bytes) -> bool:
    return b"\x00" in head[:BINARY_SNIFF_BYTES]


# --- calculator --------------------------------------------------------------------------------------

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


def _format_number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.12g}"


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
    parameters = _schema(
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
        shown = _format_number(value)
        if isinstance(value, float):
            value = float(shown)
        return ToolResult(f"{expression.strip()} = {shown}", {"expression": expression, "value": value})


# --- datetime ----------------------------------------------------------------------------------------


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
    parameters = _schema(
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


# --- unit_convert ------------------------------------------------------------------------------------

# unit -> (quantity, size in the quantity's base unit: metre, kilogram, litre, metre/second, byte)
_LINEAR_UNITS: dict[str, tuple[str, float]] = {
    "mm": ("length", 0.001),
    "cm": ("length", 0.01),
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "in": ("length", 0.0254),
    "ft": ("length", 0.3048),
    "yd": ("length", 0.9144),
    "mi": ("length", 1609.344),
    "nmi": ("length", 1852.0),
    "mg": ("mass", 1e-6),
    "g": ("mass", 0.001),
    "kg": ("mass", 1.0),
    "t": ("mass", 1000.0),
    "oz": ("mass", 0.028349523125),
    "lb": ("mass", 0.45359237),
    "st": ("mass", 6.35029318),
    "ml": ("volume", 0.001),
    "cl": ("volume", 0.01),
    "dl": ("volume", 0.1),
    "l": ("volume", 1.0),
    "m3": ("volume", 1000.0),
    "tsp": ("volume", 0.00492892159375),
    "tbsp": ("volume", 0.01478676478125),
    "fl_oz": ("volume", 0.0295735295625),
    "cup": ("volume", 0.2365882365),
    "pt": ("volume", 0.473176473),
    "qt": ("volume", 0.946352946),
    "gal": ("volume", 3.785411784),
    "imp_gal": ("volume", 4.54609),
    "m/s": ("speed", 1.0),
    "km/h": ("speed", 1 / 3.6),
    "mph": ("speed", 0.44704),
    "kn": ("speed", 1852 / 3600),
    "ft/s": ("speed", 0.3048),
    "bit": ("data size", 0.125),
    "kbit": ("data size", 125.0),
    "Mbit": ("data size", 125e3),
    "Gbit": ("data size", 125e6),
    "B": ("data size", 1.0),
    "kB": ("data size", 1e3),
    "MB": ("data size", 1e6),
    "GB": ("data size", 1e9),
    "TB": ("data size", 1e12),
    "PB": ("data size", 1e15),
    "KiB": ("data size", 1024.0),
    "MiB": ("data size", 1024.0**2),
    "GiB": ("data size", 1024.0**3),
    "TiB": ("data size", 1024.0**4),
}
_TEMPERATURE_UNITS = ("C", "F", "K")
_ALIASES = {
    "millimetre": "mm", "millimeter": "mm", "centimetre": "cm", "centimeter": "cm", "metre": "m",
    "meter": "m", "kilometre": "km", "kilometer": "km", "inch": "in", "inches": "in", "foot": "ft",
    "feet": "ft", "yard": "yd", "mile": "mi", "nautical_mile": "nmi", "milligram": "mg", "gram": "g",
    "kilogram": "kg", "kilo": "kg", "tonne": "t", "ounce": "oz", "pound": "lb", "lbs": "lb", "stone": "st",
    "millilitre": "ml", "milliliter": "ml", "litre": "l", "liter": "l", "teaspoon": "tsp",
    "tablespoon": "tbsp", "fluid_ounce": "fl_oz", "floz": "fl_oz", "pint": "pt", "quart": "qt",
    "gallon": "gal", "kph": "km/h", "kmh": "km/h", "knot": "kn", "kt": "kn", "mps": "m/s", "fps": "ft/s",
    "byte": "B", "bits": "bit", "kb": "kB", "mb": "MB", "gb": "GB", "tb": "TB", "pb": "PB", "kib": "KiB",
    "mib": "MiB", "gib": "GiB", "tib": "TiB", "celsius": "C", "centigrade": "C", "°c": "C", "degc": "C",
    "fahrenheit": "F", "°f": "F", "degf": "F", "kelvin": "K",
}  # fmt: skip
_BIT_SYMBOLS = {"b": "bit", "Kb": "kbit", "Mb": "Mbit", "Gb": "Gbit"}
_KNOWN_UNITS = {unit.lower(): unit for unit in (*_LINEAR_UNITS, *_TEMPERATURE_UNITS)}


def _canonical_unit(unit: str) -> str:
    """Exact symbols first (Mb is a megabit, MB a megabyte), then case-insensitive names."""
    text = unit.strip().replace(" ", "_")
    if text in _LINEAR_UNITS or text in _TEMPERATURE_UNITS:
        return text
    if text in _BIT_SYMBOLS:
        return _BIT_SYMBOLS[text]
    lowered = text.lower()
    plurals = (lowered.removesuffix("s"), lowered.removesuffix("es")) if len(lowered) > 3 else ()
    for candidate in (lowered, *plurals):
        if candidate in _ALIASES:
            return _ALIASES[candidate]
        if candidate in _KNOWN_UNITS:
            return _KNOWN_UNITS[candidate]
    known = ", ".join([*_LINEAR_UNITS, *_TEMPERATURE_UNITS])
    raise ToolError(f"unknown unit '{unit}'; known units: {known}")


def _quantity(unit: str) -> str:
    return "temperature" if unit in _TEMPERATURE_UNITS else _LINEAR_UNITS[unit][0]


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    source, target = _canonical_unit(from_unit), _canonical_unit(to_unit)
    if _quantity(source) != _quantity(target):
        raise ToolError(
            f"cannot convert {from_unit} ({_quantity(source)}) to {to_unit} ({_quantity(target)}): "
            "convert between units of the same kind"
        )
    if _quantity(source) != "temperature":
        return value * _LINEAR_UNITS[source][1] / _LINEAR_UNITS[target][1]
    kelvin = {"C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15, "K": value}[source]
    if kelvin < 0:
        raise ToolError(f"{value} {from_unit} is below absolute zero")
    return {"C": kelvin - 273.15, "F": (kelvin - 273.15) * 9 / 5 + 32, "K": kelvin}[target]


class UnitConvertTool(BuiltinTool):
    name = "unit_convert"
    examples = (
        "express 3 kilograms in pounds",
        "convert 100 fahrenheit to celsius",
        "what is 10 inches in cm",
        "turn 2 US gallons into liters",
        "60 mph in km/h",
        "how many megabytes is 3 GB?",
    )
    description = (
        "Convert a value between units of length, mass, temperature, volume, speed or data size, e.g. "
        "5 mi to km, 70 F to C, 2 GiB to MB. Symbols: "
        + ", ".join([*_LINEAR_UNITS, *_TEMPERATURE_UNITS])
        + "."
    )
    parameters = _schema(
        {
            "value": {"type": "number"},
            "from_unit": {"type": "string", "minLength": 1},
            "to_unit": {"type": "string", "minLength": 1},
        },
        required=("value", "from_unit", "to_unit"),
    )
    risk: Risk = "read"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        value, from_unit, to_unit = arguments["value"], arguments["from_unit"], arguments["to_unit"]
        shown = f"{convert_units(value, from_unit, to_unit):.10g}"
        text = f"{_format_number(value)} {from_unit} = {shown} {to_unit}"
        return ToolResult(text, {"value": float(shown), "from_unit": from_unit, "to_unit": to_unit})


# --- file_search / file_read / write_note ------------------------------------------------------------


def _content_match(path: Path, query: str) -> str | None:
    """The first line of a small text file that contains ``query`` (already lower-cased), if any."""
    try:
        if path.stat().st_size > CONTENT_SEARCH_MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if _looks_binary(data):
        return None
    for line in data.decode("utf-8", errors="replace").splitlines():
        if query in line.lower():
            return line.strip()[:200]
    return None


class FileSearchTool(BuiltinTool):
    name = "file_search"
    examples = (
        "search my files for the word budget",
        "which of my documents mention the dentist?",
        "look for files named report",
        "find the notes about the garden",
        "do I have any file about passwords?",
        "locate my recipes",
    )
    description = (
        "Find files in the folders the user granted whose name or text contains a query (case-insensitive). "
        "Returns their paths, with the first matching line for content matches."
    )
    parameters = _schema(
        {
            "query": {"type": "string", "minLength": 1},
            "folder": {"type": "string", "description": "search only here (inside a granted folder)"},
            "max_results": {"type": "integer", "minimum": 1, "maximum": SEARCH_MAX_RESULTS, "default": 50},
        },
        required=("query",),
    )
    risk: Risk = "read"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        roots = granted_roots(context)
        if "folder" in arguments:
            start = resolve_inside_grants(arguments["folder"], context)
            if not start.is_dir():
                raise ToolError(f"{start} is not a folder; give a folder inside the granted ones")
            starts = [start]
        else:
            starts = roots
        query = arguments["query"].lower()
        limit = arguments.get("max_results", 50)
        matches: list[dict[str, str]] = []
        scanned = 0
        for start in starts:
            # Symlinked folders are not followed, and files whose real path leaves the grants are skipped.
            for folder, subfolders, files in os.walk(start):
                subfolders[:] = sorted(name for name in subfolders if name not in SEARCH_SKIPPED_FOLDERS)
                for file_name in sorted(files):
                    scanned += 1
                    path = Path(folder, file_name)
                    real = Path(os.path.realpath(path))
                    if not _is_inside(real, roots) or not real.is_file():
                        continue
                    if query in file_name.lower():
                        matches.append({"path": str(path), "match": "name"})
                    elif (line := _content_match(real, query)) is not None:
                        matches.append({"path": str(path), "match": "content", "line": line})
                    if len(matches) >= limit or scanned >= SEARCH_MAX_FILES_SCANNED:
                        return self._result(arguments["query"], matches, complete=False)
        return self._result(arguments["query"], matches, complete=True)

    @staticmethod
    def _result(query: str, matches: list[dict[str, str]], complete: bool) -> ToolResult:
        if not matches:
            return ToolResult(
                f"no file name or text contains '{query}'", {"matches": [], "complete": complete}
            )
        lines = [f"{m['path']}: {m['line']}" if m["match"] == "content" else m["path"] for m in matches]
        if not complete:
            lines.append("[stopped early: more files may match; narrow the query or the folder]")
        text, _ = _truncate("\n".join(lines))
        return ToolResult(text, {"matches": matches, "complete": complete})


class FileReadTool(BuiltinTool):
    name = "file_read"
    examples = (
        "open notes/shopping.md and show it",
        "show me what's in todo.txt",
        "read the file plan.md",
        "what does my journal/2024.md say?",
        "print the contents of ideas.txt",
        "display readme.md",
    )
    description = "Read a text file inside the folders the user granted (long files are cut short)."
    parameters = _schema(
        {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "absolute, or relative to the first grant",
            }
        },
        required=("path",),
    )
    risk: Risk = "read"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        path = resolve_inside_grants(arguments["path"], context)
        if not path.is_file():
            raise ToolError(f"{path} is not a file" + (" (it is a folder)" if path.is_dir() else ""))
        try:
            with path.open("rb") as file:
                data = file.read(FILE_READ_MAX_BYTES)
            size = path.stat().st_size
        except OSError as error:
            raise ToolError(f"could not read {path}: {error.strerror}") from None
        if _looks_binary(data):
            raise ToolError(f"{path} looks like a binary file; file_read only reads text")
        text, truncated = _truncate(data.decode("utf-8", errors="replace"))
        truncated = truncated or size > len(data)
        if size > len(data):
            text += f"\n[file is {size:,} bytes; only the first {len(data):,} were read]"
        return ToolResult(text, {"path": str(path), "bytes": size, "truncated": truncated})


class WriteNoteTool(BuiltinTool):
    name = "write_note"
    examples = (
        "write a note saying call mum tomorrow",
        "save this to a file named ideas.md: buy paint",
        "create a file todo.txt with milk and eggs",
        "jot down: dentist on Thursday",
        "make a note in notes/work.md that the demo is Friday",
        "store a reminder in reminders.txt",
    )
    description = (
        "Write a text file into a granted folder; an existing file is replaced only with overwrite: true."
    )
    parameters = _schema(
        {
            "file_name": {"type": "string", "minLength": 1, "description": "relative, e.g. 'notes/today.md'"},
            "text": {"type": "string", "maxLength": NOTE_MAX_CHARS},
            "folder": {"type": "string", "description": "a granted folder; the first one when omitted"},
            "overwrite": {"type": "boolean", "default": False},
        },
        required=("file_name", "text"),
    )
    risk: Risk = "write"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        file_name = arguments["file_name"]
        if Path(file_name).is_absolute() or file_name.startswith("~"):
            raise ToolError(
                f"'{file_name}' must be a file name relative to the folder, like 'notes/today.md'"
            )
        folder = resolve_inside_grants(arguments.get("folder", str(granted_roots(context)[0])), context)
        if not folder.is_dir():
            raise ToolError(f"{folder} is not a folder; give a granted folder, or leave 'folder' out")
        target = resolve_inside_grants(str(folder / file_name), context)
        if target.is_dir():
            raise ToolError(f"{target} is a folder; choose a file name")
        if os.path.lexists(target) and not arguments.get("overwrite", False):
            raise ToolError(
                f"{target} already exists; choose another name or pass overwrite: true to replace it"
            )
        data = arguments["text"].encode("utf-8")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, data)
        except OSError as error:
            raise ToolError(f"could not write {target}: {error.strerror}") from None
        return ToolResult(f"wrote {len(data):,} bytes to {target}", {"path": str(target), "bytes": len(data)})


def _write_atomically(target: Path, data: bytes) -> None:
    """Write beside the target and rename over it, so a crash never leaves a half-written file."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    # O_EXCL: never follow a symlink planted at the temporary name.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- shell -------------------------------------------------------------------------------------------

# Programs whose job is to run other commands: allowing them would let a model chain or escalate.
COMMAND_RUNNERS = frozenset(
    {
        "sh", "bash", "zsh", "dash", "fish", "ksh", "mksh", "csh", "tcsh", "ash", "busybox", "cmd",
        "powershell", "pwsh", "env", "xargs", "sudo", "su", "doas", "pkexec", "runuser", "nohup", "nice",
        "timeout", "setsid", "stdbuf", "time", "watch", "chroot", "exec", "eval", "script",
    }
)  # fmt: skip
# Programs and the flags with which they run code or commands given on the command line.
INLINE_CODE_FLAGS = {
    "python": ("-c",),
    "pythonw": ("-c",),
    "py": ("-c",),
    "perl": ("-e", "-E"),
    "ruby": ("-e",),
    "node": ("-e", "-p", "--eval", "--print"),
    "nodejs": ("-e", "-p", "--eval", "--print"),
    "php": ("-r",),
    "osascript": ("-e",),
    "find": ("-exec", "-execdir", "-ok", "-okdir"),
}
SHELL_METACHARACTERS = (";", "&&", "||", "|", "`", "$(", ">", "<", "\n", "\r", "\x00")


def _program_name(argv0: str) -> str:
    """'/usr/bin/Python3.11.exe' -> 'python': the program family, whatever the path or version."""
    name = re.split(r"[\\/]", argv0)[-1].lower()
    name = re.sub(r"\.(exe|cmd|bat|com)$", "", name)
    return re.sub(r"[\d.\-]+$", "", name) or name


def check_command(argv: list[str]) -> None:
    """Reject commands that chain, redirect or run code inline; the policy asks the user about the rest."""
    for argument in argv:
        for token in SHELL_METACHARACTERS:
            if token in argument:
                raise ToolError(
                    f"the argument {argument!r} contains {token!r}: commands run without a shell, one at a "
                    "time, so chaining, pipes and redirections are refused. Run one command per call"
                )
    program = _program_name(argv[0])
    if program in COMMAND_RUNNERS:
        raise ToolError(
            f"'{argv[0]}' runs other commands, so it is refused; call the program you need directly"
        )
    flags = INLINE_CODE_FLAGS.get(program, ())
    for argument in argv[1:]:
        if any(_is_flag(argument, flag) for flag in flags):
            raise ToolError(
                f"'{argv[0]} {argument}' runs code or a command given on the command line, which is refused; "
                "call the program you need directly, or write the code to a file with write_note and run it"
            )


def _is_flag(argument: str, flag: str) -> bool:
    """Whether ``argument`` sets ``flag``, also inside short-option clusters: python -Ic, -cprint(1)."""
    if argument == flag or argument.startswith(flag + "="):
        return True
    if len(flag) != 2 or argument.startswith("--"):
        return False
    cluster = re.match(r"-([A-Za-z]+)", argument)
    return cluster is not None and flag[1] in cluster.group(1)


# Only what programs need to run; API keys and tokens in the app's environment stay out of reach.
_PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "USERPROFILE")


def _command_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _PASSED_ENVIRONMENT if name in os.environ}


def _kill_process_tree(process: subprocess.Popen) -> None:
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()


class ShellTool(BuiltinTool):
    name = "shell"
    examples = (
        "run ls in my projects folder",
        "show me the directory listing with ls -la",
        "run git diff",
        "execute python --version",
        "check free memory with free -m",
        "run the command make test",
    )
    description = (
        "Run one program with arguments (an argv list, no shell: no pipes, chaining or redirection) in a "
        "granted folder, and return its exit code and output."
    )
    parameters = _schema(
        {
            "argv": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": 200,
                "description": "the program and its arguments, e.g. ['ls', '-l']",
            },
            "cwd": {
                "type": "string",
                "description": "a folder inside a granted folder; the first grant by default",
            },
        },
        required=("argv",),
    )
    risk: Risk = "exec"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        argv = arguments["argv"]
        if not argv[0]:
            raise ToolError("argv[0] is empty; give the program to run")
        check_command(argv)
        cwd = resolve_inside_grants(arguments.get("cwd", str(granted_roots(context)[0])), context)
        if not cwd.is_dir():
            raise ToolError(f"{cwd} is not a folder; give cwd as a folder inside the granted ones")
        command = shlex.join(argv)
        output, total_bytes, exit_code, timed_out = self._run(argv, cwd)
        text = output.decode("utf-8", errors="replace")
        truncated = total_bytes > len(output)
        if truncated:
            text += f"\n[output cut short: showing the first {len(output):,} of {total_bytes:,} bytes]"
        if timed_out:
            raise ToolError(
                f"`{command}` ran past its {self.timeout_s:g} s limit and was stopped. "
                f"Its last output: {text[-500:] or '(none)'}"
            )
        return ToolResult(
            f"$ {command}\nexit code {exit_code}\n{text}",
            {"argv": argv, "cwd": str(cwd), "exit_code": exit_code, "truncated": truncated},
        )

    def _run(self, argv: list[str], cwd: Path) -> tuple[bytes, int, int | None, bool]:
        """Run with output capped while it is read, so a chatty program cannot fill the memory.

        Returns the first output bytes, the total output size, the exit code and whether it timed out.
        """
        kept: list[bytes] = []
        total = [0]

        def drain(stream) -> None:
            # The reader owns the pipe and closes it, so a stuck pipe can never block the caller.
            with stream:
                for chunk in iter(lambda: stream.read1(65536), b""):
                    room = OUTPUT_LIMIT_CHARS - total[0]
                    if room > 0:
                        kept.append(chunk[:room])
                    total[0] += len(chunk)

        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                shell=False,
                start_new_session=os.name == "posix",
                env=_command_environment(),
            )
        except FileNotFoundError:
            raise ToolError(
                f"'{argv[0]}' was not found; check the program's name or give its full path"
            ) from None
        except PermissionError:
            raise ToolError(f"'{argv[0]}' is not executable") from None
        except OSError as error:
            raise ToolError(f"could not start '{argv[0]}': {error.strerror}") from None
        reader = threading.Thread(target=drain, args=(process.stdout,), daemon=True)
        reader.start()
        timed_out = False
        try:
            process.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_process_tree(process)
            process.wait()
        reader.join(timeout=1.0)
        if reader.is_alive():  # it left background processes holding the output open
            _kill_process_tree(process)
            reader.join(timeout=5.0)
        return b"".join(kept), total[0], process.returncode, timed_out


# --- http_get ----------------------------------------------------------------------------------------


@functools.cache
def _opener():
    """An opener whose redirects are held to the same rules as the URL the model gave."""
    import urllib.request
    from urllib.parse import urljoin

    class CheckedRedirects(urllib.request.HTTPRedirectHandler):
        def http_error_302(self, req, fp, code, msg, headers):
            location = headers.get("location") or headers.get("uri")
            if location:
                try:
                    check_url(urljoin(req.full_url, location))
                except ToolError:
                    fp.close()
                    raise
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    return urllib.request.build_opener(CheckedRedirects)


_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/xhtml+xml")


def check_url(url: str) -> None:
    """Only plain http(s) URLs: no file://, no ftp://, no credentials riding along in the URL."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as error:
        raise ToolError(f"'{url}' is not a valid URL ({error})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ToolError(f"'{url}' is not an http or https URL; http_get fetches only those")
    if not host:
        raise ToolError(f"'{url}' has no host name")
    if parts.username is not None or parts.password is not None:
        raise ToolError(f"'{url}' carries a user name or password; credentials in URLs are refused")


def _is_text(content_type: str) -> bool:
    return (
        content_type.startswith("text/")
        or content_type in _TEXT_TYPES
        or content_type.endswith(("+json", "+xml"))
    )


class HttpGetTool(BuiltinTool):
    name = "http_get"
    examples = (
        "download https://www.gnu.org/licenses/gpl-3.0.txt",
        "download the page at http://news.example.org",
        "get the JSON from https://api.example.com/status",
        "open the website https://python.org and tell me what it says",
        "what does https://example.org/robots.txt contain?",
        "load the URL https://httpbin.org/get",
    )
    description = "Fetch a web page or API response with HTTP GET; returns the status, content type and text."
    parameters = _schema(
        {"url": {"type": "string", "minLength": 1, "description": "an http:// or https:// URL"}},
        required=("url",),
    )
    risk: Risk = "network"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        import urllib.error
        import urllib.request

        url = arguments["url"].strip()
        check_url(url)
        request = urllib.request.Request(url, headers={"User-Agent": "Understudy/0.1"})
        deadline = time.monotonic() + self.timeout_s
        try:
            try:
                response = _opener().open(request, timeout=self.timeout_s)
            except urllib.error.HTTPError as error:  # 4xx and 5xx still carry a useful body
                response = error
            with response:
                status = response.status
                final_url = response.geturl()
                content_type = response.headers.get_content_type()
                charset = response.headers.get_content_charset() or "utf-8"
                body = self._read_capped(response, deadline)
        except urllib.error.URLError as error:
            raise ToolError(f"could not fetch {url}: {error.reason}") from None
        except OSError as error:
            raise ToolError(f"could not fetch {url}: {error}") from None
        truncated = len(body) > HTTP_MAX_BYTES
        body = body[:HTTP_MAX_BYTES]
        if not _is_text(content_type):
            text = f"[{content_type} content, {len(body):,} bytes, not shown]"
        else:
            try:
                decoded = body.decode(charset, errors="replace")
            except LookupError:
                decoded = body.decode("utf-8", errors="replace")
            text, cut = _truncate(decoded)
            truncated = truncated or cut
        data = {"url": final_url, "status": status, "content_type": content_type, "truncated": truncated}
        return ToolResult(f"HTTP {status} {content_type}\n{text}", data)

    @staticmethod
    def _read_capped(response, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while size <= HTTP_MAX_BYTES:
            if time.monotonic() > deadline:
                raise ToolError("the response took too long to arrive and was abandoned")
            chunk = response.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)


BUILTIN_TOOLS: tuple[BuiltinTool, ...] = (
    CalculatorTool(),
    DateTimeTool(),
    UnitConvertTool(),
    FileSearchTool(),
    FileReadTool(),
    WriteNoteTool(),
    ShellTool(),
    HttpGetTool(),
)
