"""What the sections share: charts, formatting, read-only tables, tool cards, the provider form,
markdown rendering and notifications."""
