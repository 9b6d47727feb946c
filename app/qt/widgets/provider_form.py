"""The cloud provider form: add or change an OpenAI-compatible endpoint, its prices and its key.

The key goes straight to the OS keychain through the engine (which refuses plaintext keyrings); it is
never shown again, written to a file or kept in a widget after saving.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
)

from app.qt.context import AppContext
from app.qt.workers import run_in_background

NO_PRICE = -1.0  # the spin boxes' "unknown" value


def _price_box(accessible_name: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(NO_PRICE, 1000.0)
    box.setDecimals(3)
    box.setSpecialValueText("unknown")
    box.setValue(NO_PRICE)
    box.setSuffix(" USD / 1M tokens")
    box.setAccessibleName(accessible_name)
    return box


class QtProviderForm(QGroupBox):
    saved = Signal(str)  # provider name

    def __init__(self, context: AppContext, parent=None):
        super().__init__("Cloud provider", parent)
        from engine.escalation import PRESETS

        self.context = context
        self.preset = QComboBox()
        self.preset.setAccessibleName("Preset")
        self.preset.addItem("Custom (self-hosted or other)", None)
        for name in PRESETS:
            self.preset.addItem(name, name)
        self.preset.currentIndexChanged.connect(self._on_preset_chosen)
        self.name = QLineEdit()
        self.name.setAccessibleName("Provider name")
        self.base_url = QLineEdit()
        self.base_url.setAccessibleName("Base URL")
        self.base_url.setPlaceholderText("https://…/v1")
        self.model = QLineEdit()
        self.model.setAccessibleName("Model")
        self.price_in = _price_box("Price per million input tokens")
        self.price_out = _price_box("Price per million output tokens")
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setAccessibleName("API key")
        self.key.setPlaceholderText("Stored in the system keychain; leave empty to keep or for none")
        self.save_button = QPushButton("Save and use")
        self.save_button.setProperty("primary", "true")
        self.save_button.setAccessibleName("Save provider and use it")
        self.save_button.clicked.connect(self._on_save)
        form = QFormLayout(self)
        form.addRow("Preset:", self.preset)
        form.addRow("Name:", self.name)
        form.addRow("Base URL:", self.base_url)
        form.addRow("Model:", self.model)
        form.addRow("Input price:", self.price_in)
        form.addRow("Output price:", self.price_out)
        form.addRow("API key:", self.key)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        form.addRow(buttons)

    def show_provider(self, provider) -> None:
        """Fill the form with a configured provider (never its key)."""
        self.name.setText(provider.name)
        self.base_url.setText(provider.base_url)
        self.model.setText(provider.model)
        self.price_in.setValue(
            NO_PRICE if provider.price_in_per_million is None else provider.price_in_per_million
        )
        self.price_out.setValue(
            NO_PRICE if provider.price_out_per_million is None else provider.price_out_per_million
        )

    def _on_preset_chosen(self) -> None:
        from engine.escalation import PRESETS

        preset = self.preset.currentData()
        if preset is None:
            return
        base_url, model = PRESETS[preset]
        self.name.setText(preset)
        self.base_url.setText(base_url)
        self.model.setText(model)

    def _on_save(self) -> None:
        name, base_url, model = (
            self.name.text().strip(),
            self.base_url.text().strip(),
            self.model.text().strip(),
        )
        if not (name and base_url and model):
            self.context.notify_error("A provider needs a name, a base URL and a model.")
            return
        prices = [None if box.value() == NO_PRICE else box.value() for box in (self.price_in, self.price_out)]
        key = self.key.text()
        self.key.clear()

        def save() -> str:
            from engine.escalation import Provider, edit_cloud_config, store_key

            if key.strip():
                store_key(name, key)
            with edit_cloud_config() as config:
                config.providers[name] = Provider(name, base_url, model, *prices)
                config.active = name
            return name

        def done(saved_name: str) -> None:
            self.context.notify_info(f"Escalations now go to {saved_name} ({model}).")
            self.saved.emit(saved_name)

        run_in_background(save, done, self.context.notify_error)
