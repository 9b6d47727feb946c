"""Qt tests run offscreen, and none may leave a worker thread running behind it."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def no_worker_left_running():
    yield
    if "app.qt_workers" not in sys.modules:
        return
    from app.qt_workers import job_pool

    assert job_pool().waitForDone(60_000), "a background job is still running after the test"
    assert job_pool().activeThreadCount() == 0
