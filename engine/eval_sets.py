"""Labelled evaluation sets shipped in resources/ as JSON Lines, read the same way by every bench."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import UnderstudyError


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; a broken file is a clear error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UnderstudyError(f"Cannot read the {what} {path}: {error}.") from error
    found = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise UnderstudyError(f"{path}, line {number} is not JSON ({error}).") from error
        found = True
        yield number, value
    if not found:
        raise UnderstudyError(f"The {what} {path} is empty.")
