"""``QtTimeSeriesChart``: a small QPainter chart (PySide6-Essentials has no QtCharts) drawn in the
palette's colours, so it reads in the light and the dark theme alike. Insights charts traffic by day with
it, Tuning the training loss by step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QWidget


def _blend(foreground: QColor, background: QColor, amount: float) -> QColor:
    """``amount`` of the way from ``background`` to ``foreground``."""
    return QColor(
        round(background.red() + (foreground.red() - background.red()) * amount),
        round(background.green() + (foreground.green() - background.green()) * amount),
        round(background.blue() + (foreground.blue() - background.blue()) * amount),
    )


def _nice_step(span: float, ticks: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts ``span`` into about ``ticks``."""
    raw = span / max(1, ticks)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


class QtTimeSeriesChart(QWidget):
    """A line or bar chart of (x, value) points, x a label (a day) or a number (a training step).

    Labelled points are spaced evenly in the order given; numbered points are placed by value. Axes,
    grid and text use the widget's palette, the series its highlight colour.
    """

    def __init__(
        self,
        title: str,
        kind: str = "line",
        value_format: Callable[[float], str] = "{:g}".format,
        x_format: Callable[[float | str], str] = str,
        y_max: float | None = None,
        empty_text: str = "No data yet",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        if kind not in ("line", "bars"):
            raise ValueError(f"a chart is 'line' or 'bars', not {kind!r}")
        self.title = title
        self.kind = kind
        self.value_format = value_format
        self.x_format = x_format
        self.y_max = y_max
        self.empty_text = empty_text
        self.points: list[tuple[float | str, float]] = []
        self.setAccessibleName(title)
        self.setMinimumSize(220, 140)

    def set_series(self, points: Sequence[tuple[float | str, float]], y_max: float | None = None) -> None:
        """Show ``points``; ``y_max`` fixes the top of the value axis (1.0 for a share), else it fits."""
        self.points = list(points)
        if y_max is not None:
            self.y_max = y_max
        if self.points:
            x, value = self.points[-1]
            self.setAccessibleDescription(
                f"{len(self.points)} points; last {self.x_format(x)}: {self.value_format(value)}"
            )
        else:
            self.setAccessibleDescription(self.empty_text)
        self.update()

    def _value_axis(self) -> tuple[float, float, float]:
        """Bottom, top and step of the value axis."""
        values = [value for _, value in self.points]
        low = min(0.0, min(values, default=0.0))
        high = self.y_max if self.y_max is not None else max(values, default=0.0)
        if high <= low:
            high = low + 1.0
        step = _nice_step(high - low, 4)
        if self.y_max is None:
            high = math.ceil(high / step - 1e-9) * step
        low = math.floor(low / step + 1e-9) * step
        return low, high, step

    def _x_positions(self, left: float, width: float) -> tuple[list[float], float]:
        """Each point's x in pixels, and the width of one slot (for bars)."""
        count = len(self.points)
        if all(isinstance(x, int | float) for x, _ in self.points) and self.kind == "line" and count > 1:
            xs = [float(x) for x, _ in self.points]
            first, last = min(xs), max(xs)
            span = (last - first) or 1.0
            return [left + (x - first) / span * width for x in xs], width / count
        slot = width / max(1, count)
        return [left + slot * (index + 0.5) for index in range(count)], slot

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        background = palette.color(QPalette.ColorRole.Window)
        text = palette.color(QPalette.ColorRole.WindowText)
        series = palette.color(QPalette.ColorRole.Highlight)
        muted = _blend(text, background, 0.75)
        grid = _blend(text, background, 0.15)
        axis = _blend(text, background, 0.45)
        painter.fillRect(self.rect(), background)
        metrics = QFontMetrics(self.font())
        line_height = metrics.height()

        title_font = self.font()
        title_font.setBold(True)
        painter.setFont(title_font)
        painter.setPen(text)
        painter.drawText(QRectF(8, 4, self.width() - 16, line_height), Qt.AlignmentFlag.AlignLeft, self.title)
        painter.setFont(self.font())
        if not self.points:
            painter.setPen(muted)
            painter.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            painter.end()
            return

        low, high, step = self._value_axis()
        ticks = [low + step * index for index in range(round((high - low) / step) + 1)]
        labels = [self.value_format(tick) for tick in ticks]
        left = 8 + max(metrics.horizontalAdvance(label) for label in labels) + 6
        top = 4 + line_height + 12
        right = self.width() - 12
        bottom = self.height() - line_height - 8
        width, height = max(1.0, right - left), max(1.0, bottom - top)

        def y_of(value: float) -> float:
            return bottom - (value - low) / (high - low) * height

        for tick, label in zip(ticks, labels, strict=True):
            y = y_of(tick)
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(left, y), QPointF(right, y))
            painter.setPen(muted)
            painter.drawText(
                QRectF(0, y - line_height / 2, left - 6, line_height),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
        painter.setPen(QPen(axis, 1))
        painter.drawLine(QPointF(left, top), QPointF(left, bottom))
        painter.drawLine(QPointF(left, y_of(max(low, 0.0))), QPointF(right, y_of(max(low, 0.0))))

        xs, slot = self._x_positions(left, width)
        x_labels = [self.x_format(x) for x, _ in self.points]
        widest = max(metrics.horizontalAdvance(label) for label in x_labels) + 12
        every = max(1, math.ceil(widest / max(1.0, width / len(xs))))
        painter.setPen(muted)
        for index in range(0, len(xs), every):
            label_rect = QRectF(xs[index] - widest / 2, bottom + 4, widest, line_height)
            label_rect.moveLeft(min(max(label_rect.left(), left - 6), self.width() - widest))
            painter.drawText(
                label_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, x_labels[index]
            )

        zero = y_of(max(low, 0.0))
        if self.kind == "bars":
            bar = max(1.0, slot * 0.7)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(series)
            for x, (_, value) in zip(xs, self.points, strict=True):
                y = y_of(value)
                painter.drawRect(QRectF(x - bar / 2, min(y, zero), bar, max(1.0, abs(zero - y))))
        else:
            path = QPainterPath(QPointF(xs[0], y_of(self.points[0][1])))
            for x, (_, value) in zip(xs[1:], self.points[1:], strict=True):
                path.lineTo(x, y_of(value))
            painter.setPen(QPen(series, 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
            if len(xs) <= 60:
                painter.setBrush(series)
                for x, (_, value) in zip(xs, self.points, strict=True):
                    painter.drawEllipse(QPointF(x, y_of(value)), 3, 3)
        painter.end()
