"""The permission policy for tool calls, enforced here in code and never described to the model.

read tools run inside the folders the user granted; write, network and exec tools ask the user every
time unless the user chose "always" for that tool; a deny list wins over everything. The decision
depends only on the tool, the user's settings and the user's answer: nothing a model writes (an
argument such as "confirm": true, or instructions inside a tool's output) is consulted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_serializer

from engine import paths
from engine.config import ConfigModel, edit_config, load_config
from engine.errors import ConfigError, PolicyError
from engine.tools import Tool, ToolContext

Answer = Literal["once", "always", "deny"]


@dataclass(frozen=True)
class ApprovalRequest:
    """What the user is asked: the tool, its risk, and the arguments exactly as the model wrote them."""

    tool: str
    risk: str
    description: str
    arguments_json: str


Approver = Callable[[ApprovalRequest], Answer]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    decided_by: str  # policy | user | always-rule | deny-list
    reason: str


class ToolPolicy(ConfigModel):
    """tools.json: the folders read tools may use, and the user's rule for each tool."""

    error_type: ClassVar[type[ConfigError]] = PolicyError
    advice: ClassVar[str] = "fix it or delete it to start over"

    granted_folders: list[str] = Field(default_factory=list)
    always_allowed: list[str] = Field(default_factory=list)  # tool names
    denied: list[str] = Field(default_factory=list)  # tool names

    @field_serializer("always_allowed", "denied")
    def _sorted_names(self, names: list[str]) -> list[str]:
        return sorted(set(names))

    def context(self) -> ToolContext:
        return ToolContext(granted_folders=tuple(os.path.realpath(folder) for folder in self.granted_folders))

    def set_rule(self, tool_name: str, rule: Literal["ask", "allow", "deny"]) -> None:
        """Ask every time, always allow, or never allow ``tool_name`` (one rule per tool)."""
        self.always_allowed = [name for name in self.always_allowed if name != tool_name]
        self.denied = [name for name in self.denied if name != tool_name]
        if rule == "allow":
            self.always_allowed.append(tool_name)
        elif rule == "deny":
            self.denied.append(tool_name)

    def decide(self, tool: Tool, arguments_json: str, approver: Approver | None) -> Decision:
        if tool.name in self.denied:
            return Decision(False, "deny-list", f"'{tool.name}' is on your deny list")
        if tool.risk == "read":
            return Decision(True, "policy", "read tools may read inside granted folders")
        if tool.name in self.always_allowed:
            return Decision(True, "always-rule", f"you chose to always allow '{tool.name}'")
        if approver is None:
            return Decision(
                False,
                "policy",
                f"'{tool.name}' ({tool.risk}) needs your approval and there was no one to ask; allow "
                f"it always with `understudy tools allow {tool.name}` or run it from a terminal",
            )
        answer = approver(ApprovalRequest(tool.name, tool.risk, tool.description, arguments_json))
        if answer == "always":
            self.set_rule(tool.name, "allow")
            with edit_policy() as saved:
                saved.set_rule(tool.name, "allow")
        if answer in ("once", "always"):
            return Decision(True, "user", f"you allowed it ({answer})")
        return Decision(False, "user", "you denied it")


def policy_path() -> Path:
    return paths.data_dir() / "tools.json"


def load_policy() -> ToolPolicy:
    return load_config(policy_path(), ToolPolicy)


@contextlib.contextmanager
def edit_policy() -> Iterator[ToolPolicy]:
    """The saved policy to change in place, locked until it is saved (a grant, a rule)."""
    with edit_config(policy_path(), ToolPolicy) as policy:
        yield policy


def grant_folder(policy: ToolPolicy, folder: str) -> str:
    """Grant a folder (stored canonical, symlinks resolved) and return its canonical path."""
    canonical = os.path.realpath(Path(folder).expanduser())
    if not Path(canonical).is_dir():
        raise PolicyError(f"{folder} is not a folder; grant an existing folder")
    if canonical not in policy.granted_folders:
        policy.granted_folders.append(canonical)
    return canonical
