"""The gateway's configuration (gateway.json in the data dir): model names clients use, mapped to ours.

An agent built for OpenAI asks for "gpt-4o-mini"; ``{"aliases": {"gpt-4o-mini": "auto"}}`` sends it
through the router without changing the agent.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from engine import paths
from engine.config import ConfigModel, load_config

CONFIG_FILE = "gateway.json"


class GatewayConfig(ConfigModel):
    aliases: dict[str, str] = Field(default_factory=dict)

    def resolve(self, model: str) -> str:
        return self.aliases.get(model, model)


def gateway_config_path() -> Path:
    return paths.data_dir() / CONFIG_FILE


def load_gateway_config() -> GatewayConfig:
    return load_config(gateway_config_path(), GatewayConfig)
