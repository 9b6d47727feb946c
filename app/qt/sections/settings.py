"""The Settings section: a form over every field of ``engine.settings.Settings``.

Nothing is written until Save; saving runs off the GUI thread in ``AppContext.update_settings``, and the
form shows what was saved once ``settings_changed`` arrives, so it never shows values that failed to save.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext
from app.qt.theme import apply_theme
from engine.catalog import Catalog
from engine.settings import THEMES, Settings

# What the window's shortcuts do, shown here so they can be discovered; the window binds them.
KEYBOARD_SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Ctrl+N", "New chat"),
    ("Ctrl+Return", "Send the message"),
    ("Escape", "Stop the answer"),
    ("Ctrl+F", "Search conversations"),
    ("Ctrl+,", "Open settings"),
)

CATALOG_DEFAULT_LABEL = "Catalog default"
THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


class OptionalSpinBox(QSpinBox):
    """A whole number or "unset" (None), shown as the special value text one below the real minimum."""

    def __init__(self, minimum: int, maximum: int, unset_text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setRange(minimum - 1, maximum)
        self.setSpecialValueText(unset_text)

    def optional_value(self) -> int | None:
        return None if self.value() == self.minimum() else self.value()

    def set_optional_value(self, value: int | None) -> None:
        # A saved value above the usual range (set by hand, or on a bigger machine) widens the range
        # rather than being clamped, so saving other settings never changes it behind the user's back.
        if value is not None and value > self.maximum():
            self.setMaximum(value)
        self.setValue(self.minimum() if value is None else value)

    def stepBy(self, steps: int) -> None:
        """Stepping up from "unset" lands on the real minimum, not one step above it."""
        if self.value() == self.minimum() and steps > 0:
            self.setValue(self.minimum() + 1)
            steps -= 1
        super().stepBy(steps)


class QtSettingsSection(QWidget):
    """Edits the settings file; the window shows it as the "Settings" section."""

    title = "Settings"

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self._shown_theme = context.settings.theme
        self._saving = False

        self.model_choice = QComboBox()
        self.model_choice.setAccessibleName("Default model")
        self.model_choice.setToolTip("The model a new chat starts with.")
        self._fill_model_choice(context.catalog)

        self.threads_input = OptionalSpinBox(1, os.cpu_count() or 1, "Automatic (physical cores)")
        self.threads_input.setAccessibleName("Threads")
        self.threads_input.setToolTip("CPU threads a model uses; automatic picks the physical cores.")

        self.context_length_input = OptionalSpinBox(256, 131072, "From the catalog")
        self.context_length_input.setSingleStep(256)
        self.context_length_input.setAccessibleName("Context length")
        self.context_length_input.setToolTip(
            "How many tokens of conversation a model sees; longer needs more memory."
        )

        self.temperature_input = QDoubleSpinBox()
        self.temperature_input.setRange(0.0, 2.0)
        self.temperature_input.setSingleStep(0.05)
        self.temperature_input.setDecimals(2)
        self.temperature_input.setAccessibleName("Temperature")
        self.temperature_input.setToolTip("Lower gives steadier answers, higher more varied ones.")

        self.max_tokens_input = QSpinBox()
        self.max_tokens_input.setRange(1, 32768)
        self.max_tokens_input.setAccessibleName("Max answer tokens")
        self.max_tokens_input.setToolTip("The longest answer, in tokens, before it is cut off.")

        self.system_prompt_input = QPlainTextEdit()
        self.system_prompt_input.setAccessibleName("System prompt")
        self.system_prompt_input.setPlaceholderText("Instructions every chat starts with (optional)")
        self.system_prompt_input.setTabChangesFocus(True)
        self.system_prompt_input.setFixedHeight(self.system_prompt_input.fontMetrics().lineSpacing() * 6)

        self.theme_choice = QComboBox()
        for theme in THEMES:
            self.theme_choice.addItem(THEME_LABELS[theme], theme)
        self.theme_choice.setAccessibleName("Theme")

        self.save_button = QPushButton("&Save")
        self.save_button.setProperty("primary", True)
        self.save_button.setAccessibleName("Save settings")
        self.save_button.clicked.connect(self._on_save_clicked)

        self.restore_button = QPushButton("&Restore defaults")
        self.restore_button.setAccessibleName("Restore default settings")
        self.restore_button.setToolTip("Fill the form with the defaults; nothing changes until Save.")
        self.restore_button.clicked.connect(self._on_restore_clicked)

        self.shortcuts_table = self._build_shortcuts_table()

        self._lay_out()
        self._show_settings(context.settings)
        context.settings_changed.connect(self._on_settings_changed)
        context.catalog_changed.connect(self._on_catalog_changed)
        context.notification.connect(self._on_notification)

    def form_settings(self) -> Settings:
        """The settings the form holds now (validated only when saved); others are kept as they are."""
        return self.context.settings.model_copy(
            update={
                "default_model": self.model_choice.currentData(),
                "n_threads": self.threads_input.optional_value(),
                "context_length": self.context_length_input.optional_value(),
                "temperature": self.temperature_input.value(),
                "max_tokens": self.max_tokens_input.value(),
                "system_prompt": self.system_prompt_input.toPlainText(),
                "theme": self.theme_choice.currentData(),
            }
        )

    def _lay_out(self) -> None:
        model_form = QFormLayout()
        model_form.addRow("Default &model:", self.model_choice)
        model_form.addRow("&Threads:", self.threads_input)
        model_form.addRow("&Context length:", self.context_length_input)
        model_group = QGroupBox("Model")
        model_group.setLayout(model_form)

        answer_form = QFormLayout()
        answer_form.addRow("T&emperature:", self.temperature_input)
        answer_form.addRow("Max &answer tokens:", self.max_tokens_input)
        answer_form.addRow("System &prompt:", self.system_prompt_input)
        answer_group = QGroupBox("Answers")
        answer_group.setLayout(answer_form)

        appearance_form = QFormLayout()
        appearance_form.addRow("T&heme:", self.theme_choice)
        appearance_group = QGroupBox("Appearance")
        appearance_group.setLayout(appearance_form)

        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.save_button)

        shortcuts_layout = QVBoxLayout()
        shortcuts_layout.addWidget(self.shortcuts_table)
        shortcuts_group = QGroupBox("Keyboard shortcuts")
        shortcuts_group.setLayout(shortcuts_layout)

        page = QWidget()
        page_layout = QVBoxLayout(page)
        for group in (model_group, answer_group, appearance_group):
            page_layout.addWidget(group)
        page_layout.addLayout(buttons)
        page_layout.addWidget(shortcuts_group)
        page_layout.addStretch()

        scroll_area = QScrollArea()
        scroll_area.setWidgetResizable(True)
        scroll_area.setWidget(page)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll_area)

    def _build_shortcuts_table(self) -> QTableWidget:
        table = QTableWidget(len(KEYBOARD_SHORTCUTS), 2)
        table.setAccessibleName("Keyboard shortcuts")
        table.setHorizontalHeaderLabels(["Shortcut", "Action"])
        table.verticalHeader().hide()
        table.horizontalHeader().setDefaultAlignment(
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        )
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        for row, (keys, action) in enumerate(KEYBOARD_SHORTCUTS):
            shown_keys = QKeySequence(keys).toString(QKeySequence.SequenceFormat.NativeText)
            table.setItem(row, 0, QTableWidgetItem(shown_keys))
            table.setItem(row, 1, QTableWidgetItem(action))
        table.resizeRowsToContents()
        # Tall enough for every row, so the page scrolls instead of a second scroll bar in the table.
        rows_height = sum(table.rowHeight(row) for row in range(table.rowCount()))
        table.setFixedHeight(rows_height + table.horizontalHeader().sizeHint().height() + 4)
        return table

    def _fill_model_choice(self, catalog: Catalog) -> None:
        chosen = self.model_choice.currentData()
        self.model_choice.clear()
        self.model_choice.addItem(CATALOG_DEFAULT_LABEL, None)
        for entry in catalog:
            if entry.role == "generalist":
                self.model_choice.addItem(entry.name, entry.id)
        self._select_model(chosen)

    def _select_model(self, model_id: str | None) -> None:
        index = self.model_choice.findData(model_id)
        if index < 0:
            # Keep a saved model the catalog no longer lists rather than silently dropping it on Save.
            self.model_choice.addItem(f"{model_id} (not in the catalog)", model_id)
            index = self.model_choice.count() - 1
        self.model_choice.setCurrentIndex(index)

    def _show_settings(self, settings: Settings) -> None:
        self._select_model(settings.default_model)
        self.threads_input.set_optional_value(settings.n_threads)
        self.context_length_input.set_optional_value(settings.context_length)
        self.temperature_input.setValue(settings.temperature)
        self.max_tokens_input.setValue(settings.max_tokens)
        self.system_prompt_input.setPlainText(settings.system_prompt)
        self.theme_choice.setCurrentIndex(self.theme_choice.findData(settings.theme))

    def _on_save_clicked(self) -> None:
        saved, wanted = self.context.settings, self.form_settings()
        changes = {
            name: value for name, value in wanted.model_dump().items() if getattr(saved, name) != value
        }
        # Disabled until the save ends, so two saves never race on the same file.
        self._set_saving(True)
        self.context.update_settings(**changes)

    def _on_restore_clicked(self) -> None:
        self._show_settings(Settings())

    def _set_saving(self, saving: bool) -> None:
        self._saving = saving
        self.save_button.setEnabled(not saving)

    def _on_settings_changed(self, settings: Settings) -> None:
        self._show_settings(settings)
        if settings.theme != self._shown_theme:
            apply_theme(QApplication.instance(), settings.theme)
            self._shown_theme = settings.theme
        # Another section may change a setting too; only a save from this form is announced here.
        if self._saving:
            self._set_saving(False)
            self.context.notify_info("Settings saved")

    def _on_catalog_changed(self, catalog: Catalog) -> None:
        self._fill_model_choice(catalog)

    def _on_notification(self, kind: str, _message: str) -> None:
        # A failed save is reported as an error notification; let the user fix the form and retry.
        if kind == "error" and self._saving:
            self._set_saving(False)
