"""Widgets that more than one section shows: charts, tool cards, the provider form, notifications."""
