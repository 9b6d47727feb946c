"""MCP servers as tool sources, against a real stdio server written with the mcp SDK."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import psutil
import pytest
from click.testing import CliRunner

from app.cli.mcp import mcp
from engine.errors import McpError, ToolError
from engine.tools import ToolContext, registered_tools
from engine.tools.mcp import (
    add_server,
    approve_server,
    call_tool,
    config_path,
    load_config,
    refresh_server,
    save_config,
    server_log_path,
    server_status,
    set_trusted,
)

# Each start appends the server's pid to the marker file named by its first argument, before anything else.
SERVER_SCRIPT = '''
import os
import sys

with open(sys.argv[1], "a") as marker:
    marker.write(f"{{os.getpid()}}\\n")

from mcp.server.mcpserver import MCPServer

server = MCPServer("test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Say the text in capitals."""
    return text.upper()

{extra}
server.run()
'''

EXTRA_TOOL = '''
@server.tool()
def whisper(text: str) -> str:
    """Say the text in small letters."""
    return text.lower()
'''

SLEEPING_SCRIPT = """
import os
import sys
import time

with open(sys.argv[1], "a") as marker:
    marker.write(f"{os.getpid()}\\n")
time.sleep(60)
"""


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "started.txt"


@pytest.fixture
def server_script(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT.format(extra=""), encoding="utf-8")
    return script


@pytest.fixture
def demo(server_script, marker):
    """A configured, unapproved server named 'demo'."""
    add_server("demo", sys.executable, [str(server_script), str(marker)])
    return "demo"


def started_pids(marker) -> list[int]:
    return [int(line) for line in marker.read_text().split()] if marker.exists() else []


def assert_all_gone(marker) -> None:
    pids = started_pids(marker)
    assert pids
    for pid in pids:
        assert not psutil.pid_exists(pid), f"server process {pid} outlived its call"


def mcp_tools() -> dict:
    return {name: tool for name, tool in registered_tools().items() if tool.source.startswith("mcp:")}


def test_an_unapproved_server_is_never_spawned(demo, marker):
    with pytest.raises(McpError, match=r"not approved yet.*understudy mcp approve demo"):
        call_tool(demo, "add", {"a": 1, "b": 2}, timeout_s=10)
    with pytest.raises(McpError, match="not approved yet"):
        refresh_server(demo)

    assert mcp_tools() == {}
    [status] = server_status()
    assert status["approved"] is False
    assert status["tools"] == 0
    assert "understudy mcp approve demo" in status["problem"]
    assert not marker.exists()


def test_approval_lists_and_caches_the_tools(demo, marker):
    definitions = approve_server(demo)

    assert {definition["name"] for definition in definitions} == {"add", "shout"}
    config = load_config()
    assert config.tool_cache[demo] == definitions
    assert config.approved[demo] and config.tool_lists[demo]
    [status] = server_status()
    assert status["approved"] is True
    assert status["tools"] == 2
    assert status["problem"] is None
    assert f"{sys.executable} " in status["command_line"]
    assert len(started_pids(marker)) == 1
    assert_all_gone(marker)


def test_approved_tools_register_from_the_cache_asking_unless_trusted(demo, marker):
    approve_server(demo)
    starts = len(started_pids(marker))

    tools = mcp_tools()

    assert set(tools) == {"mcp_demo_add", "mcp_demo_shout"}
    add = tools["mcp_demo_add"]
    assert add.risk == "network"
    assert add.source == "mcp:demo"
    assert add.description == "Add two whole numbers."
    assert add.parameters["type"] == "object"
    assert set(add.parameters["properties"]) == {"a", "b"}
    assert len(started_pids(marker)) == starts  # registering spawned nothing

    set_trusted(demo, True)
    assert {tool.risk for tool in mcp_tools().values()} == {"read"}
    set_trusted(demo, False)
    assert {tool.risk for tool in mcp_tools().values()} == {"network"}


def test_calling_a_tool_runs_it_and_stops_the_server(demo, marker):
    approve_server(demo)
    tools = mcp_tools()

    added = tools["mcp_demo_add"].run({"a": 2, "b": 3}, ToolContext())
    shouted = tools["mcp_demo_shout"].run({"text": "hello"}, ToolContext())

    assert added.text == "5"
    assert added.data == {"server": "demo", "tool": "add", "structured_content": {"result": 5}}
    assert shouted.text == "HELLO"
    assert len(started_pids(marker)) == 3
    assert_all_gone(marker)


def test_a_tool_failing_on_the_server_is_a_tool_error(demo):
    approve_server(demo)

    with pytest.raises(ToolError, match="(?s)'add' on MCP server 'demo' failed: .*valid integer"):
        mcp_tools()["mcp_demo_add"].run({"a": "two", "b": 3}, ToolContext())


def test_an_edited_command_line_blocks_the_server_until_approved_again(demo, marker):
    approve_server(demo)
    starts = len(started_pids(marker))
    config = load_config()
    config.servers[demo] = replace(config.servers[demo], env={"EXTRA": "1"})
    save_config(config)

    with pytest.raises(McpError, match="command line changed since you approved it"):
        call_tool(demo, "add", {"a": 1, "b": 2}, timeout_s=10)
    assert mcp_tools() == {}
    assert "command line changed" in server_status()[0]["problem"]
    assert len(started_pids(marker)) == starts

    approve_server(demo)
    assert call_tool(demo, "add", {"a": 1, "b": 2}, timeout_s=10).text == "3"


def test_a_changed_tool_list_blocks_the_tools_until_approved_again(demo, marker, server_script):
    approve_server(demo)
    server_script.write_text(SERVER_SCRIPT.format(extra=EXTRA_TOOL), encoding="utf-8")

    with pytest.raises(McpError, match="tools of 'demo' changed since you approved them"):
        call_tool(demo, "add", {"a": 1, "b": 2}, timeout_s=10)
    assert mcp_tools() == {}
    [status] = server_status()
    assert status["tools"] == 0
    assert "understudy mcp approve demo" in status["problem"]
    assert {tool["name"] for tool in status["listed_tools"]} == {"add", "shout", "whisper"}
    with pytest.raises(McpError, match="changed since you approved them"):
        refresh_server(demo)

    approve_server(demo)
    assert set(mcp_tools()) == {"mcp_demo_add", "mcp_demo_shout", "mcp_demo_whisper"}
    assert call_tool(demo, "whisper", {"text": "QUIET"}, timeout_s=10).text == "quiet"
    assert_all_gone(marker)


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path, marker):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPING_SCRIPT, encoding="utf-8")
    add_server("sleeper", sys.executable, [str(script), str(marker)])

    with pytest.raises(McpError, match="'sleeper' did not answer within 1 s and was stopped"):
        approve_server("sleeper", timeout_s=1)

    assert_all_gone(marker)
    assert load_config().approved == {}


def test_a_server_that_exits_points_at_its_messages(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import sys\nsys.exit('cannot find my settings file')\n", encoding="utf-8")
    add_server("broken", sys.executable, [str(script)])

    with pytest.raises(McpError, match="'broken' stopped before answering; its messages are in"):
        approve_server("broken")
    assert "cannot find my settings file" in server_log_path("broken").read_text()


def test_a_missing_command_is_a_clear_error():
    add_server("missing", "/nowhere/mcp-server", [])

    with pytest.raises(McpError, match="'missing' could not be started .* /nowhere/mcp-server"):
        approve_server("missing")


def test_a_damaged_config_is_reported_with_its_path():
    config_path().write_text('{"servers": {"demo": {"args": []}}}', encoding="utf-8")

    with pytest.raises(McpError, match=r"mcp\.json is damaged .* delete it to start over"):
        load_config()


def test_server_names_are_checked():
    with pytest.raises(McpError, match="must be 1-40 letters"):
        add_server("../evil", "true", [])


# --- The CLI group ----------------------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(mcp, list(args))


def test_cli_add_approve_trust_refresh_and_remove(server_script, marker):
    added = invoke("add", "demo", "--", sys.executable, str(server_script), str(marker))
    assert added.exit_code == 0, added.output
    assert "understudy mcp approve demo" in added.output

    listed = json.loads(invoke("list", "--json").output)
    assert listed["approved"] is False and listed["tools"] == 0

    refused = invoke("approve", "demo")
    assert isinstance(refused.exception, McpError)
    assert "no terminal to ask" in str(refused.exception)
    assert str(server_script) in refused.output
    assert not marker.exists()

    approved = invoke("approve", "demo", "--yes")
    assert approved.exit_code == 0, approved.output
    assert "offers 2 tools" in approved.output and "- shout: Say the text in capitals." in approved.output

    assert invoke("trust", "demo").exit_code == 0
    assert json.loads(invoke("list", "--json").output)["trusted"] is True
    assert invoke("untrust", "demo").exit_code == 0
    assert "approved, 2 tools offered" in invoke("list").output

    refreshed = invoke("refresh", "demo")
    assert refreshed.exit_code == 0 and "the 2 tools you approved" in refreshed.output

    assert invoke("remove", "demo").exit_code == 0
    assert invoke("list", "--json").output == ""
    assert mcp_tools() == {}
    assert_all_gone(marker)


def test_cli_add_takes_environment_and_rejects_bad_pairs():
    assert invoke("add", "env", "-e", "TOKEN=abc", "--", "server", "--flag").exit_code == 0
    assert load_config().servers["env"].env == {"TOKEN": "abc"}
    assert load_config().servers["env"].args == ("--flag",)

    bad = invoke("add", "other", "-e", "TOKEN", "--", "server")
    assert bad.exit_code == 2
    assert "'TOKEN' is not KEY=VALUE" in bad.output
