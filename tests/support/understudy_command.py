"""Run the installed `understudy` command as a user would, in the test's own data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fake_backend

UNDERSTUDY = Path(sys.executable).parent / "understudy"


def run_understudy(*args: str, stdin: str | None = None, **environment: str) -> subprocess.CompletedProcess:
    """The environment is read at call time, so the test's UNDERSTUDY_HOME applies.

    While a test has the fake model installed, the command runs with the fake backend registered.
    """
    command = [str(UNDERSTUDY)]
    if os.environ.get(fake_backend.ENVIRONMENT_FLAG):
        command = [sys.executable, fake_backend.__file__]
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **environment},
        timeout=300,
    )
