"""Unit conversion: length, mass, temperature, volume, speed and data size.

Conversion factors are exact constants here rather than something a model recalls. The tool-calling
benchmark also uses ``convert_units`` to accept a unit argument spelt another way ("kg" for "kilograms").
"""

from __future__ import annotations

from typing import Any

from engine.errors import ToolError
from engine.tools import Risk, ToolContext, ToolResult
from engine.tools.builtin.base import BuiltinTool, format_number, object_schema

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
    parameters = object_schema(
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
        text = f"{format_number(value)} {from_unit} = {shown} {to_unit}"
        return ToolResult(text, {"value": float(shown), "from_unit": from_unit, "to_unit": to_unit})
