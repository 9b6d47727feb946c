"""What every section of the window shares: the catalog, the settings and one way to tell the user.

Sections receive an ``AppContext`` and talk to each other only through its signals, so a section can
be added (Tasks, Escalations, Tuning, ...) without the others knowing.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QSettings, Signal

from app.qt.workers import run_in_background
from engine import paths
from engine.catalog import Catalog, load_catalog
from engine.errors import UnderstudyError
from engine.settings import Settings, update_settings

WINDOW_STATE_FILE = "window.ini"


def window_state() -> QSettings:
    """Geometry and the last conversation, kept in the data dir beside everything else."""
    return QSettings(str(paths.data_dir() / WINDOW_STATE_FILE), QSettings.Format.IniFormat)


class AppContext(QObject):
    settings_changed = Signal(object)  # Settings, after they were saved
    catalog_changed = Signal(object)  # Catalog, after a reload (a download, a new default)
    notification = Signal(str, str)  # kind ("error" | "info"), message
    actionable_notification = Signal(str, str, object)  # message, action text, callback

    def __init__(self, catalog: Catalog, settings: Settings):
        super().__init__()
        self.catalog = catalog
        self.settings = settings

    def notify_error(self, message: str) -> None:
        self.notification.emit("error", message)

    def notify_info(self, message: str) -> None:
        self.notification.emit("info", message)

    def notify_with_action(self, message: str, action_text: str, action) -> None:
        """News the user can act on, such as "Conversation deleted [Undo]"."""
        self.actionable_notification.emit(message, action_text, action)

    def update_settings(self, **changes) -> None:
        """Validate and save changed settings off the GUI thread; ``settings_changed`` follows."""
        try:
            self.settings.with_changes(**changes)
        except UnderstudyError as error:
            self.notify_error(str(error))
            return

        def saved(updated: Settings) -> None:
            self.settings = updated
            self.settings_changed.emit(updated)

        run_in_background(lambda: update_settings(**changes), saved, self.notify_error)

    def reload_catalog(self) -> None:
        def loaded(catalog: Catalog) -> None:
            self.catalog = catalog
            self.catalog_changed.emit(catalog)

        run_in_background(load_catalog, loaded, self.notify_error)
