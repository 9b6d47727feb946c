"""`understudy chat`: one turn or a conversation in the terminal, with tools or the cloud on request."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

import click

from app.cli.cloud import escalate_prompt
from app.cli.common import emit_json, terminal_approver


@click.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", "model_id", help="Model ID from `understudy models list`.")
@click.option("-c", "--continue", "continue_last", is_flag=True, help="Continue the last conversation.")
@click.option("--cid", "conversation_id", type=int, help="Continue the conversation with this ID.")
@click.option("-s", "--system", "system_prompt", help="System prompt for this chat.")
@click.option("--max-tokens", type=click.IntRange(1), help="Longest answer (default: from settings).")
@click.option("--temperature", type=click.FloatRange(0.0, 2.0), help="Default: from settings.")
@click.option("--seed", type=int, help="Sampling seed, for repeatable answers.")
@click.option(
    "--tools/--no-tools", "with_tools", default=False, help="Let the model call tools (asks first)."
)
@click.option(
    "--escalate", is_flag=True, help="Ask the cloud instead: shows exactly what would be sent, asks first."
)
@click.option("--adapter", "adapter_id", type=int, help="Answer with this LoRA adapter (`adapters list`).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: tokens, then the turn.")
def chat(
    prompt: str | None,
    model_id: str | None,
    continue_last: bool,
    conversation_id: int | None,
    system_prompt: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    with_tools: bool,
    escalate: bool,
    adapter_id: int | None,
    as_json: bool,
) -> None:
    """Ask PROMPT, or chat turn by turn when no PROMPT is given (one per line from a pipe).

    Every turn is logged. Ctrl-C stops the answer being written; Ctrl-D or /exit leaves the chat.
    """
    from dataclasses import replace

    from engine.agent import Agent
    from engine.catalog import load_catalog
    from engine.settings import load_settings
    from engine.store import Store

    settings = load_settings()
    store = Store.open()
    agent = Agent.from_settings(store, load_catalog(), settings)
    agent.generation = replace(
        agent.generation,
        max_tokens=max_tokens or settings.max_tokens,
        temperature=settings.temperature if temperature is None else temperature,
        seed=seed,
    )
    if system_prompt is not None:
        agent.system_prompt = system_prompt
    if continue_last and conversation_id is None:
        conversation_id = store.latest_conversation_id()
    if escalate:
        if prompt is None:
            raise click.UsageError("--escalate needs a PROMPT")
        escalate_prompt(agent, prompt, conversation_id, as_json)
        return
    tool_use = _tool_use() if with_tools else None
    if prompt is not None:
        _chat_turn(agent, prompt, conversation_id, model_id, as_json, tool_use, adapter_id)
        return

    interactive = sys.stdin.isatty()
    if interactive and not as_json:
        entry = agent.model_entry(model_id)
        click.echo(f"Chatting with {entry.name}. Ctrl-C stops an answer, /exit or Ctrl-D leaves.")
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not interactive and not line:
            break
        line = line.strip()
        if line in ("/exit", "/quit"):
            break
        if line == "/new":
            conversation_id = None
            continue
        if line:
            conversation_id = _chat_turn(
                agent, line, conversation_id, model_id, as_json, tool_use, adapter_id
            )


def _chat_turn(
    agent,
    prompt: str,
    conversation_id: int | None,
    model_id: str | None,
    as_json: bool,
    tool_use=None,
    adapter_id: int | None = None,
) -> int:
    from engine.backends import drain

    def show(piece) -> None:
        if not isinstance(piece, str):
            _show_tool_event(piece, as_json)
        elif as_json:
            emit_json({"event": "token", "text": piece})
        else:
            click.echo(piece, nl=False)

    cancel = threading.Event()
    with _sigint_sets(cancel):
        result = drain(
            agent.run_turn(
                prompt,
                conversation_id=conversation_id,
                model_id=model_id,
                cancel=cancel,
                tool_use=tool_use,
                adapter_id=adapter_id,
            ),
            show,
        )
    completion = result.completion
    if as_json:
        emit_json(
            {
                "event": "turn",
                "turn_id": result.turn_id,
                "conversation_id": result.conversation_id,
                "model_id": result.model_id,
                "adapter_id": result.adapter_id,
                "route": None if result.route is None else result.route.to_dict(),
                "confidence": None if result.route is None else result.route.confidence,
                "escalation_id": result.escalation_id,
                "escalation_reason": result.escalation_reason,
                "status": result.status,
                "answer": result.answer,
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "ttft_ms": _round(completion.ttft_ms),
                "decode_tok_s": _round(completion.decode_tokens_per_second),
                "duration_ms": _round(completion.duration_ms),
                "finish_reason": completion.finish_reason,
                "trimmed_messages": completion.trimmed_messages,
                "log_ms": _round(result.log_ms),
            }
        )
    else:
        click.echo()
        notes = [
            result.model_id
            if result.adapter_id is None
            else f"{result.model_id} + adapter {result.adapter_id}",
            f"{completion.completion_tokens} tokens",
            f"ttft {completion.ttft_ms or 0:.0f} ms",
            f"{completion.decode_tokens_per_second or 0:.1f} tok/s",
        ]
        if completion.finish_reason == "cancelled":
            notes.append("stopped")
        if completion.finish_reason == "length":
            notes.append("cut at the token limit")
        if completion.trimmed_messages:
            notes.append(f"context full: {completion.trimmed_messages} oldest message(s) left out")
        click.echo(f"[{' · '.join(notes)}]", err=True)
        if result.route is not None:
            click.echo(f"[{result.route.target}: {result.route.reason}]", err=True)
        if result.escalation_id is not None:
            click.echo(
                f"[Proposed for the cloud ({result.escalation_reason}); nothing was sent. Review it with "
                f"`understudy escalations show {result.escalation_id}`]",
                err=True,
            )
        elif result.escalation_reason:
            click.echo(f"[{result.escalation_reason}]", err=True)
    return result.conversation_id


def _show_tool_event(event, as_json: bool) -> None:
    from dataclasses import asdict

    if as_json:
        emit_json({"event": "tool", **asdict(event)})
        return
    outcome = event.error or (event.result_text or "")[:200]
    click.echo(
        f"[tool {event.tool} {event.arguments_json} · {event.decision} by {event.decided_by}] {outcome}",
        err=True,
    )


def _tool_use():
    """Tools for this command: on a terminal risky calls are asked; without one they are denied."""
    from engine.tools import registered_tools
    from engine.tools.calling import ToolUse
    from engine.tools.policy import load_policy

    approver = terminal_approver if sys.stdin.isatty() else None
    return ToolUse(registered_tools(), load_policy(), approver)


@contextmanager
def _sigint_sets(cancel: threading.Event):
    """While an answer streams, Ctrl-C stops it (and the turn is logged as cancelled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
