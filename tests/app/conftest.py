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


TURN_TIMEOUT_MS = 120_000


@pytest.fixture
def window(qtbot):
    """The app's window as a user gets it, model loaded, with short greedy answers for speed."""
    from PySide6.QtWidgets import QApplication

    from app.gui import build_window, start_background_work
    from engine.settings import Settings, save_settings

    save_settings(Settings(max_tokens=24, temperature=0.0))
    main_window = build_window(QApplication.instance())
    qtbot.addWidget(main_window)
    main_window.show()
    with qtbot.waitSignal(main_window.chat.model_ready, timeout=TURN_TIMEOUT_MS):
        start_background_work(main_window)
    yield main_window
    main_window.close()
