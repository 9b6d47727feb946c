"""Writing a text file into a granted folder: the one built-in tool that changes the user's files.

The target must resolve inside a grant, an existing file is replaced only when asked, and the write is
atomic so a crash never leaves half a note behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine import files
from engine.errors import ToolError
from engine.tools import Risk, ToolContext, ToolResult
from engine.tools.builtin.base import BuiltinTool, object_schema
from engine.tools.builtin.security import granted_roots, resolve_inside_grants

NOTE_MAX_CHARS = 1_000_000


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
    parameters = object_schema(
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
            files.write_bytes(target, data)
        except OSError as error:
            raise ToolError(f"could not write {target}: {error.strerror}") from None
        return ToolResult(f"wrote {len(data):,} bytes to {target}", {"path": str(target), "bytes": len(data)})
