"""Where Understudy keeps its data and finds the files it ships with."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "understudy"
HOME_VARIABLE = "UNDERSTUDY_HOME"
CACHE_VARIABLE = "UNDERSTUDY_CACHE"
_REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
_INSTALLED_SHARE = Path(sys.prefix) / "share" / APP_NAME


def data_dir() -> Path:
    """The one folder holding the database, settings, user catalog overrides and assembled models.

    ``UNDERSTUDY_HOME`` overrides the platform's user data dir, which is how tests stay isolated.
    """
    override = os.environ.get(HOME_VARIABLE)
    if override:
        path = Path(override).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Derived files that are the same for every user and can be rebuilt from what is installed (the
    distilled encoder, dequantised base models): the platform's user cache dir, or ``UNDERSTUDY_CACHE``.

    Kept apart from the data dir so that deleting it loses nothing but time, and so tests, which get a
    fresh data dir each, still build these once.
    """
    override = os.environ.get(CACHE_VARIABLE)
    if override:
        path = Path(override).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path() -> Path:
    return data_dir() / "understudy.db"


def shipped_file(relative: str) -> Path:
    """A file shipped with the app: the repository root in a checkout, ``share/understudy`` when installed."""
    for root in (_REPOSITORY_ROOT, _INSTALLED_SHARE):
        candidate = root / relative
        if candidate.exists():
            return candidate
    return _REPOSITORY_ROOT / relative
