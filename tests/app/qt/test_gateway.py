"""The Gateway section: one switch serves the models, a client's request shows up, switching off stops."""

from __future__ import annotations

import sys

import fake_backend
import openai
from cloud_stand_in import free_port

from app.qt.context import AppContext
from app.qt.sections.gateway import QtGatewaySection
from engine.catalog import load_catalog
from engine.gateway_token import gateway_token
from engine.settings import Settings

START_TIMEOUT_MS = 60_000


def fake_understudy(arguments: list[str]) -> tuple[str, list[str]]:
    """`understudy` with the fake model registered, so the child process answers from the test's script."""
    return sys.executable, [fake_backend.__file__, *arguments]


def test_switching_on_serves_shows_clients_and_switching_off_stops(qtbot, fake_model):
    section = QtGatewaySection(AppContext(load_catalog(), Settings()), fake_understudy, free_port())
    qtbot.addWidget(section)
    try:
        with qtbot.waitSignal(section.listening, timeout=START_TIMEOUT_MS) as listening:
            section.switch.setChecked(True)
        url = listening.args[0]
        assert url == f"http://127.0.0.1:{section.port.value()}/v1"
        assert section.url_field.text() == url
        assert section.token_field.text() == gateway_token()
        assert f"OPENAI_BASE_URL={url}" in section.snippet.toPlainText()
        assert gateway_token() not in section.snippet.toPlainText()  # hidden like the token field
        assert f"OPENAI_API_KEY={gateway_token()}" in section.snippet_text()
        section.show_token.setChecked(True)
        assert f"OPENAI_API_KEY={gateway_token()}" in section.snippet.toPlainText()

        fake_model.script("Hello from the gateway")
        client = openai.OpenAI(base_url=url, api_key=section.token_field.text(), max_retries=0)
        stream = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        client.close()

        with qtbot.waitSignal(section.refreshed):
            section.refresh()
        assert section.clients.rowCount() == 1
        assert section.clients.item(0, 0).text() == "OpenAI"
        assert section.clients.item(0, 1).text() == "1"
        assert section.clients.item(0, 4).text() == "1"  # answered by the generalist
        assert section.recent.rowCount() == 1
        assert section.recent.item(0, 1).text() == "OpenAI"
        assert section.recent.item(0, 3).text() == fake_model.id
        assert section.recent.item(0, 4).text() == "generalist"

        with qtbot.waitSignal(section.stopped) as stopped:
            section.switch.setChecked(False)
        assert stopped.args[0] == ""
        assert not section.running()
        assert section.port.isEnabled() and not section.copy_url_button.isEnabled()
    finally:
        section.shut_down()
