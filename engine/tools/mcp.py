"""MCP (Model Context Protocol) servers as tool sources, each spawned over stdio only when needed.

A server is a command the user adds to ``mcp.json``. Nothing is spawned until the user approves the exact
command line (command, arguments and environment); an edit since then blocks it again. Approval also
records the server's tool list, so a server that changes its tools (names, descriptions or schemas) is
not offered to the model until the user approves again. Tools register from a cache written at approval
or refresh, so registering never spawns anything. Every call spawns the server, checks both records,
runs the tool under a timeout and shuts the server down.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shlex
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, ConfigDict, Field, StrictStr, field_serializer
from pydantic.dataclasses import dataclass
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from engine import config as config_file
from engine import paths
from engine.config import ConfigModel
from engine.errors import McpError, ToolError, UnderstudyError
from engine.hookspecs import hookimpl
from engine.tools import DEFAULT_TIMEOUT_S, Risk, ToolContext, ToolResult

if TYPE_CHECKING:
    from mcp import ClientSession

LIST_TIMEOUT_S = 20.0
SERVER_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_]")

T = TypeVar("T")


def _checked_name(name: str) -> str:
    if not SERVER_NAME_PATTERN.fullmatch(name):
        raise ValueError("must be 1-40 letters, digits, '-' or '_', starting with a letter or digit")
    return name


# A dataclass, validated by pydantic: callers build and copy servers as dataclasses.
@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class McpServer:
    """A server's exact command line: what the user approves."""

    command: Annotated[StrictStr, Field(min_length=1)]
    args: tuple[StrictStr, ...] = ()
    env: dict[StrictStr, StrictStr] = field(default_factory=dict)


class ToolDefinition(TypedDict):
    """One tool as a server listed it."""

    name: str
    description: str
    input_schema: dict[str, Any]


class McpConfig(ConfigModel):
    """mcp.json: the servers, what the user approved of each, and each server's last listed tools."""

    error_type: ClassVar[type[UnderstudyError]] = McpError
    advice: ClassVar[str] = "fix it or delete it to start over"
    entry_words: ClassVar[dict[str, str]] = {"servers": "server"}

    servers: dict[Annotated[str, AfterValidator(_checked_name)], McpServer] = Field(default_factory=dict)
    approved: dict[str, str] = Field(default_factory=dict)  # name -> command-line hash
    trusted: list[str] = Field(default_factory=list)
    tool_lists: dict[str, str] = Field(default_factory=dict)  # name -> approved tool-list hash
    tool_cache: dict[str, list[ToolDefinition]] = Field(default_factory=dict)  # name -> last listed tools

    @field_serializer("trusted")
    def _sorted_names(self, names: list[str]) -> list[str]:
        return sorted(set(names))


# --- The config file ---------------------------------------------------------------------------------


def config_path() -> Path:
    return paths.data_dir() / "mcp.json"


def load_config() -> McpConfig:
    return config_file.load_config(config_path(), McpConfig)


def save_config(config: McpConfig) -> None:
    config_file.save_config(config_path(), config)


def _edit_config() -> contextlib.AbstractContextManager[McpConfig]:
    """mcp.json to change in place, locked until it is saved."""
    return config_file.edit_config(config_path(), McpConfig)


# --- Approval ----------------------------------------------------------------------------------------


def command_line_hash(server: McpServer) -> str:
    """The fingerprint the user approves: any change to the command, an argument or the env changes it."""
    document = {"command": server.command, "args": list(server.args), "env": server.env}
    return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def tool_list_hash(definitions: list[dict[str, Any]]) -> str:
    """The fingerprint of what the model would be offered: names, descriptions and input schemas."""
    ordered = sorted(definitions, key=lambda definition: definition["name"])
    return hashlib.sha256(json.dumps(ordered, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def command_line(server: McpServer) -> str:
    """The exact command line, shell-quoted, with the environment it gets first."""
    variables = [f"{name}={value}" for name, value in sorted(server.env.items())]
    return shlex.join([*variables, server.command, *server.args])


def add_server(name: str, command: str, args: list[str], env: dict[str, str] | None = None) -> McpServer:
    """Store a server, not approved: nothing runs until ``approve_server``."""
    try:
        _checked_name(name)
    except ValueError as error:
        raise McpError(f"server name {name!r} {error}") from None
    with _edit_config() as config:
        if name in config.servers:
            raise McpError(
                f"an MCP server named '{name}' exists already; "
                f"remove it first with `understudy mcp remove {name}`"
            )
        server = McpServer(command, tuple(args), dict(env or {}))
        config.servers[name] = server
    return server


def remove_server(name: str) -> None:
    with _edit_config() as config:
        _server(config, name)
        del config.servers[name]
        config.approved.pop(name, None)
        config.tool_lists.pop(name, None)
        config.tool_cache.pop(name, None)
        config.trusted = [trusted for trusted in config.trusted if trusted != name]


def configured_server(name: str) -> McpServer:
    return _server(load_config(), name)


def approve_server(
    name: str, shown: McpServer | None = None, timeout_s: float = LIST_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Spawn the server, list its tools, and record both as approved; return the tools.

    ``shown`` is the server as the user saw it when asked: if mcp.json says something else now, nothing runs.
    """
    config = load_config()
    server = _server(config, name)
    if shown is not None and shown != server:
        raise McpError(f"'{name}' changed since it was shown to you; check it and approve it again")
    definitions = _run_with_server(name, server, timeout_s, _list_tools)
    with _edit_config() as config:
        if config.servers.get(name) != server:
            raise McpError(f"'{name}' changed while it was being approved; check it and approve it again")
        config.approved[name] = command_line_hash(server)
        config.tool_lists[name] = tool_list_hash(definitions)
        config.tool_cache[name] = definitions
    return definitions


def refresh_server(name: str, timeout_s: float = LIST_TIMEOUT_S) -> list[dict[str, Any]]:
    """List an approved server's tools again; raise McpError if they differ from the approved list."""
    config = load_config()
    server = _approved_server(config, name)
    definitions = _run_with_server(name, server, timeout_s, _list_tools)
    _record_tool_list(name, definitions)
    if tool_list_hash(definitions) != config.tool_lists.get(name):
        raise McpError(_tool_list_changed(name))
    return definitions


def set_trusted(name: str, trusted: bool) -> None:
    """A trusted server's tools run without asking (risk "read"): the user's explicit choice."""
    with _edit_config() as config:
        _server(config, name)
        config.trusted = [other for other in config.trusted if other != name] + ([name] if trusted else [])


def _server(config: McpConfig, name: str) -> McpServer:
    server = config.servers.get(name)
    if server is None:
        known = ", ".join(sorted(config.servers)) or "none yet"
        raise McpError(
            f"there is no MCP server named '{name}' (configured: {known}); "
            f"add one with `understudy mcp add NAME -- COMMAND [ARGS...]`"
        )
    return server


def _approved_server(config: McpConfig, name: str) -> McpServer:
    """The server, if its command line is exactly the approved one; an McpError otherwise."""
    server = _server(config, name)
    problem = _command_line_problem(config, name)
    if problem:
        raise McpError(f"'{name}' was not started: {problem}")
    return server


def _command_line_problem(config: McpConfig, name: str) -> str | None:
    approved = config.approved.get(name)
    if approved == command_line_hash(config.servers[name]):
        return None
    what = "it is not approved yet" if approved is None else "its command line changed since you approved it"
    return f"{what}; check the command line, then run `understudy mcp approve {name}`"


def _tool_list_changed(name: str) -> str:
    return (
        f"the tools of '{name}' changed since you approved them, so they are not offered; check them with "
        f"`understudy mcp list`, then run `understudy mcp approve {name}`"
    )


def _record_tool_list(name: str, definitions: list[dict[str, Any]]) -> None:
    with _edit_config() as config:
        if name in config.servers:
            config.tool_cache[name] = definitions


# --- Tools -------------------------------------------------------------------------------------------


def tool_name(server_name: str, remote_name: str) -> str:
    """``mcp_SERVER_TOOL`` with only [A-Za-z0-9_], which every tool-call grammar accepts."""
    return _UNSAFE_NAME_CHARACTERS.sub("_", f"mcp_{server_name}_{remote_name}")


class McpTool:
    """One tool of an MCP server; each call spawns the server, checks it is still approved, and stops it."""

    def __init__(self, server_name: str, definition: dict[str, Any], trusted: bool) -> None:
        self.server_name = server_name
        self.remote_name: str = definition["name"]
        self.name = tool_name(server_name, self.remote_name)
        self.description: str = (
            definition["description"] or f"'{self.remote_name}' from MCP server {server_name}"
        )
        self.parameters: dict[str, Any] = definition["input_schema"]
        self.risk: Risk = "read" if trusted else "network"
        self.timeout_s = DEFAULT_TIMEOUT_S
        self.source = f"mcp:{server_name}"
        self.examples: tuple[str, ...] = ()

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return call_tool(self.server_name, self.remote_name, arguments, self.timeout_s)


def call_tool(server_name: str, remote_name: str, arguments: dict[str, Any], timeout_s: float) -> ToolResult:
    """Run one tool of an approved server whose tool list is still the approved one."""
    config = load_config()
    server = _approved_server(config, server_name)
    approved_tools = config.tool_lists.get(server_name)

    async def list_then_call(session: ClientSession) -> tuple[list[dict[str, Any]], Any]:
        definitions = await _list_tools(session)
        if tool_list_hash(definitions) != approved_tools:
            return definitions, None
        return definitions, await session.call_tool(remote_name, arguments)

    definitions, result = _run_with_server(server_name, server, timeout_s, list_then_call)
    if result is None:
        _record_tool_list(server_name, definitions)
        raise McpError(_tool_list_changed(server_name))
    text = "\n".join(_content_text(block) for block in result.content)
    if result.is_error:
        raise ToolError(f"'{remote_name}' on MCP server '{server_name}' failed: {text or 'no details given'}")
    return ToolResult(
        text,
        {"server": server_name, "tool": remote_name, "structured_content": result.structured_content},
    )


def _content_text(block: Any) -> str:
    if block.type == "text":
        return block.text
    if block.type == "resource" and hasattr(block.resource, "text"):
        return block.resource.text
    if block.type == "resource_link":
        return f"[resource link: {block.uri}]"
    return f"[{block.type} content, not shown]"


def _offered_tools(config: McpConfig) -> tuple[list[McpTool], dict[str, list[str]]]:
    """The tools of approved servers whose cached list is the approved one, and each server's problems."""
    tools: list[McpTool] = []
    problems: dict[str, list[str]] = {}
    taken: set[str] = set()
    for name in config.servers:
        problem = _command_line_problem(config, name)
        definitions = config.tool_cache.get(name)
        if problem is None and definitions is None:
            problem = f"its tools have not been listed; run `understudy mcp refresh {name}`"
        elif problem is None and tool_list_hash(definitions) != config.tool_lists.get(name):
            problem = _tool_list_changed(name)
        if problem:
            problems[name] = [problem]
            continue
        for definition in definitions:
            schema = definition["input_schema"]
            if schema.get("type", "object") != "object":
                problems.setdefault(name, []).append(
                    f"tool '{definition['name']}' is skipped: its input schema is not an object schema"
                )
                continue
            tool = McpTool(
                name, {**definition, "input_schema": {"type": "object", **schema}}, name in config.trusted
            )
            if tool.name in taken:
                problems.setdefault(name, []).append(
                    f"tool '{definition['name']}' is skipped: another MCP tool is already named '{tool.name}'"
                )
                continue
            taken.add(tool.name)
            tools.append(tool)
    return tools, problems


@hookimpl
def register_tools(register):
    """Register from the cache only: listing tools would mean spawning servers."""
    tools, _ = _offered_tools(load_config())
    for tool in tools:
        register(tool)


def server_status() -> list[dict[str, Any]]:
    """Each configured server, for the GUI and the CLI: approval, trust, tools offered, what is wrong.

    ``listed_tools`` are the tools the server listed last: after a change, what approving again would offer.
    """
    config = load_config()
    tools, problems = _offered_tools(config)
    return [
        {
            "name": name,
            "command_line": command_line(server),
            "approved": _command_line_problem(config, name) is None,
            "trusted": name in config.trusted,
            "tools": sum(1 for tool in tools if tool.server_name == name),
            "problem": "; ".join(problems[name]) if name in problems else None,
            "listed_tools": [
                {"name": definition["name"], "description": definition["description"]}
                for definition in config.tool_cache.get(name, [])
            ],
        }
        for name, server in config.servers.items()
    ]


# --- Talking to a server -----------------------------------------------------------------------------


async def _list_tools(session: ClientSession) -> list[dict[str, Any]]:
    from mcp.types import PaginatedRequestParams

    definitions: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        definitions.extend(
            {
                "name": tool.name,
                "description": tool.description or "",
                "input_schema": dict(tool.input_schema),
            }
            for tool in page.tools
        )
        cursor = page.next_cursor
        if not cursor:
            return definitions


def _run_with_server(
    name: str, server: McpServer, timeout_s: float, work: Callable[[ClientSession], Awaitable[T]]
) -> T:
    """Spawn the server, initialise a session, do ``work``, and shut the server down, all within the timeout.

    The SDK's stdio transport closes the server's stdin on the way out and kills its process group if it
    lingers, so no child outlives this call, even on a timeout.
    """
    import anyio

    async def session_work() -> T:
        from mcp import ClientSession, StdioServerParameters, stdio_client

        parameters = StdioServerParameters(command=server.command, args=list(server.args), env=server.env)
        with _server_log(name) as errlog, anyio.fail_after(timeout_s):
            async with (
                stdio_client(parameters, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await work(session)

    try:
        return anyio.run(session_work)
    except Exception as error:
        raise _explained(name, server, timeout_s, error) from error


@contextlib.contextmanager
def _server_log(name: str) -> Iterator[IO[str]]:
    """The server's stderr goes to a file the user can read: its own words on why it failed."""
    with server_log_path(name).open("w", encoding="utf-8") as log:
        yield log


def server_log_path(name: str) -> Path:
    folder = paths.data_dir() / "mcp-logs"
    folder.mkdir(exist_ok=True)
    return folder / f"{name}.log"


def _explained(name: str, server: McpServer, timeout_s: float, error: Exception) -> McpError:
    """One clear McpError for whatever went wrong inside the SDK's task groups."""
    from mcp import MCPError

    cause = _innermost(error)
    log = server_log_path(name)
    if isinstance(cause, TimeoutError):
        return McpError(
            f"MCP server '{name}' did not answer within {timeout_s:g} s and was stopped; "
            f"its messages are in {log}"
        )
    if isinstance(cause, OSError):
        return McpError(
            f"MCP server '{name}' could not be started ({cause}); check its command: {server.command}"
        )
    if isinstance(cause, MCPError) and cause.message == "Connection closed":
        return McpError(f"MCP server '{name}' stopped before answering; its messages are in {log}")
    if isinstance(cause, MCPError):
        return McpError(f"MCP server '{name}' answered with an error: {cause.message}")
    return McpError(f"talking to MCP server '{name}' failed ({type(cause).__name__}: {cause}); see {log}")


def _innermost(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
