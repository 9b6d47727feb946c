"""The Settings section and the themes, driven as a user would, against the real settings file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QWidget,
)

from app.qt.context import AppContext
from app.qt.sections.settings import KEYBOARD_SHORTCUTS, QtSettingsSection
from app.qt.theme import apply_theme
from app.qt.workers import job_pool
from engine import paths
from engine.catalog import load_catalog
from engine.settings import Settings, load_settings

INPUT_TYPES = (QComboBox, QSpinBox, QDoubleSpinBox, QPlainTextEdit, QPushButton, QTableWidget)


@pytest.fixture(autouse=True)
def no_job_left_running():
    yield
    assert job_pool().waitForDone(10000)


@pytest.fixture(autouse=True)
def plain_style_sheet(qapp):
    """Saving a theme styles the whole app; later tests start from no style sheet again."""
    yield
    qapp.setStyleSheet("")


def open_settings(qtbot) -> tuple[AppContext, QtSettingsSection]:
    """The section as the app builds it at start-up: catalog and settings read from disk."""
    context = AppContext(load_catalog(), load_settings())
    section = QtSettingsSection(context)
    qtbot.addWidget(section)
    return context, section


def save(qtbot, context: AppContext, section: QtSettingsSection) -> Settings:
    with qtbot.waitSignal(context.settings_changed, timeout=10000) as saved:
        qtbot.mouseClick(section.save_button, Qt.MouseButton.LeftButton)
    return saved.args[0]


def test_saved_settings_persist_across_a_restart(qtbot):
    context, section = open_settings(qtbot)
    notices: list[tuple[str, str]] = []
    context.notification.connect(lambda kind, message: notices.append((kind, message)))
    threads = os.cpu_count() or 1
    generalist = next(entry for entry in context.catalog if entry.role == "generalist")

    section.model_choice.setCurrentIndex(section.model_choice.findData(generalist.id))
    section.threads_input.setValue(threads)
    section.temperature_input.setValue(0.75)
    section.system_prompt_input.setPlainText("Answer in one sentence.")
    section.theme_choice.setCurrentIndex(section.theme_choice.findData("dark"))
    saved = save(qtbot, context, section)

    on_disk = load_settings()
    assert on_disk == saved == context.settings
    assert on_disk.default_model == generalist.id
    assert on_disk.n_threads == threads
    assert on_disk.temperature == 0.75
    assert on_disk.system_prompt == "Answer in one sentence."
    assert on_disk.theme == "dark"
    assert ("info", "Settings saved") in notices
    assert section.save_button.isEnabled()
    assert QApplication.instance().styleSheet(), "the dark theme is applied as soon as it is saved"

    _, restarted = open_settings(qtbot)
    assert restarted.form_settings() == on_disk
    assert restarted.threads_input.value() == threads
    assert restarted.temperature_input.value() == 0.75
    assert restarted.system_prompt_input.toPlainText() == "Answer in one sentence."
    assert restarted.theme_choice.currentData() == "dark"


def test_unset_values_show_their_meaning_and_save_as_none(qtbot):
    context, section = open_settings(qtbot)
    section.threads_input.set_optional_value(2)
    section.context_length_input.set_optional_value(4096)
    save(qtbot, context, section)
    assert (load_settings().n_threads, load_settings().context_length) == (2, 4096)

    section.threads_input.set_optional_value(None)
    section.context_length_input.set_optional_value(None)
    assert section.threads_input.text() == "Automatic (physical cores)"
    assert section.context_length_input.text() == "From the catalog"
    section.model_choice.setCurrentIndex(section.model_choice.findText("Catalog default"))
    save(qtbot, context, section)
    on_disk = load_settings()
    assert (on_disk.n_threads, on_disk.context_length, on_disk.default_model) == (None, None, None)


def test_stepping_up_from_unset_gives_the_smallest_real_value(qtbot):
    _, section = open_settings(qtbot)
    section.context_length_input.set_optional_value(None)
    section.context_length_input.stepUp()
    assert section.context_length_input.optional_value() == 256
    section.context_length_input.stepDown()
    assert section.context_length_input.optional_value() is None


def test_only_generalists_are_offered_as_the_default_model(qtbot):
    context, section = open_settings(qtbot)
    offered = [section.model_choice.itemData(index) for index in range(section.model_choice.count())]
    generalists = [entry.id for entry in context.catalog if entry.role == "generalist"]
    assert offered == [None, *generalists]


def test_restore_defaults_fills_the_form_but_saves_nothing_until_save(qtbot):
    context, section = open_settings(qtbot)
    section.temperature_input.setValue(1.5)
    section.max_tokens_input.setValue(2048)
    save(qtbot, context, section)

    qtbot.mouseClick(section.restore_button, Qt.MouseButton.LeftButton)
    assert section.form_settings() == Settings()
    assert load_settings().max_tokens == 2048

    save(qtbot, context, section)
    assert load_settings() == Settings()


def test_the_form_refuses_values_out_of_range(qtbot):
    context, section = open_settings(qtbot)
    section.temperature_input.setValue(5.0)
    section.max_tokens_input.setValue(0)
    section.context_length_input.setValue(10_000_000)
    section.threads_input.setValue(100_000)
    section.max_tokens_input.selectAll()
    qtbot.keyClicks(section.max_tokens_input, "99999")
    assert section.temperature_input.value() == 2.0
    assert section.max_tokens_input.value() <= 32768
    assert section.context_length_input.value() == 131072
    assert section.threads_input.value() == (os.cpu_count() or 1)

    saved = save(qtbot, context, section)
    assert load_settings() == saved
    assert saved.temperature == 2.0
    assert saved.max_tokens in range(1, 32769)


def test_a_value_the_engine_rejects_is_reported_and_not_saved(qtbot):
    context, section = open_settings(qtbot)
    errors: list[str] = []
    context.notification.connect(lambda kind, message: errors.append(message) if kind == "error" else None)
    section.theme_choice.addItem("Neon", "neon")
    section.theme_choice.setCurrentIndex(section.theme_choice.findData("neon"))

    qtbot.mouseClick(section.save_button, Qt.MouseButton.LeftButton)
    assert errors and "theme" in errors[0]
    assert section.save_button.isEnabled(), "the user can fix the form and save again"
    assert load_settings() == Settings()


def test_every_control_has_an_accessible_name_and_every_field_a_label(qtbot):
    _, section = open_settings(qtbot)
    controls = [widget for widget in section.findChildren(QWidget) if isinstance(widget, INPUT_TYPES)]
    assert len(controls) >= 10
    unnamed = [type(widget).__name__ for widget in controls if not widget.accessibleName()]
    assert unnamed == []

    labelled = {label.buddy() for label in section.findChildren(QLabel) if label.buddy() is not None}
    fields = [
        section.model_choice,
        section.threads_input,
        section.context_length_input,
        section.temperature_input,
        section.max_tokens_input,
        section.system_prompt_input,
        section.theme_choice,
    ]
    assert all(field in labelled for field in fields)


def test_keyboard_shortcuts_are_listed_read_only(qtbot):
    _, section = open_settings(qtbot)
    table = section.shortcuts_table
    assert table.rowCount() == len(KEYBOARD_SHORTCUTS)
    assert [table.item(row, 1).text() for row in range(table.rowCount())] == [
        action for _, action in KEYBOARD_SHORTCUTS
    ]
    assert table.editTriggers() == QTableWidget.EditTrigger.NoEditTriggers


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_apply_theme_sets_the_named_sheet_and_qt_can_parse_it(qtbot, qapp, qtlog, theme):
    assert apply_theme(qapp, theme) == theme
    assert qapp.styleSheet().strip()
    _, section = open_settings(qtbot)
    section.show()
    qtbot.waitExposed(section)
    unparsed = [record.message for record in qtlog.records if "parse" in record.message.lower()]
    assert unparsed == []


def test_system_theme_follows_the_desktop_colour_scheme(qapp):
    expected = "dark" if qapp.styleHints().colorScheme() == Qt.ColorScheme.Dark else "light"
    assert apply_theme(qapp, "system") == expected


def test_a_missing_style_sheet_falls_back_to_no_sheet(qapp, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "shipped_file", lambda relative: Path(tmp_path / "missing" / relative))
    qapp.setStyleSheet("QWidget { color: red; }")
    assert apply_theme(qapp, "dark") == "none"
    assert qapp.styleSheet() == ""
