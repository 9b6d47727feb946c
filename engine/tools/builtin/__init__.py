"""The built-in tools, registered through the same ``register_tools`` hook as third-party plugins.

One module per tool, so each can be read on its own; every rule about what a tool may touch lives in
``security``, so the boundary can be reviewed in one place.

- ``base``: what every tool shares: ``BuiltinTool``, argument checking against the schema, truncation.
- ``security``: granted folders and path resolution, the command rules, the URL rules.
- ``calculator``: exact arithmetic, evaluated on the syntax tree, never by ``eval``.
- ``date_time``: the current date and time in a zone, and conversions between zones.
- ``units``: unit conversion (length, mass, temperature, volume, speed, data size).
- ``files``: file search and file read inside the granted folders.
- ``notes``: write_note, an atomic text-file write into a granted folder.
- ``shell``: one program with arguments, without a shell, time- and output-capped.
- ``http_get``: HTTP GET of a web page or API response.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.hookspecs import hookimpl
from engine.tools import Tool
from engine.tools.builtin.base import BuiltinTool
from engine.tools.builtin.calculator import CalculatorTool
from engine.tools.builtin.date_time import DateTimeTool
from engine.tools.builtin.files import FileReadTool, FileSearchTool
from engine.tools.builtin.http_get import HttpGetTool
from engine.tools.builtin.notes import WriteNoteTool
from engine.tools.builtin.shell import ShellTool
from engine.tools.builtin.units import UnitConvertTool

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


@hookimpl
def register_tools(register: Callable[[Tool], None]) -> None:
    for tool in BUILTIN_TOOLS:
        register(tool)
