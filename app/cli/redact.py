"""`understudy redact`: what would leave the machine after scrubbing, and why."""

from __future__ import annotations

import sys

import click

from app.cli.common import emit_json


@click.command()
@click.argument("text", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per text: redacted text and findings.")
def redact(text: str | None, as_json: bool) -> None:
    """Show what would leave the machine for TEXT (or for each line of stdin with `-`), and why."""
    from engine.redact import redact as redact_text

    if text is None:
        raise click.UsageError("give a TEXT, or `-` to read one text per line from stdin")
    texts = [line.rstrip("\n") for line in sys.stdin] if text == "-" else [text]
    for original in texts:
        redaction = redact_text(original)
        if as_json:
            emit_json(
                {
                    "text": redaction.text,
                    "findings": [
                        {
                            "type": finding.type,
                            "start": finding.start,
                            "end": finding.end,
                            "placeholder": finding.placeholder,
                        }
                        for finding in redaction.findings
                    ],
                }
            )
            continue
        click.echo(redaction.text)
        for finding in redaction.findings:
            click.echo(
                f"  {finding.placeholder:<14} {finding.type:<16} at {finding.start}-{finding.end}", err=True
            )
