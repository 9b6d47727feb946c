"""Qt tests run offscreen, and none may leave a worker thread running behind it."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def python_heartbeat(qapp):
    """Run a Python slot every 200 ms so pytest-timeout's SIGALRM is handled inside Qt's event loop.

    Python runs signal handlers only between its own bytecodes; a qtbot wait with nothing arriving
    would otherwise sit in C++ past the per-test time limit.
    """
    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(200)
    yield
    timer.stop()


@pytest.fixture(autouse=True)
def no_worker_left_running():
    yield
    if "app.qt.workers" not in sys.modules:
        return
    from app.qt.workers import job_pool

    assert job_pool().waitForDone(60_000), "a background job is still running after the test"
    assert job_pool().activeThreadCount() == 0


TURN_TIMEOUT_MS = 120_000


def open_window(qtbot):
    """The app's window as a user gets it, model loaded, with short greedy answers for speed."""
    from PySide6.QtWidgets import QApplication

    from app.qt.app import build_window, start_background_work
    from engine.settings import Settings, save_settings

    save_settings(Settings(max_tokens=24, temperature=0.0))
    main_window = build_window(QApplication.instance())
    qtbot.addWidget(main_window)
    main_window.show()
    with qtbot.waitSignal(main_window.chat.model_ready, timeout=TURN_TIMEOUT_MS):
        start_background_work(main_window)
    return main_window


@pytest.fixture
def window(qtbot, fake_model):
    """The window on the fake model: the GUI's logic with answers from the test's script."""
    main_window = open_window(qtbot)
    yield main_window
    main_window.close()


@pytest.fixture
def real_window(qtbot):
    """The window on the real default model, for the turns that show the whole app works."""
    main_window = open_window(qtbot)
    yield main_window
    main_window.close()
