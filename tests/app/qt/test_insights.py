"""The Insights section on a real log: the table shows the report's figures, pins chosen there are
saved, exports carry the tasks, discovery runs from the button, and the charts draw."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from task_log_sample import shipped_records, write_records

from app.qt.context import AppContext
from app.qt.sections.insights import COLUMNS, QtInsightsSection
from app.qt.widgets.charts import QtTimeSeriesChart
from app.qt.widgets.formatting import money, percent
from engine.catalog import load_catalog
from engine.escalation import CloudConfig, Provider, save_cloud_config
from engine.log_import import import_chat_jsonl
from engine.report import build_report
from engine.settings import Settings
from engine.store import ModelCallRecord, Store, TurnRecord, utc_now

DAY_ONE, DAY_TWO = "2026-01-01", "2026-01-02"
DISCOVERY_TIMEOUT_MS = 300_000  # the first run on a machine builds the static encoder (~1.5 min)


def _turn(store, task_id, day, prompt_tokens, completion_tokens, **fields) -> int:
    """A logged turn of ``task_id`` on ``day`` whose model call used the given tokens."""
    turn = TurnRecord(
        conversation_id=None,
        user_text=fields.pop("text", "a request"),
        model_id="smollm2",
        answer_text="an answer",
        model_calls=[
            ModelCallRecord(
                "smollm2", "llama_cpp", [], prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        ],
        **fields,
    )
    with store.transaction():
        turn_id = store.write_turn(turn)
        store.db.execute(
            "UPDATE turns SET cluster_id = ?, created_utc = ? WHERE id = ?",
            [task_id, f"{day}T10:00:00.000+00:00", turn_id],
        )
    return turn_id


def _task(store, label: str, keywords: list[str], examples: list[str]) -> int:
    now = utc_now()
    with store.transaction():
        return store.insert(
            "tasks",
            {
                "label": label,
                "source": "discovered",
                "keywords_json": json.dumps(keywords),
                "examples_json": json.dumps(examples),
                "created_utc": now,
                "updated_utc": now,
            },
        )


@pytest.fixture
def log(understudy_home, tmp_path):
    """Two tasks (one with a specialist) and a request no task holds, over two days, priced."""
    store = Store.open()
    save_cloud_config(
        CloudConfig(
            providers={"paid": Provider("paid", "https://cloud.invalid/v1", "big", 2.0, 8.0)}, active="paid"
        )
    )
    haiku = _task(store, "haiku, poem", ["haiku", "poem"], ["Write a haiku about snow."])
    sql = _task(store, "sql, query", ["sql", "query"], ["Write a SQL query for the top customers."])
    with store.transaction():
        adapter = store.insert(
            "adapters",
            {
                "task_id": haiku,
                "base_model_id": "smollm2",
                "path": str(tmp_path / "haiku.gguf"),
                "sha256": "0" * 64,
                "status": "active",
                "created_utc": utc_now(),
            },
        )
    liked = _turn(store, haiku, DAY_ONE, 100, 50, adapter_id=adapter)
    disliked = _turn(store, haiku, DAY_ONE, 200, 100, adapter_id=adapter)
    _turn(store, haiku, DAY_TWO, 300, 100)
    asked = _turn(store, sql, DAY_TWO, 50, 50)
    _turn(store, sql, DAY_TWO, 400, 200, route="cloud")
    _turn(store, None, DAY_ONE, 10, 10)
    store.set_feedback(liked, 1)
    store.set_feedback(disliked, -1)
    with store.transaction():
        store.insert(
            "escalations",
            {
                "turn_id": asked,
                "created_utc": utc_now(),
                "status": "sent",
                "reason": "low confidence",
                "task_type": "general",
                "provider": "paid",
                "model": "big",
                "user_text": "a request",
                "payload_json": "{}",
                "cost_usd": 0.003,
                "sent_utc": f"{DAY_TWO}T11:00:00+00:00",
            },
        )
    return store, haiku, sql


@pytest.fixture
def section(qtbot):
    widget = QtInsightsSection(AppContext(load_catalog(), Settings()))
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    with qtbot.waitSignal(widget.refreshed):
        widget.show()
    return widget


def _rows(section) -> dict[int | None, dict[str, str]]:
    """Task id -> column -> the text the user sees."""
    rows = {}
    for row in range(section.table.rowCount()):
        task_id = section.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
        rows[task_id] = {
            column: section.table.item(row, index).text() for index, column in enumerate(COLUMNS)
        }
    return rows


def test_the_table_shows_the_reports_figures(log, section):
    store, haiku, sql = log
    report = build_report(store)

    rows = _rows(section)
    assert list(rows) == [task.task_id for task in report.tasks] == [haiku, sql, None]
    for task in report.tasks:
        row = rows[task.task_id]
        assert row["Requests"] == f"{task.requests} ({percent(task.share)})"
        assert (row["Specialist"], row["Generalist"], row["Cloud"]) == tuple(
            str(count) for count in (task.specialist, task.generalist, task.cloud)
        )
        assert row["Satisfied"] == percent(task.satisfaction)
        assert (row["Saved"], row["Spent"]) == (money(task.saved_usd), money(task.spend_usd))
        assert row["Replaceable"] == percent(task.replaceability)
    # The same figures worked out by hand from the log above.
    assert rows[haiku]["Task"] == f"#{haiku} haiku, poem"
    haiku_row = rows[haiku]
    assert (haiku_row["Requests"], haiku_row["Specialist"], haiku_row["Generalist"]) == ("3 (50%)", "2", "1")
    assert (haiku_row["Satisfied"], haiku_row["Replaceable"]) == ("50%", "67%")
    assert rows[haiku]["Saved"] == money((600 * 2 + 250 * 8) / 1e6)
    assert (rows[sql]["Cloud"], rows[sql]["Spent"], rows[sql]["Replaceable"]) == ("1", "$0.0030", "0%")
    assert rows[None]["Task"] == "(no task)" and section.pin_box(haiku) is not None
    assert section.table.item(0, 0).toolTip() == "Keywords: haiku, poem"

    summary = section.summary.text()
    assert "<b>6</b> requests" in summary and "in 2 tasks" in summary and "vs big" in summary
    assert section.share_chart.points == [(DAY_ONE, 1.0), (DAY_TWO, 0.6667)]
    assert section.spend_chart.points == [(DAY_ONE, 0.0), (DAY_TWO, 0.003)]


def test_the_selected_task_shows_its_examples(qtbot, log, section):
    _store, _haiku, sql = log
    section.table.selectRow(1)
    assert section.selected_id() == sql
    text = section.examples.toPlainText()
    assert "Write a SQL query for the top customers." in text and "No specialist yet" in text


def test_a_pin_chosen_in_the_table_is_saved(qtbot, log, section):
    store, haiku, _sql = log
    box = section.pin_box(haiku)
    with qtbot.waitSignal(section.tasks_changed), qtbot.waitSignal(section.context.notification) as told:
        box.setCurrentIndex(box.findData("never_cloud"))
    assert told.args == ["info", f"Task {haiku}: never cloud."]
    [row] = store.db.query("SELECT pin FROM tasks WHERE id = ?", [haiku])
    assert row["pin"] == "never_cloud"
    with qtbot.waitSignal(section.refreshed):
        section.refresh()
    assert section.pin_box(haiku).currentData() == "never_cloud"
    assert section.selected_id() == haiku


def test_export_writes_markdown_and_html_with_the_task_labels(qtbot, log, section, tmp_path):
    _store, haiku, sql = log
    for kind, name in (("markdown", "report.md"), ("html", "report.html")):
        with qtbot.waitSignal(section.exported) as written:
            section.export(tmp_path / name, kind)
        assert written.args == [str(tmp_path / name)]
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"| #{haiku} haiku, poem | 3 | 50% | 2 | 1 | 0 | 50% |" in markdown
    assert f"#{sql} sql, query" in markdown
    assert page.startswith("<!doctype html>")
    assert f"<td>#{haiku} haiku, poem</td>" in page and f"<td>#{sql} sql, query</td>" in page


def test_an_empty_log_says_what_to_do(section):
    assert section.summary.text() == "Nothing logged yet. Chat for a while, then Discover tasks."
    assert section.table.rowCount() == 0
    assert section.share_chart.points == [] and section.spend_chart.points == []


def test_discover_tasks_from_the_button(qtbot, section, tmp_path):
    records = shipped_records()[::5]  # 70 requests, ten from each of the seven tasks
    store = Store.open()
    import_chat_jsonl(store, write_records(tmp_path / "sample.jsonl", records))
    notes = []
    section.context.notification.connect(lambda kind, message: notes.append((kind, message)))

    with qtbot.waitSignal(section.discovered, timeout=DISCOVERY_TIMEOUT_MS) as found:
        qtbot.mouseClick(section.discover_button, Qt.MouseButton.LeftButton)
        assert not section.discover_button.isEnabled() and not section.busy.isHidden()
    result = found.args[0]
    assert section.discover_button.isEnabled() and section.busy.isHidden()
    assert result.n_requests == 70 and result.n_clusters >= 3
    assert notes[-1] == (
        "info",
        f"{result.n_clusters} tasks from 70 requests, outliers {result.outlier_share_after:.0%}.",
    )
    tasks = {row["id"]: row["label"] for row in store.db.query("SELECT id, label FROM tasks")}
    assert sorted(tasks) == sorted(cluster.task_id for cluster in result.clusters)
    qtbot.waitUntil(lambda: set(tasks) <= set(_rows(section)))
    assert all(_rows(section)[task_id]["Task"] == f"#{task_id} {label}" for task_id, label in tasks.items())


def test_discovery_on_too_small_a_log_says_why(qtbot, section):
    _turn(Store.open(), None, DAY_ONE, 10, 10)
    with qtbot.waitSignal(section.context.notification, timeout=DISCOVERY_TIMEOUT_MS) as told:
        qtbot.mouseClick(section.discover_button, Qt.MouseButton.LeftButton)
    assert told.args[0] == "error" and "at least 10" in told.args[1]
    assert section.discover_button.isEnabled()


def _series_pixels(chart: QtTimeSeriesChart) -> int:
    """Pixels drawn in the series colour (the palette's highlight)."""
    image = chart.grab().toImage()
    colour = chart.palette().color(QPalette.ColorRole.Highlight).rgb()
    return sum(
        1
        for y in range(0, image.height(), 2)
        for x in range(0, image.width(), 2)
        if image.pixel(x, y) == colour
    )


@pytest.mark.parametrize("kind", ["line", "bars"])
def test_the_chart_draws_its_series(qtbot, kind):
    chart = QtTimeSeriesChart("Local share", kind, percent, y_max=1.0)
    qtbot.addWidget(chart)
    chart.resize(320, 180)
    assert _series_pixels(chart) == 0

    chart.set_series([("2026-01-01", 0.5), ("2026-01-02", 0.8), ("2026-01-03", 1.0)])

    assert _series_pixels(chart) > 30
    assert chart.accessibleDescription() == "3 points; last 2026-01-03: 100%"
    background = chart.palette().color(QPalette.ColorRole.Window)
    image = chart.grab().toImage()
    assert len({image.pixel(x, 90) for x in range(0, 320, 4)} - {background.rgb()}) >= 2


def test_the_chart_takes_numbered_points_and_a_colour_scheme(qtbot):
    """A loss curve by step, in a dark palette: the series still stands out from the background."""
    chart = QtTimeSeriesChart("Loss", "line", "{:.2f}".format, x_format="{:.0f}".format)
    qtbot.addWidget(chart)
    palette = chart.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor("#1c1d21"))
    palette.setColor(QPalette.ColorRole.WindowText, QColor("#e6e7ea"))
    chart.setPalette(palette)
    chart.resize(320, 180)
    chart.set_series([(step, 2.5 / (1 + step / 20)) for step in range(0, 200, 5)])
    assert _series_pixels(chart) > 30
    assert chart.accessibleDescription() == "40 points; last 195: 0.23"
