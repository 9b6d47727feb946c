"""Figures as the sections show them: shares as whole percents, money in dollars."""

from __future__ import annotations


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"
