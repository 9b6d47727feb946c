"""write_note writes only inside the grant, atomically, and replaces a file only when asked."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tool_sandbox import CANARY, snapshot

from engine.errors import ToolError
from engine.tools.builtin.notes import WriteNoteTool


def test_write_note_file_names_cannot_leave_the_grant(sandbox):
    granted, outside, context = sandbox
    before_outside = snapshot(outside)
    unique = f"escaped-{os.getpid()}-{time.monotonic_ns()}.txt"
    refused = [
        f"../{unique}",
        f"../../{unique}",
        f"sub/../../{unique}",
        f"linked_dir/{unique}",
        f"/tmp/{unique}",
        str(outside / unique),
        f"~/{unique}",
        f"{unique}\x00.txt",
    ]
    for file_name in refused:
        with pytest.raises(ToolError):
            WriteNoteTool().run({"file_name": file_name, "text": "escaped"}, context)
    with pytest.raises(ToolError):  # a symlink inside the grant whose target is outside
        WriteNoteTool().run(
            {"file_name": "link_to_secret", "text": "overwritten", "overwrite": True}, context
        )
    literal = WriteNoteTool().run({"file_name": f"%2e%2e/{unique}", "text": "inside"}, context)
    assert Path(literal.data["path"]) == granted / "%2e%2e" / unique
    assert snapshot(outside) == before_outside
    assert (outside / "secret.txt").read_text() == CANARY
    assert list(granted.parent.rglob(unique)) == [granted / "%2e%2e" / unique]
    assert not (Path.home() / unique).exists() and not Path("/tmp", unique).exists()


def test_write_note_writes_and_refuses_to_overwrite_unless_asked(sandbox):
    granted, _, context = sandbox
    result = WriteNoteTool().run({"file_name": "journal/today.md", "text": "# Today\nwrote tests\n"}, context)
    target = granted / "journal" / "today.md"
    assert result.data["path"] == str(target) and target.read_text() == "# Today\nwrote tests\n"
    with pytest.raises(ToolError, match="already exists"):
        WriteNoteTool().run({"file_name": "journal/today.md", "text": "replaced"}, context)
    assert target.read_text() == "# Today\nwrote tests\n"
    WriteNoteTool().run({"file_name": "journal/today.md", "text": "replaced", "overwrite": True}, context)
    assert target.read_text() == "replaced"
    assert [path.name for path in target.parent.iterdir()] == ["today.md"]  # no temporary files left
