"""`understudy bench startup`: how soon the window is usable, measured against a bare Qt window.

Each round starts fresh processes, alternately: a bare QApplication + QMainWindow, and Understudy's
real window (`understudy app --startup-probe`). Times run from process start to the line each prints.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

BARE_WINDOW = """
import time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
window = QMainWindow()
window.show()
QTimer.singleShot(0, lambda: (print("shown", time.time(), flush=True), app.quit()))
app.exec()
"""
TIMEOUT_S = 300


def _timed_lines(command: list[str]) -> dict[str, float]:
    """Seconds from starting ``command`` to each "<event> <unix time>" line it prints."""
    started = time.time()
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL
    )
    events = {}
    for line in output.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("shown", "model-ready"):
            events[parts[0]] = float(parts[1]) - started
    if "shown" not in events:
        raise RuntimeError(f"{command[0]} never showed its window: {output.stderr.strip()[-500:]}")
    return events


def bench_startup(rounds: int = 3) -> dict:
    understudy = [str(Path(sys.executable).parent / "understudy"), "app", "--startup-probe"]
    bare = [sys.executable, "-c", BARE_WINDOW]
    bare_shown, app_shown, app_ready = [], [], []
    for round_index in range(rounds):
        order = (bare, understudy) if round_index % 2 == 0 else (understudy, bare)
        for command in order:
            events = _timed_lines(command)
            if command is bare:
                bare_shown.append(events["shown"])
            else:
                app_shown.append(events["shown"])
                app_ready.append(events.get("model-ready", float("nan")))
    bare_s = statistics.median(bare_shown)
    shown_s = statistics.median(app_shown)
    ready_s = statistics.median(app_ready)
    return {
        "rounds": rounds,
        "bare_window_s": round(bare_s, 3),
        "window_shown_s": round(shown_s, 3),
        "model_ready_s": round(ready_s, 3),
        "window_ratio": round(shown_s / bare_s, 3),
        "model_ready_ratio": round(ready_s / bare_s, 3),
    }
