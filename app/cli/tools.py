"""`understudy tools`: the tools, calling one through the permission policy, and its rules."""

from __future__ import annotations

import json
import sys

import click

from app.cli.common import emit_json, terminal_approver


@click.group()
def tools() -> None:
    """Tools the model may call, the folders they may touch, and what may run without asking."""


@tools.command("list")
@click.option("--json", "as_json", is_flag=True)
def tools_list(as_json: bool) -> None:
    """Every registered tool with its risk and where it comes from."""
    from engine.tools import registered_tools
    from engine.tools.policy import load_policy

    policy = load_policy()
    for tool in registered_tools().values():
        record = {
            "name": tool.name,
            "risk": tool.risk,
            "source": tool.source,
            "description": tool.description,
            "always_allowed": tool.name in policy.always_allowed,
            "denied": tool.name in policy.denied,
        }
        if as_json:
            emit_json(record)
        else:
            click.echo(f"{tool.name:<14} {tool.risk:<8} {tool.source:<10} {tool.description}")
    if not as_json:
        click.echo(f"granted folders: {', '.join(policy.granted_folders) or 'none'}", err=True)


@tools.command("call")
@click.argument("name")
@click.argument("arguments_json")
def tools_call(name: str, arguments_json: str) -> None:
    """Run tool NAME with ARGUMENTS_JSON through the same policy the model's calls go through."""
    from engine.errors import ToolError
    from engine.tools import registered_tools
    from engine.tools.calling import parse_choice
    from engine.tools.policy import load_policy

    if name == "none":
        raise ToolError("'none' is not a tool; `understudy tools list` shows them")
    available = registered_tools()
    choice = parse_choice(json.dumps({"tool": name, "arguments": _json_argument(arguments_json)}), available)
    tool = available[choice.tool]
    policy = load_policy()
    decision = policy.decide(tool, arguments_json, terminal_approver if sys.stdin.isatty() else None)
    if not decision.allowed:
        raise ToolError(f"not run: {decision.reason}")
    click.echo(tool.run(choice.arguments, policy.context()).text)


def _json_argument(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"ARGUMENTS_JSON is not JSON ({error.msg})") from error


@tools.command("grant")
@click.argument("folder", type=click.Path(file_okay=False))
def tools_grant(folder: str) -> None:
    """Let tools read (and, when approved, write) inside FOLDER."""
    from engine.tools.policy import edit_policy, grant_folder

    with edit_policy() as policy:
        canonical = grant_folder(policy, folder)
    click.echo(f"Granted {canonical}")


@tools.command("allow")
@click.argument("name")
def tools_allow(name: str) -> None:
    """Always run tool NAME without asking."""
    _set_tool_rule(name, allow=True)


@tools.command("deny")
@click.argument("name")
def tools_deny(name: str) -> None:
    """Never run tool NAME."""
    _set_tool_rule(name, allow=False)


def _set_tool_rule(name: str, allow: bool) -> None:
    from engine.errors import ToolError
    from engine.tools import registered_tools
    from engine.tools.policy import edit_policy

    if name not in registered_tools():
        raise ToolError(f"there is no tool '{name}'; `understudy tools list` shows them")
    with edit_policy() as policy:
        policy.set_rule(name, "allow" if allow else "deny")
    click.echo(f"{name}: {'always allowed' if allow else 'denied'}")
