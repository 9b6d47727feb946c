from __future__ import annotations

import pytest
from tool_sandbox import make_sandbox


@pytest.fixture
def sandbox(tmp_path):
    """A granted folder with files and symlinks leading out, beside an outside folder holding a canary."""
    return make_sandbox(tmp_path)
