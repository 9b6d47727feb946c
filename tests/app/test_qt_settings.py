"""The Settings section writes settings.json, and they are there after a restart."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QPlainTextEdit

from app.qt_context import AppContext
from app.qt_settings import QtSettingsSection
from app.qt_theme import apply_theme
from engine.catalog import load_catalog
from engine.settings import Settings, load_settings


def section_from_disk(qtbot) -> QtSettingsSection:
    """A fresh context and form, as the app builds them when it starts."""
    section = QtSettingsSection(AppContext(load_catalog(), load_settings()))
    qtbot.addWidget(section)
    return section


@pytest.fixture(autouse=True)
def back_to_the_light_theme():
    yield
    QApplication.instance().setStyleSheet("")


def test_saved_settings_persist_across_a_restart(qtbot):
    section = section_from_disk(qtbot)
    section.threads_input.setValue(1)
    section.context_length_input.setValue(2048)
    section.temperature_input.setValue(0.7)
    section.system_prompt_input.setPlainText("Answer in one sentence.")
    section.theme_choice.setCurrentIndex(section.theme_choice.findData("dark"))
    section.model_choice.setCurrentIndex(section.model_choice.findData("qwen2.5-1.5b-instruct"))
    with qtbot.waitSignal(section.context.settings_changed):
        qtbot.mouseClick(section.save_button, Qt.MouseButton.LeftButton)

    saved = load_settings()
    assert saved == Settings(
        default_model="qwen2.5-1.5b-instruct",
        n_threads=1,
        context_length=2048,
        temperature=0.7,
        system_prompt="Answer in one sentence.",
        theme="dark",
    )
    assert QApplication.instance().styleSheet()

    restarted = section_from_disk(qtbot)
    assert restarted.form_settings() == saved


def test_restore_defaults_fills_the_form_without_saving(qtbot):
    section = section_from_disk(qtbot)
    section.temperature_input.setValue(1.5)
    with qtbot.waitSignal(section.context.settings_changed):
        qtbot.mouseClick(section.save_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(section.restore_button, Qt.MouseButton.LeftButton)
    assert section.form_settings() == Settings()
    assert load_settings().temperature == 1.5


def test_the_spin_boxes_keep_values_in_range(qtbot):
    section = section_from_disk(qtbot)
    section.temperature_input.setValue(9.0)
    section.max_tokens_input.setValue(0)
    assert section.temperature_input.value() == 2.0
    assert section.max_tokens_input.value() == 1
    section.threads_input.setValue(section.threads_input.minimum())
    assert section.form_settings().n_threads is None


def test_apply_theme_loads_the_style_sheets(qapp):
    assert apply_theme(qapp, "dark") == "dark"
    dark = qapp.styleSheet()
    assert apply_theme(qapp, "light") == "light"
    assert dark and qapp.styleSheet() and dark != qapp.styleSheet()


def test_every_control_has_an_accessible_name(qtbot):
    section = section_from_disk(qtbot)
    controls = section.findChildren(QAbstractSpinBox) + section.findChildren(QComboBox)
    controls += [*section.findChildren(QPlainTextEdit), section.save_button, section.restore_button]
    assert len(controls) >= 9
    assert all(control.accessibleName() for control in controls)
