"""User settings: one JSON file in the data dir, shared by the GUI and the CLI.

Values are checked when loaded, so a hand-edited file with a bad value fails with a message naming the
setting instead of surfacing later as a llama.cpp error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from engine import paths
from engine.backends import GenerationOptions, LoadOptions
from engine.config import ConfigModel, load_config, save_config, update_config
from engine.errors import ConfigError, SettingsError

Theme = Literal["system", "light", "dark"]
THEMES: tuple[str, ...] = ("system", "light", "dark")


class Settings(ConfigModel):
    """What the user chose; None means "decide from the machine and the catalog"."""

    model_config = ConfigDict(frozen=True)
    error_type: ClassVar[type[ConfigError]] = SettingsError
    field_word: ClassVar[str] = "setting"

    default_model: str | None = None
    n_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    context_length: Annotated[int, Field(ge=256, le=1_048_576)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.2
    max_tokens: Annotated[int, Field(ge=1, le=32768)] = 512
    system_prompt: str = ""
    theme: Theme = "system"
    tools_enabled: bool = False

    def load_options(self) -> LoadOptions:
        return LoadOptions(n_threads=self.n_threads, n_ctx=self.context_length)

    def generation_options(self) -> GenerationOptions:
        return GenerationOptions(max_tokens=self.max_tokens, temperature=self.temperature)


def settings_path() -> Path:
    return paths.data_dir() / "settings.json"


def load_settings(path: Path | None = None) -> Settings:
    return load_config(path or settings_path(), Settings)


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    save_config(path or settings_path(), settings)


def update_settings(**changes) -> Settings:
    """Change the saved settings under the file's lock, so two windows never undo each other's change."""
    return update_config(settings_path(), Settings, **changes)
