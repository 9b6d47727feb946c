"""The permission policy for tool calls, enforced here in code and never described to the model.

read tools run inside the folders the user granted; write, network and exec tools ask the user every
time unless the user chose "always" for that tool; a deny list wins over everything. The decision
depends only on the tool, the user's settings and the user's answer: nothing a model writes (an
argument such as "confirm": true, or instructions inside a tool's output) is consulted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine import paths
from engine.errors import UnderstudyError
from engine.tools import Tool, ToolContext

Answer = Literal["once", "always", "deny"]


class PolicyError(UnderstudyError):
    """tools.json is damaged or a grant is not a folder."""


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


@dataclass
class ToolPolicy:
    granted_folders: list[str] = field(default_factory=list)
    always_allowed: list[str] = field(default_factory=list)  # tool names
    denied: list[str] = field(default_factory=list)  # tool names

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
            self.always_allowed.append(tool.name)
            save_policy(self)
        if answer in ("once", "always"):
            return Decision(True, "user", f"you allowed it ({answer})")
        return Decision(False, "user", "you denied it")


def policy_path() -> Path:
    return paths.data_dir() / "tools.json"


def load_policy() -> ToolPolicy:
    path = policy_path()
    if not path.exists():
        return ToolPolicy()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ToolPolicy(
            granted_folders=[str(folder) for folder in raw.get("granted_folders", [])],
            always_allowed=[str(name) for name in raw.get("always_allowed", [])],
            denied=[str(name) for name in raw.get("denied", [])],
        )
    except (OSError, ValueError, AttributeError) as error:
        raise PolicyError(f"{path} is damaged ({error}); fix it or delete it to start over") from error


def save_policy(policy: ToolPolicy) -> None:
    document = {
        "granted_folders": policy.granted_folders,
        "always_allowed": sorted(set(policy.always_allowed)),
        "denied": sorted(set(policy.denied)),
    }
    paths.write_text_atomically(policy_path(), json.dumps(document, indent=2))


def grant_folder(policy: ToolPolicy, folder: str) -> str:
    """Grant a folder (stored canonical, symlinks resolved) and return its canonical path."""
    canonical = os.path.realpath(Path(folder).expanduser())
    if not Path(canonical).is_dir():
        raise PolicyError(f"{folder} is not a folder; grant an existing folder")
    if canonical not in policy.granted_folders:
        policy.granted_folders.append(canonical)
    return canonical
