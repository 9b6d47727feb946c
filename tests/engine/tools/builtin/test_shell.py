"""The shell tool on real processes: it runs programs in the grant, kills them on time, caps output."""

from __future__ import annotations

import sys
import time

import psutil
import pytest

from engine.errors import ToolError
from engine.tools import OUTPUT_LIMIT_CHARS
from engine.tools.builtin.shell import ShellTool


def test_shell_runs_a_program_in_the_grant(sandbox):
    granted, _, context = sandbox
    listing = ShellTool().run({"argv": ["ls"]}, context)
    assert listing.data["exit_code"] == 0 and "notes.txt" in listing.text
    (granted / "sub" / "hello.py").write_text("import os\nprint('hello from', os.getcwd())\n")
    script = ShellTool().run({"argv": [sys.executable, "hello.py"], "cwd": "sub"}, context)
    assert f"hello from {granted / 'sub'}" in script.text
    failing = ShellTool().run({"argv": ["ls", "no-such-file"]}, context)
    assert failing.data["exit_code"] != 0
    with pytest.raises(ToolError, match="not found"):
        ShellTool().run({"argv": ["no-such-program-understudy"]}, context)


def test_the_shell_timeout_kills_the_command(sandbox):
    granted, _, context = sandbox
    with pytest.raises(ToolError, match="ran past its 1 s limit"):
        ShellTool(timeout_s=1).run({"argv": ["sleep", "30"]}, context)
    leftover = [child for child in psutil.Process().children(recursive=True) if child.name() == "sleep"]
    assert leftover == []  # stopped and reaped, not left running
    (granted / "late.py").write_text("import time\ntime.sleep(1.5)\nopen('late-canary', 'w').close()\n")
    with pytest.raises(ToolError):
        ShellTool(timeout_s=0.5).run({"argv": [sys.executable, "late.py"]}, context)
    time.sleep(2)
    assert not (granted / "late-canary").exists()


def test_the_shell_output_is_capped(sandbox):
    _, _, context = sandbox
    result = ShellTool().run({"argv": ["seq", "1", "300000"]}, context)
    assert result.data["exit_code"] == 0 and result.data["truncated"] is True
    assert len(result.text) < OUTPUT_LIMIT_CHARS + 200
