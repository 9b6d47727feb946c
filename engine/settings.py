"""User settings: one JSON file in the data dir, shared by the GUI and the CLI.

Values are checked when loaded, so a hand-edited file with a bad value fails with a message naming the
setting instead of surfacing later as a llama.cpp error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Literal

from engine import paths
from engine.backends import GenerationOptions, LoadOptions
from engine.errors import UnderstudyError

Theme = Literal["system", "light", "dark"]
THEMES: tuple[str, ...] = ("system", "light", "dark")


class SettingsError(UnderstudyError):
    """settings.json holds something that is not a valid setting."""


@dataclass(frozen=True)
class Settings:
    """What the user chose; None means "decide from the machine and the catalog"."""

    default_model: str | None = None
    n_threads: int | None = None
    context_length: int | None = None
    temperature: float = 0.2
    max_tokens: int = 512
    system_prompt: str = ""
    theme: Theme = "system"
    tools_enabled: bool = False

    def load_options(self) -> LoadOptions:
        return LoadOptions(n_threads=self.n_threads, n_ctx=self.context_length)

    def generation_options(self) -> GenerationOptions:
        return GenerationOptions(max_tokens=self.max_tokens, temperature=self.temperature)

    def with_changes(self, **changes) -> Settings:
        updated = replace(self, **changes)
        _validate(updated, where="a change")
        return updated


def settings_path() -> Path:
    return paths.data_dir() / "settings.json"


def load_settings(path: Path | None = None) -> Settings:
    path = path or settings_path()
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SettingsError(
            f"{path} is not readable JSON ({error}); fix it or delete it to go back to the defaults"
        ) from error
    if not isinstance(raw, dict):
        raise SettingsError(f"{path} must hold a JSON object; delete it to go back to the defaults")
    known = {field.name for field in fields(Settings)}
    unknown = set(raw) - known
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    settings = Settings(**raw)
    _validate(settings, where=str(path))
    return settings


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    path = path or settings_path()
    try:
        paths.write_text_atomically(path, json.dumps(asdict(settings), indent=2))
    except OSError as error:
        raise SettingsError(f"could not save settings to {path}: {error.strerror or error}") from error


def _validate(settings: Settings, where: str) -> None:
    def fail(name: str, expected: str) -> None:
        value = getattr(settings, name)
        raise SettingsError(f"{where}: setting '{name}' must be {expected}, got {value!r}")

    if settings.default_model is not None and not isinstance(settings.default_model, str):
        fail("default_model", "a model ID or null")
    for name, low, high in (("n_threads", 1, 256), ("context_length", 256, 1_048_576)):
        value = getattr(settings, name)
        if value is not None and (type(value) is not int or not low <= value <= high):
            fail(name, f"null or a whole number from {low} to {high}")
    if type(settings.temperature) not in (int, float) or not 0 <= settings.temperature <= 2:
        fail("temperature", "a number from 0 to 2")
    if type(settings.max_tokens) is not int or not 1 <= settings.max_tokens <= 32768:
        fail("max_tokens", "a whole number from 1 to 32768")
    if not isinstance(settings.system_prompt, str):
        fail("system_prompt", "text")
    if type(settings.tools_enabled) is not bool:
        fail("tools_enabled", "true or false")
    if settings.theme not in THEMES:
        fail("theme", f"one of {', '.join(THEMES)}")
