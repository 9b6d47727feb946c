"""Start the desktop app: build the window, show it at once, then load the model in the background.

Also the self-test (`understudy app --self-test`) and the start-up probe used by `bench startup`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.qt.context import AppContext, window_state
from app.qt.main_window import QtMainWindow
from app.qt.sections.chat import QtChatSection
from app.qt.sections.escalations import QtEscalationsSection
from app.qt.sections.gateway import QtGatewaySection
from app.qt.sections.insights import QtInsightsSection
from app.qt.sections.models import QtModelsSection
from app.qt.sections.settings import QtSettingsSection
from app.qt.sections.tools import QtToolsSection
from app.qt.sections.tuning import QtTuningSection
from app.qt.theme import apply_theme
from app.qt.workers import run_in_background, thread_store
from engine.catalog import load_catalog
from engine.errors import UnderstudyError
from engine.settings import Settings, load_settings

SELF_TEST_PROMPT = "Name three colours."
SELF_TEST_TIMEOUT_MS = 300_000


def build_window(app: QApplication) -> QtMainWindow:
    """The main window with its sections; nothing slow happens here."""
    settings_problem = None
    try:
        settings = load_settings()
    except UnderstudyError as error:
        settings, settings_problem = Settings(), str(error)
    context = AppContext(load_catalog(), settings)
    apply_theme(app, settings.theme)
    # A "system" theme follows the desktop when it switches between light and dark.
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: apply_theme(app, context.settings.theme))
    window = QtMainWindow(context)
    window.chat = QtChatSection(context)
    window.add_section(window.chat)
    window.escalations = QtEscalationsSection(context)
    window.add_section(window.escalations)
    insights, tuning = QtInsightsSection(context), QtTuningSection(context)
    window.add_section(insights)
    window.add_section(QtToolsSection(context))
    window.add_section(QtGatewaySection(context))
    window.add_section(tuning)
    # Both list the tasks: a discovery or a pin changes Tuning's list, a promotion Insights' specialists.
    # (Routers need no signal: each turn's router reads the tasks and adapters from the database.)
    insights.tasks_changed.connect(lambda: tuning.refresh())
    tuning.adapters_changed.connect(lambda _task_id: insights.refresh())
    window.add_section(QtModelsSection(context))
    window.add_section(QtSettingsSection(context))
    window.chat.answer_speed.connect(window.show_speed)

    def review(escalation_id: int) -> None:
        window.show_section("Escalations")
        window.escalations.select(escalation_id)

    window.chat.escalation_proposed.connect(review)
    window.chat.cloud_suggested.connect(
        lambda escalation_id, reason: context.notify_with_action(
            f"Proposed for the cloud ({reason}); nothing is sent unless you approve.",
            "Review",
            lambda: review(escalation_id),
        )
    )

    def cloud_answered(result) -> None:
        window.show_locality(cloud=True)
        if result.conversation_id is not None and result.conversation_id == window.chat.conversation_id:
            window.chat.open_conversation(result.conversation_id)

    window.escalations.escalation_sent.connect(cloud_answered)
    window.chat.turn_finished.connect(lambda _result: window.show_locality(cloud=False))
    if settings_problem:
        context.notify_error(f"{settings_problem}. Using the default settings for now.")
    return window


def start_background_work(window: QtMainWindow) -> None:
    """After the window is up: load the model, fill the conversation list, reopen the last one."""
    chat = window.chat
    chat.load_selected_model()
    last = window_state().value("last_conversation")

    def purged(_count: int) -> None:
        chat.conversation_list.refresh()
        if last is not None:
            chat.open_conversation(int(last))

    # Conversations deleted in an earlier session can no longer be undone: remove them for good.
    run_in_background(lambda: thread_store().purge_deleted(), purged, window.context.notify_error)


def run_app(self_test: bool = False, screenshot: Path | None = None, startup_probe: bool = False) -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("Understudy")
    app.setDesktopFileName("understudy")
    window = build_window(app)
    window.show()
    if startup_probe:
        _probe_startup(window)
    QTimer.singleShot(0, lambda: start_background_work(window))
    if self_test:
        test = SelfTest(window, screenshot)
        QTimer.singleShot(0, test.start)
    code = app.exec()
    return test.exit_code if self_test else code


def _probe_startup(window: QtMainWindow) -> None:
    """Print when the window is shown and when the model is ready, for `bench startup`."""
    QTimer.singleShot(0, lambda: print("shown", time.time(), flush=True))

    def ready(_model_id: str) -> None:
        print("model-ready", time.time(), flush=True)
        window.close()

    window.chat.model_ready.connect(ready)


class SelfTest:
    """Send one prompt through the real window and model; exit 0 when a streamed answer arrives."""

    def __init__(self, window: QtMainWindow, screenshot: Path | None):
        self.window = window
        self.screenshot = screenshot
        self.exit_code = 1
        self.tokens = 0

    def start(self) -> None:
        chat = self.window.chat
        chat.turn_finished.connect(self._on_finished)
        chat.turn_failed.connect(self._on_failed)
        chat.new_chat()
        chat.input.setPlainText(SELF_TEST_PROMPT)
        chat.send()
        chat.current_job.signals.token.connect(self._on_token)
        QTimer.singleShot(SELF_TEST_TIMEOUT_MS, lambda: self._fail("no answer within 5 minutes"))

    def _on_token(self, _piece: str) -> None:
        self.tokens += 1

    def _on_finished(self, result) -> None:
        if not result.answer.strip() or self.tokens == 0:
            self._fail("the model answered with nothing")
            return
        print(
            f"self-test passed: {result.model_id} streamed {self.tokens} pieces "
            f"({result.completion.completion_tokens} tokens, "
            f"{result.completion.decode_tokens_per_second or 0:.1f} tok/s); turn {result.turn_id} logged"
        )
        # Let the last render and the status bar settle before the picture is taken.
        QTimer.singleShot(300, self._finish)

    def _finish(self) -> None:
        if self.screenshot is not None:
            if not self.window.grab().save(str(self.screenshot)):
                self._fail(f"could not save the screenshot to {self.screenshot}")
                return
            print(f"screenshot saved to {self.screenshot}")
        self.exit_code = 0
        self.window.close()

    def _on_failed(self, message: str) -> None:
        self._fail(message)

    def _fail(self, message: str) -> None:
        if self.exit_code == 0:
            return
        print(f"self-test failed: {message}", file=sys.stderr)
        self.exit_code = 1
        self.window.close()
