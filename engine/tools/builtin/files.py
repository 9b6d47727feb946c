"""Searching and reading text files inside the folders the user granted.

Every path goes through ``resolve_inside_grants``, and a search never follows a link out of the grants;
sizes are capped so a large or binary file cannot flood the model's context.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.errors import ToolError
from engine.tools import Risk, ToolContext, ToolResult
from engine.tools.builtin.base import BuiltinTool, object_schema, truncate
from engine.tools.builtin.security import granted_roots, is_inside, resolve_inside_grants

CONTENT_SEARCH_MAX_BYTES = 1024 * 1024  # larger files are matched by name only
FILE_READ_MAX_BYTES = 1024 * 1024
SEARCH_MAX_RESULTS = 200
SEARCH_MAX_FILES_SCANNED = 20_000
SEARCH_SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv"})
BINARY_SNIFF_BYTES = 8192


def _looks_binary(head: bytes) -> bool:
    return b"\x00" in head[:BINARY_SNIFF_BYTES]


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
    parameters = object_schema(
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
                    if not is_inside(real, roots) or not real.is_file():
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
        text, _ = truncate("\n".join(lines))
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
    parameters = object_schema(
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
        text, truncated = truncate(data.decode("utf-8", errors="replace"))
        truncated = truncated or size > len(data)
        if size > len(data):
            text += f"\n[file is {size:,} bytes; only the first {len(data):,} were read]"
        return ToolResult(text, {"path": str(path), "bytes": size, "truncated": truncated})
