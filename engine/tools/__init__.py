"""Tools a model may call: the Tool Protocol, results, and the registry filled through plugins.

A tool declares a JSON schema for its arguments and a risk class. Whether a call may run is decided by
``engine.tools.policy`` in code, from the risk, the user's grants and approvals — never by the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from engine.errors import ToolError

Risk = Literal["read", "write", "network", "exec"]
RISKS: tuple[str, ...] = ("read", "write", "network", "exec")
DEFAULT_TIMEOUT_S = 20.0
OUTPUT_LIMIT_CHARS = 8000


@dataclass(frozen=True)
class ToolContext:
    """What a tool may touch: the folders the user granted (canonical absolute paths)."""

    granted_folders: tuple[str, ...] = ()


@dataclass
class ToolResult:
    """A tool's output as text for the model, plus structured data for the log and the GUI."""

    text: str
    data: dict[str, Any] = field(default_factory=dict)


class Tool(Protocol):
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments (an object schema)
    risk: Risk
    timeout_s: float
    source: str  # "builtin", a plugin's name, or "mcp:SERVER"
    # How users ask for it, in their words: the tool is picked by meaning from these and the description.
    examples: tuple[str, ...]

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Do the work; raise ToolError with a clear message when the arguments can't be honoured."""
        ...


def registered_tools() -> dict[str, Tool]:
    """Every tool registered through the ``register_tools`` hook, built-ins included."""
    from engine import plugins

    tools: dict[str, Tool] = {}

    def register(tool: Tool) -> None:
        if tool.risk not in RISKS:
            raise ToolError(f"tool '{tool.name}' has risk {tool.risk!r}; expected one of {', '.join(RISKS)}")
        tools[tool.name] = tool

    plugins.plugin_manager().hook.register_tools(register=register)
    return tools
