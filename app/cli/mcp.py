"""``understudy mcp``: MCP servers as tool sources — add, approve, trust, refresh and remove them.

Nothing is spawned before ``approve``, which shows the exact command line and asks on a terminal;
without one it refuses unless ``--yes`` says the user checked the command line some other way.
"""

from __future__ import annotations

import json
import sys

import click


@click.group()
def mcp() -> None:
    """MCP servers whose tools the model may call (each server runs only after you approve it)."""


@mcp.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "-e", "--env", "env_pairs", multiple=True, metavar="KEY=VALUE", help="Environment for the server."
)
def mcp_add(name: str, command: tuple[str, ...], env_pairs: tuple[str, ...]) -> None:
    """Store server NAME, run as COMMAND [ARGS...] (write `--` before it); it is not approved yet."""
    from engine.tools.mcp import add_server, command_line

    server = add_server(name, command[0], list(command[1:]), _parse_env(env_pairs))
    click.echo(f"Added '{name}': {command_line(server)}")
    click.echo(f"Check it, then run `understudy mcp approve {name}` to start it and list its tools.")


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


@mcp.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per server.")
def mcp_list(as_json: bool) -> None:
    """Every server: its command line, whether it is approved and trusted, and its tools."""
    from engine.tools.mcp import server_status

    statuses = server_status()
    for status in statuses:
        if as_json:
            click.echo(json.dumps(status, ensure_ascii=False))
            continue
        state = ("approved" if status["approved"] else "not approved") + (
            ", trusted" if status["trusted"] else ""
        )
        click.echo(f"{status['name']}: {state}, {status['tools']} tools offered")
        click.echo(f"  command: {status['command_line']}")
        if status["problem"]:
            click.echo(f"  problem: {status['problem']}")
        for tool in status["listed_tools"]:
            click.echo(f"  - {tool['name']}: {tool['description']}")
    if not statuses and not as_json:
        click.echo("No MCP servers; add one with `understudy mcp add NAME -- COMMAND [ARGS...]`.", err=True)


@mcp.command("approve")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Approve without asking (you checked the command line).")
def mcp_approve(name: str, yes: bool) -> None:
    """Approve NAME's exact command line, then start it once to list and cache its tools."""
    from engine.errors import McpError
    from engine.tools.mcp import approve_server, command_line, configured_server

    server = configured_server(name)
    click.echo(f"'{name}' will run exactly this command line, with your user's rights:")
    click.echo(f"  {command_line(server)}")
    if not yes:
        if not sys.stdin.isatty():
            raise McpError(
                "not approved: there is no terminal to ask; check the command line, then pass --yes"
            )
        if not click.confirm("Approve it?", default=False):
            raise McpError(f"'{name}' was not approved; nothing was started")
    definitions = approve_server(name, shown=server)
    click.echo(f"Approved '{name}'; it offers {len(definitions)} tools:")
    for definition in definitions:
        click.echo(f"  - {definition['name']}: {definition['description']}")


@mcp.command("trust")
@click.argument("name")
def mcp_trust(name: str) -> None:
    """Let NAME's tools run without asking each time."""
    from engine.tools.mcp import set_trusted

    set_trusted(name, True)
    click.echo(f"'{name}' is trusted: its tools run without asking.")


@mcp.command("untrust")
@click.argument("name")
def mcp_untrust(name: str) -> None:
    """Ask again before each call of NAME's tools."""
    from engine.tools.mcp import set_trusted

    set_trusted(name, False)
    click.echo(f"'{name}' is not trusted: each call of its tools asks first.")


@mcp.command("refresh")
@click.argument("name")
def mcp_refresh(name: str) -> None:
    """Start approved server NAME to list its tools again (they must match the approved list)."""
    from engine.tools.mcp import refresh_server

    definitions = refresh_server(name)
    click.echo(f"'{name}' offers the {len(definitions)} tools you approved.")


@mcp.command("remove")
@click.argument("name")
def mcp_remove(name: str) -> None:
    """Forget server NAME, its approval and its tools."""
    from engine.tools.mcp import remove_server

    remove_server(name)
    click.echo(f"Removed '{name}'.")
