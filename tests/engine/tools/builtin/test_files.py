"""File search and file read inside a grant: matches by name and content, caps, and binary files."""

from __future__ import annotations

import pytest
from tool_sandbox import CANARY

from engine.errors import ToolError
from engine.tools import OUTPUT_LIMIT_CHARS
from engine.tools.builtin.files import FileReadTool, FileSearchTool


def test_file_search_finds_names_and_contents_case_insensitively(sandbox):
    granted, _, context = sandbox
    by_content = FileSearchTool().run({"query": "pears"}, context)
    assert by_content.data["matches"] == [
        {
            "path": str(granted / "notes.txt"),
            "match": "content",
            "line": "Shopping list: apples, Pears, bread",
        }
    ]
    by_name = FileSearchTool().run({"query": "REPORT", "folder": "sub"}, context)
    assert [m["path"] for m in by_name.data["matches"]] == [str(granted / "sub" / "report.md")]
    assert FileSearchTool().run({"query": "no such words"}, context).data["matches"] == []


def test_file_search_never_follows_symlinks_out_of_the_grant(sandbox):
    _, _, context = sandbox
    for query in ("CANARY", "secret"):
        result = FileSearchTool().run({"query": query}, context)
        assert result.data["matches"] == [] and CANARY not in result.text


def test_file_search_caps_results_and_skips_large_files_content(sandbox):
    granted, _, context = sandbox
    for index in range(30):
        (granted / f"match-{index:02d}.txt").write_text("x")
    capped = FileSearchTool().run({"query": "match-", "max_results": 5}, context)
    assert len(capped.data["matches"]) == 5 and capped.data["complete"] is False
    (granted / "huge.log").write_text("a" * (1024 * 1024 + 10) + "needle")
    assert FileSearchTool().run({"query": "needle"}, context).data["matches"] == []


def test_file_read_reads_text_and_caps_output(sandbox):
    granted, _, context = sandbox
    assert FileReadTool().run({"path": "notes.txt"}, context).text.startswith("Shopping list")
    (granted / "long.txt").write_text("line\n" * 10_000)
    long = FileReadTool().run({"path": "long.txt"}, context)
    assert long.data["truncated"] is True and len(long.text) < OUTPUT_LIMIT_CHARS + 200
    (granted / "image.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    with pytest.raises(ToolError, match="binary"):
        FileReadTool().run({"path": "image.bin"}, context)
    with pytest.raises(ToolError, match="not a file"):
        FileReadTool().run({"path": "sub"}, context)
