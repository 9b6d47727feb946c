"""The rules on what tools may touch, exercised through the tools on real files and processes.

Corpora of path escapes, command chains and URLs that must all be refused, and the app's secrets that
must not reach a command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tool_sandbox import CANARY, NO_GRANTS, snapshot

from engine.errors import ToolError
from engine.tools import ToolContext
from engine.tools.builtin.files import FileReadTool, FileSearchTool
from engine.tools.builtin.http_get import HttpGetTool
from engine.tools.builtin.notes import WriteNoteTool
from engine.tools.builtin.security import resolve_inside_grants
from engine.tools.builtin.shell import ShellTool

# --- paths -----------------------------------------------------------------------------------------


def escape_corpus(granted: Path, outside: Path) -> list[str]:
    return [
        "..",
        "../outside/secret.txt",
        "../../etc/passwd",
        "/etc/passwd",
        "//etc/passwd",
        str(outside / "secret.txt"),
        f"{granted}/../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "./../outside/secret.txt",
        "~",
        "~/.bashrc",
        "link_to_secret",
        "hop",
        "linked_dir/secret.txt",
        "linked_dir",
        str(granted.parent / "granted-lookalike" / "secret.txt"),
        "/proc/self/root/etc/passwd",
        "%2e%2e/outside/secret.txt",
        "%2e%2e%2foutside%2fsecret.txt",
        "notes.txt\x00/../../outside/secret.txt",
        "..\x00",
    ]


def test_paths_inside_the_grant_resolve(sandbox):
    granted, _, context = sandbox
    assert resolve_inside_grants("notes.txt", context) == granted / "notes.txt"
    assert resolve_inside_grants(str(granted / "sub" / "report.md"), context) == granted / "sub" / "report.md"
    assert resolve_inside_grants("sub/../notes.txt", context) == granted / "notes.txt"
    assert resolve_inside_grants("%2e%2e/x", context) == granted / "%2e%2e" / "x"  # taken literally


def test_every_path_escape_is_refused_by_every_file_tool(sandbox):
    granted, outside, context = sandbox
    before = snapshot(granted.parent)
    escapes = []
    for path in escape_corpus(granted, outside):
        calls = [
            (FileReadTool(), {"path": path}),
            (FileSearchTool(), {"query": "CANARY", "folder": path}),
            (ShellTool(), {"argv": ["cat", "secret.txt"], "cwd": path}),
            (WriteNoteTool(), {"file_name": "escaped.txt", "text": "x", "folder": path}),
        ]
        for tool, arguments in calls:
            try:
                result = tool.run(arguments, context)
            except ToolError as error:
                assert CANARY not in str(error)
                continue
            escapes.append((tool.name, path, result.text))
    assert escapes == []
    assert snapshot(granted.parent) == before


def test_file_tools_need_a_grant(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    calls = [
        (FileReadTool(), {"path": str(tmp_path / "a.txt")}),
        (FileSearchTool(), {"query": "a"}),
        (WriteNoteTool(), {"file_name": "b.txt", "text": "b"}),
        (ShellTool(), {"argv": ["ls"]}),
    ]
    for tool, arguments in calls:
        with pytest.raises(ToolError, match="must grant a folder first"):
            tool.run(arguments, NO_GRANTS)
    assert not (tmp_path / "b.txt").exists()


def test_the_refusal_names_the_granted_folders(sandbox):
    granted, _, context = sandbox
    with pytest.raises(ToolError, match=f"outside the granted folders \\({granted}\\)"):
        FileReadTool().run({"path": "/etc/passwd"}, context)


# --- commands --------------------------------------------------------------------------------------


def chaining_corpus(canary: Path) -> list[list[str]]:
    touch = f"touch {canary}"
    return [
        ["echo", "hi;", "touch", str(canary)],
        ["echo", f"hi; {touch}"],
        ["echo", "hi", "&&", "touch", str(canary)],
        ["false", "||", "touch", str(canary)],
        ["echo", "hi", "|", "tee", str(canary)],
        ["echo", f"$({touch})"],
        ["echo", f"`{touch}`"],
        ["echo", "hi", ">", str(canary)],
        ["echo", f"hi>{canary}"],
        ["cat", "<", "/etc/passwd"],
        ["echo", f"hi\n{touch}"],
        ["bash", "-c", touch],
        ["sh", "-c", touch],
        ["/bin/sh", "-c", touch],
        ["BASH.EXE", "-c", touch],
        ["zsh", "-c", touch],
        ["dash", "-c", touch],
        ["fish", "-c", touch],
        ["pwsh", "-Command", touch],
        ["cmd", "/c", touch],
        ["python", "-c", f"open('{canary}', 'w')"],
        ["python3", "-c", f"open('{canary}', 'w')"],
        [sys.executable, "-c", f"open('{canary}', 'w')"],
        ["python3.11", "-Ic", f"open('{canary}', 'w')"],
        ["python3", f"-copen('{canary}', 'w')"],
        ["perl", "-e", f"open(F, '>', '{canary}')"],
        ["perl", "-ne", "print"],
        ["node", "--eval", "1"],
        ["env", "touch", str(canary)],
        ["/usr/bin/env", "touch", str(canary)],
        ["xargs", "touch"],
        ["sudo", "touch", str(canary)],
        ["su", "-c", touch],
        ["nohup", "touch", str(canary)],
        ["timeout", "5", "touch", str(canary)],
        ["find", ".", "-exec", "touch", str(canary), "+"],
    ]


def test_command_chaining_and_command_runners_are_refused(sandbox, tmp_path):
    _, _, context = sandbox
    canary = tmp_path / "pwned"
    corpus = chaining_corpus(canary)
    accepted = []
    for argv in corpus:
        try:
            ShellTool().run({"argv": argv}, context)
        except ToolError:
            continue
        accepted.append(argv)
    assert accepted == []
    assert len(corpus) >= 30 and not canary.exists()


def test_commands_do_not_see_the_apps_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    result = ShellTool().run({"argv": ["printenv"]}, ToolContext(granted_folders=(str(tmp_path.resolve()),)))
    assert "sk-should-not-leak" not in result.text


# --- URLs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "http://user:secret@127.0.0.1/",
        "http:///no-host",
        "/relative/path",
    ],
)
def test_http_get_refuses_other_schemes_and_credentials(url):
    with pytest.raises(ToolError):
        HttpGetTool().run({"url": url}, NO_GRANTS)
