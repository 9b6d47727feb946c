"""Light and dark looks: one shipped Qt style sheet each, chosen by the user or by the system.

The sheets live in ``resources/`` so they can be tuned without touching code; a missing or unreadable
sheet leaves the platform's own look rather than stopping the app. They are written for the Fusion
style, the one that looks the same on every platform and draws what a sheet leaves out (combo and spin
box arrows) in the sheet's colours, so applying a sheet also selects Fusion.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine import paths

log = logging.getLogger(__name__)


def _sheet_name(app: QApplication, theme: str) -> str:
    """The sheet a theme setting means: "system" follows the desktop's colour scheme."""
    if theme != "system":
        return theme
    return "dark" if app.styleHints().colorScheme() == Qt.ColorScheme.Dark else "light"


def apply_theme(app: QApplication, theme: str) -> str:
    """Style the whole app for ``theme`` ("system", "light" or "dark").

    Returns the sheet applied, "light" or "dark", or "none" when its file could not be read.
    """
    name = _sheet_name(app, theme)
    sheet_path = paths.shipped_file(f"resources/{name}.qss")
    try:
        style_sheet = sheet_path.read_text(encoding="utf-8")
    except OSError as error:
        log.warning("style sheet %s not readable (%s); using the platform's look", sheet_path, error)
        app.setStyleSheet("")
        return "none"
    if app.style().name() != "fusion":
        app.setStyle("Fusion")
    app.setStyleSheet(style_sheet)
    return name
