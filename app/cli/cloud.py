"""`understudy cloud` and `understudy escalations`: providers and keys, and the consent queue."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from app.cli.common import emit_json

if TYPE_CHECKING:
    from engine.escalation import Escalation


@click.group()
def cloud() -> None:
    """Cloud providers (OpenAI-compatible) used only with your consent, and the local-only switch."""


@cloud.command("add")
@click.argument("name")
@click.option("--base-url", help="The provider's OpenAI-compatible base URL (…/v1). Presets fill it.")
@click.option("--model", help="The model to ask.")
@click.option("--price-in", type=click.FloatRange(0), help="USD per million input tokens.")
@click.option("--price-out", type=click.FloatRange(0), help="USD per million output tokens.")
def cloud_add(
    name: str, base_url: str | None, model: str | None, price_in: float | None, price_out: float | None
) -> None:
    """Add (or replace) provider NAME; presets: openai, openrouter, mistral, groq, together, ollama."""
    from engine.errors import EscalationError
    from engine.escalation import PRESETS, Provider, edit_cloud_config

    preset_url, preset_model = PRESETS.get(name, (None, None))
    base_url, model = base_url or preset_url, model or preset_model
    if not base_url or not model:
        raise EscalationError(f"'{name}' is no preset: give --base-url and --model")
    with edit_cloud_config() as config:
        config.providers[name] = Provider(name, base_url, model, price_in, price_out)
        config.active = config.active or name
    click.echo(f"Added {name} ({model} at {base_url}); in use: {config.active}")


@cloud.command("key")
@click.argument("name")
def cloud_key(name: str) -> None:
    """Read NAME's API key from stdin into the OS keychain (never into a file or the log)."""
    from engine.escalation import load_cloud_config, store_key

    load_cloud_config().provider(name)
    key = click.prompt("API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    store_key(name, key)
    click.echo(f"Stored the key for {name} in the keychain.")


@cloud.command("use")
@click.argument("name")
def cloud_use(name: str) -> None:
    """Escalate to provider NAME from now on."""
    from engine.escalation import edit_cloud_config

    with edit_cloud_config() as config:
        config.provider(name)
        config.active = name
    click.echo(f"Escalations go to {name}.")


@cloud.command("local-only")
@click.argument("state", type=click.Choice(["on", "off"]))
def cloud_local_only(state: str) -> None:
    """With local-only on, nothing can be sent to any cloud provider, whatever was approved."""
    from engine.escalation import set_local_only

    set_local_only(state == "on")
    click.echo(f"Local-only is {state}.")


@cloud.command("list")
@click.option("--json", "as_json", is_flag=True)
def cloud_list(as_json: bool) -> None:
    """Configured providers, the one in use, and the local-only switch."""
    from dataclasses import asdict

    from engine.escalation import load_cloud_config

    config = load_cloud_config()
    for provider in config.providers.values():
        record = {**asdict(provider), "active": provider.name == config.active}
        if as_json:
            emit_json(record)
        else:
            mark = "*" if record["active"] else " "
            click.echo(f"{mark} {provider.name:<14} {provider.model:<30} {provider.base_url}")
    click.echo(f"local-only: {'on' if config.local_only else 'off'}", err=True)


@click.group()
def escalations() -> None:
    """Requests for the cloud: review, approve (which sends) or deny."""


@escalations.command("list")
@click.option("--status", type=click.Choice(["pending", "approved", "denied", "sent", "partial", "failed"]))
@click.option("--json", "as_json", is_flag=True)
def escalations_list(status: str | None, as_json: bool) -> None:
    """Recent escalations, newest first, and the total spent."""
    from engine.escalation import Escalations
    from engine.store import Store

    service = Escalations(Store.open())
    for escalation in service.recent(status):
        if as_json:
            emit_json(escalation.to_dict())
        else:
            cost = escalation.cost_usd if escalation.cost_usd is not None else escalation.estimated_cost_usd
            shown_cost = "?" if cost is None else f"${cost:.4f}"
            click.echo(
                f"#{escalation.id:<4} {escalation.status:<8} {escalation.provider:<12} "
                f"{shown_cost:>9}  {escalation.user_text[:60]}"
            )
    click.echo(f"total spent: ${service.total_spend():.4f}", err=True)


@escalations.command("show")
@click.argument("escalation_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def escalations_show(escalation_id: int, as_json: bool) -> None:
    """One escalation with the exact payload that would be (or was) sent."""
    from engine.escalation import Escalations
    from engine.store import Store

    escalation = Escalations(Store.open()).get(escalation_id)
    if as_json:
        emit_json(escalation.to_dict())
        return
    _print_escalation(escalation)


def _print_escalation(escalation: Escalation) -> None:
    estimate = escalation.estimated_cost_usd
    click.echo(
        f"Escalation {escalation.id} · {escalation.status} · {escalation.provider} ({escalation.model}) · "
        f"estimated {'unknown' if estimate is None else f'${estimate:.4f}'}"
    )
    click.echo(f"Reason: {escalation.reason}")
    click.echo("Exactly this would leave the machine:")
    click.echo(json.dumps(escalation.payload, indent=2, ensure_ascii=False))
    if escalation.restored_text:
        click.echo(f"Answer:\n{escalation.restored_text}")


@escalations.command("approve")
@click.argument("escalation_id", type=int)
@click.option("--always", is_flag=True, help="Also approve future escalations of this task type.")
def escalations_approve(escalation_id: int, always: bool) -> None:
    """Consent to escalation ID and send it now, streaming the answer."""
    from engine.escalation import Escalations
    from engine.store import Store

    service = Escalations(Store.open())
    service.decide(escalation_id, "always" if always else "allow_once")
    _send_escalation(service, escalation_id)


def _send_escalation(service, escalation_id: int) -> None:
    from engine.backends import drain

    pieces: list[str] = []

    def show(piece: str) -> None:
        pieces.append(piece)
        click.echo(piece, nl=False)

    result = drain(service.send(escalation_id), show)
    click.echo()
    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
    click.echo(
        f"[escalation {escalation_id} · {result.prompt_tokens} + {result.completion_tokens} tokens · {cost}]",
        err=True,
    )
    if result.answer != "".join(pieces):
        click.echo(f"With your details put back:\n{result.answer}")


@escalations.command("deny")
@click.argument("escalation_id", type=int)
def escalations_deny(escalation_id: int) -> None:
    """Refuse escalation ID; nothing is sent."""
    from engine.escalation import Escalations
    from engine.store import Store

    Escalations(Store.open()).decide(escalation_id, "deny")
    click.echo(f"Escalation {escalation_id} denied; nothing was sent.")


def escalate_prompt(agent, prompt: str, conversation_id: int | None, as_json: bool) -> None:
    """Propose an escalation; on a terminal ask, otherwise leave it pending and send nothing."""
    from engine.escalation import Escalations

    messages = agent.messages_for(conversation_id, prompt)
    service = Escalations(agent.store)
    escalation_id = service.propose(
        messages, reason="asked with `understudy chat --escalate`", conversation_id=conversation_id
    )
    escalation = service.get(escalation_id)
    if escalation.status == "pending":
        if not sys.stdin.isatty():
            if as_json:
                emit_json({"event": "escalation", **escalation.to_dict()})
            else:
                click.echo(
                    f"Escalation {escalation_id} is pending; nothing was sent. Review it with "
                    f"`understudy escalations show {escalation_id}`."
                )
            return
        _print_escalation(escalation)
        choice = click.prompt(
            "Send it? [o]nce / [a]lways for this task type / [d]eny",
            type=click.Choice(["o", "a", "d"]),
            default="d",
        )
        decision = {"o": "allow_once", "a": "always", "d": "deny"}[choice]
        service.decide(escalation_id, decision)
        if decision == "deny":
            click.echo(f"Escalation {escalation_id} denied; nothing was sent.")
            return
    _send_escalation(service, escalation_id)
