"""Configuration files as validated models: read, checked, explained and written in one place.

Every file the engine reads back as configuration (settings.json, tools.json, mcp.json, cloud.json,
tuning.json, models.toml) is a ``ConfigModel``. Unknown fields are refused and types are strict, so a
hand edit with a typo fails when the file is read, with one line that names the file, the entry and the
field and says what to do, instead of surfacing later as someone else's error. Writes are atomic, and a
read-modify-write holds the file's lock (``engine.files``).
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from engine import files
from engine.errors import ConfigError, UnderstudyError

Config = TypeVar("Config", bound="ConfigModel")

# What a value of each type must be, in the words of someone editing the file.
_EXPECTED = {
    "int_type": "int (a whole number)",
    "int_parsing": "int (a whole number)",
    "int_from_float": "int (a whole number)",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a table of names and values",
    "model_type": "a table of names and values",
    "model_attributes_type": "a table of names and values",
    "dataclass_type": "a table of names and values",
    "list_type": "a list",
    "tuple_type": "a list",
}
# Pydantic's two words for a name that a table may not have.
_UNKNOWN_NAME = {"extra_forbidden", "unexpected_keyword_argument"}


class ConfigModel(BaseModel):
    """A config file's contents. Subclasses say how their problems are reported."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # The error raised for this file, so each caller keeps catching what it caught before.
    error_type: ClassVar[type[UnderstudyError]] = ConfigError
    # What to do about a damaged file.
    advice: ClassVar[str] = "fix it or delete it to go back to the defaults"
    # What a message calls a field ("setting" reads better in a settings file).
    field_word: ClassVar[str] = "field"
    # Top-level tables of named entries and what one entry is called, e.g. {"servers": "server"}.
    entry_words: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any) -> Any:
        """All unknown names at once, with the known ones: pydantic would report each on its own."""
        if isinstance(data, dict):
            unknown = sorted(str(name) for name in data if name not in cls.model_fields)
            if unknown:
                raise PydanticCustomError(
                    "unknown_fields",
                    "unknown fields {unknown}",
                    {"unknown": unknown, "allowed": sorted(cls.model_fields)},
                )
        return data

    def with_changes(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated like the file."""
        try:
            return self.model_validate({**self.model_dump(), **changes})
        except ValidationError as error:
            raise self.error_type(explain(error, type(self))) from None


def field_problem(field: str, problem: str) -> PydanticCustomError:
    """An error about ``field`` (dotted, within the model being validated), for a model validator."""
    return PydanticCustomError("field_problem", "{problem}", {"field": field, "problem": problem})


def load_config(path: Path, model: type[Config], context: dict[str, Any] | None = None) -> Config:
    """``path`` (JSON, or TOML by its suffix) as a ``model``; the defaults when it does not exist.

    ``context`` reaches the model's validators (the catalog passes the installed backends).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return model()
    except OSError as error:
        raise model.error_type(f"{path} cannot be read ({error.strerror or error}); {model.advice}") from None
    language = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if language == "TOML" else json.loads(text)
    except ValueError as error:  # bad UTF-8, JSON or TOML
        raise model.error_type(f"{path} is not valid {language} ({error}); {model.advice}") from None
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise model.error_type(f"{path} is damaged ({explain(error, model)}); {model.advice}") from None


def save_config(path: Path, config: ConfigModel) -> None:
    """Write ``config`` to ``path`` as JSON, atomically and under the file's lock."""
    text = json.dumps(config.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    try:
        with files.locked(path):
            files.write_text(path, text)
    except OSError as error:
        raise config.error_type(f"could not save {path}: {error.strerror or error}") from error


@contextlib.contextmanager
def edit_config(path: Path, model: type[Config]) -> Iterator[Config]:
    """The config at ``path`` to change in place, saved when the block ends without an error.

    The file stays locked from the read to the write, so a change another process makes meanwhile
    waits instead of being overwritten.
    """
    with files.locked(path):
        config = load_config(path, model)
        yield config
        save_config(path, config)


def update_config(path: Path, model: type[Config], **changes: Any) -> Config:
    """Save the config at ``path`` with ``changes``, under its lock, and return it.

    A damaged file is replaced by the defaults with the changes: whoever asks for a change was shown
    the problem when the file was read, and chose these values instead.
    """
    with files.locked(path):
        try:
            current = load_config(path, model)
        except model.error_type:
            current = model()
        updated = current.with_changes(**changes)
        save_config(path, updated)
    return updated


def explain(error: ValidationError, model: type[ConfigModel]) -> str:
    """The first problem in ``error`` as words: "server 'demo': field 'command' is missing"."""
    problem = error.errors(include_url=False)[0]
    context = problem.get("ctx", {})
    location: list[str | int] = list(problem["loc"])
    if problem["type"] == "field_problem":
        location += context["field"].split(".")
    entry = ""
    if len(location) >= 2 and location[0] in model.entry_words:
        entry = f"{model.entry_words[location[0]]} '{location[1]}'"
        location = location[2:]
    if problem["type"] == "unknown_fields":
        names = ", ".join(_dotted([*location, name]) for name in context["unknown"])
        text = f"unknown {model.field_word}(s) {names}, not one of {', '.join(context['allowed'])}"
        return f"{entry}: {text}" if entry else text
    if problem["type"] in _UNKNOWN_NAME:
        text = f"unknown {model.field_word} '{_dotted(location)}'"
        return f"{entry}: {text}" if entry else text
    if location == ["[key]"]:
        subject = "the name"
    elif location:
        subject = f"{model.field_word} '{_dotted(location)}'"
    else:
        subject = entry or "the file"
        entry = ""
    text = f"{subject} {_problem(problem)}"
    return f"{entry}: {text}" if entry else text


def _problem(problem: ErrorDetails) -> str:
    kind, value, context = problem["type"], problem["input"], problem.get("ctx", {})
    if kind == "missing":
        return "is missing"
    if kind == "literal_error":
        return f"is {value!r}, expected one of {context['expected']}"
    if kind == "value_error":
        return str(context["error"])
    if kind == "field_problem":
        return problem["msg"]
    if kind == "greater_than" and context["gt"] == 0:
        text = "must be positive"
    elif kind == "string_too_short":
        text = "must not be empty"
    elif kind in _EXPECTED:
        text = f"must be {_EXPECTED[kind]}"
    else:
        text = re.sub(r"^\w+ should ", "must ", problem["msg"])
    if value is None or isinstance(value, str | int | float):
        text += f", got {value!r}"
    return text


def _dotted(location: list[str | int]) -> str:
    """``["source", "sha256"]`` as ``source.sha256``, list positions as ``[0]``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
