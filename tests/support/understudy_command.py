"""Run the installed `understudy` command as a user would, in the test's own data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

UNDERSTUDY = Path(sys.executable).parent / "understudy"


def run_understudy(*args: str, stdin: str | None = None, **environment: str) -> subprocess.CompletedProcess:
    """The environment is read at call time, so the test's UNDERSTUDY_HOME applies."""
    return subprocess.run(
        [str(UNDERSTUDY), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **environment},
        timeout=300,
    )
