"""The window as ``app.qt.app`` assembles it: sections that show the same tasks keep each other current."""

from __future__ import annotations


def test_a_discovery_refreshes_tuning_and_a_promotion_refreshes_insights(qtbot, window):
    insights, tuning = window.section("Insights"), window.section("Tuning")
    with qtbot.waitSignal(tuning.refreshed, timeout=30_000):
        insights.tasks_changed.emit()
    with qtbot.waitSignal(insights.refreshed, timeout=30_000):
        tuning.adapters_changed.emit(1)
