"""The ``understudy`` command: every capability of the app, scriptable.

Engine errors become one line on stderr and a non-zero exit code here, at the edge; ``--debug`` shows
the traceback instead. Qt is imported only when the GUI is launched.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from app.cli_discovery import discover, report, route, tasks
from app.cli_mcp import mcp
from app.cli_tune import adapters, jobs_command, tune
from engine.errors import UnderstudyError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class UnderstudyGroup(click.Group):
    """Turns engine errors into a clear message and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UnderstudyError as error:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            ctx.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def emit_json(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, ensure_ascii=False))


@click.group(cls=UnderstudyGroup, invoke_without_command=True)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="understudy-desktop")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Understudy: an on-device assistant whose small models learn their part from the log.

    Without a command it opens the desktop app.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(app_command)


@cli.command("app")
@click.option("--self-test", is_flag=True, help="Send one prompt through the real window, then exit.")
@click.option(
    "--screenshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --self-test: save a picture of the window after the answer.",
)
@click.option("--startup-probe", is_flag=True, hidden=True, help="Used by `bench startup`.")
def app_command(self_test: bool, screenshot: Path | None, startup_probe: bool) -> None:
    """Open the desktop app (Qt)."""
    import os

    headless = not any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    if sys.platform.startswith("linux") and headless:
        raise UnderstudyError(
            "there is no display to open the window on (no DISPLAY or WAYLAND_DISPLAY); use "
            "`understudy chat` in this terminal, or run the app from a desktop session"
        )
    from app.gui import run_app

    code = run_app(self_test=self_test, screenshot=screenshot, startup_probe=startup_probe)
    if code:
        raise SystemExit(code)


# chat ---------------------------------------------------------------------------------------------


@cli.command()
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
        _escalate_prompt(agent, prompt, conversation_id, as_json)
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


def _terminal_approver(request) -> str:
    """Ask on the terminal, showing the exact arguments; anything but o/a is a denial."""
    click.echo(f"\nThe model wants to run {request.tool} ({request.risk}) with exactly:", err=True)
    click.echo(request.arguments_json, err=True)
    answer = click.prompt("Allow [o]nce, [a]lways for this tool, or [d]eny?", default="d", err=True)
    return {"o": "once", "a": "always"}.get(answer.strip().lower()[:1], "deny")


def _tool_use():
    """Tools for this command: on a terminal risky calls are asked; without one they are denied."""
    from engine.tool_calling import ToolUse
    from engine.tools import registered_tools
    from engine.tools.policy import load_policy

    approver = _terminal_approver if sys.stdin.isatty() else None
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


# models -------------------------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """The model catalog: list, verify, locate and download models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model.")
def models_list(as_json: bool) -> None:
    """Every model in the catalog, whether it is installed, and whether it fits this machine."""
    import psutil

    from engine import catalog
    from engine.backends.llama_cpp import gpu_offload_supported
    from engine.settings import load_settings

    model_catalog = catalog.load_catalog()
    default_model = load_settings().default_model or model_catalog.default_generalist
    memory = psutil.virtual_memory()
    gpu = gpu_offload_supported()
    for entry in model_catalog:
        record = {
            "id": entry.id,
            "name": entry.name,
            "role": entry.role,
            "family": entry.family,
            "backend": entry.backend,
            "quantisation": entry.quantisation,
            "context_length": entry.context_length,
            "size_mb": entry.size_mb,
            "ram_mb": entry.ram_mb,
            "licence": entry.licence,
            "source": entry.source.describe(),
            "installed": catalog.is_installed(entry),
            "default": entry.id == default_model,
            "fit": catalog.fit_hint(entry, memory.total // 2**20, memory.available // 2**20, gpu),
        }
        if as_json:
            emit_json(record)
        else:
            marks = ("*" if record["default"] else " ") + ("i" if record["installed"] else " ")
            click.echo(
                f"{marks} {entry.id:<26} {entry.role:<16} {entry.size_mb:>6} MB  "
                f"{record['fit']:<9}  {entry.source.describe()}"
            )
    if not as_json:
        click.echo("(* default generalist, i installed)", err=True)


@models.command("verify")
@click.argument("model_id")
def models_verify(model_id: str) -> None:
    """Check MODEL_ID's weights against their known sha256."""
    from engine import catalog

    entry = catalog.load_catalog().get(model_id)
    digest = catalog.verify(entry)
    click.echo(f"{entry.id}: OK sha256 {digest}")


@models.command("path")
@click.argument("model_id")
def models_path(model_id: str) -> None:
    """Print where MODEL_ID's weights are (assembling them into the data dir if needed)."""
    from engine import catalog

    click.echo(str(catalog.locate(catalog.load_catalog().get(model_id))))


@models.command("download")
@click.argument("model_id")
@click.option("--endpoint", help="A hub mirror (default: HF_ENDPOINT or huggingface.co).")
def models_download(model_id: str, endpoint: str | None) -> None:
    """Download MODEL_ID from the hub into the data dir (resumes a partial download)."""
    from engine import catalog

    entry = catalog.load_catalog().get(model_id)
    with click.progressbar(length=entry.size_mb * 2**20, label=f"Downloading {entry.id}") as bar:

        def progress(done: int, total: int) -> None:
            if total:
                bar.length = total
            bar.update(done - bar.pos)

        target = catalog.download(entry, progress, endpoint=endpoint)
    click.echo(str(target))


# logs ---------------------------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@click.option("-n", "limit", type=click.IntRange(1), default=3, show_default=True, help="How many turns.")
@click.option("-q", "--query", help="Full-text search over prompts and answers.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per turn.")
@click.pass_context
def logs(ctx: click.Context, limit: int, query: str | None, as_json: bool) -> None:
    """Show the newest logged turns (oldest of them first), with their model calls."""
    if ctx.invoked_subcommand is not None:
        return
    from engine.store import Store

    turns = Store.open().recent_turns(limit=limit, query=query)
    for turn in reversed(turns):
        for call in turn["model_calls"]:
            call["messages"] = json.loads(call.pop("messages_json"))
        if as_json:
            emit_json(turn)
            continue
        click.echo(
            f"# turn {turn['id']} · conversation {turn['conversation_id']} · {turn['created_utc']} · "
            f"{turn['model_id']} · {turn['status']}"
        )
        click.echo(f"> {turn['user_text']}")
        click.echo(turn["answer_text"] or f"(no answer: {turn['error']})")
        for call in turn["model_calls"]:
            click.echo(
                f"[{call['prompt_tokens']} + {call['completion_tokens']} tokens · "
                f"ttft {call['ttft_ms'] or 0:.0f} ms · {call['decode_tok_s'] or 0:.1f} tok/s · "
                f"{call['finish_reason'] or call['error']}]"
            )
        click.echo()


@logs.command("export")
@click.option("--jsonl", "path", type=click.Path(dir_okay=False, path_type=Path), required=True)
def logs_export(path: Path) -> None:
    """Write completed turns as chat-format JSONL ({"messages": [...]} per line), for fine-tuning."""
    from engine.store import Store

    count = 0
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for record in Store.open().iter_chat_records():
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UnderstudyError(f"could not write {path}: {error.strerror or error}") from error
    click.echo(f"Wrote {count} conversation turns to {path}", err=True)


@logs.command("import")
@click.option("--jsonl", "path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--skip-invalid", is_flag=True, help="Import the good lines even if some are malformed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the counts and any errors.")
def logs_import(path: Path, skip_invalid: bool, as_json: bool) -> None:
    """Import chat history in OpenAI chat format ({"messages": [...]} per line), e.g. from another tool."""
    from engine.log_import import import_chat_jsonl
    from engine.store import Store

    result = import_chat_jsonl(Store.open(), path, skip_invalid=skip_invalid)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(
            f"Imported {result.records} records ({result.turns} turns) from {path}; "
            f"{result.duplicates} already imported, {result.empty} without an answered request"
        )
    for error in result.errors:
        click.echo(f"skipped {error}", err=True)


# tools --------------------------------------------------------------------------------------------


@cli.group()
def tools() -> None:
    """Tools the model may call, the folders they may touch, and what may run without asking."""


@tools.command("list")
@click.option("--json", "as_json", is_flag=True)
def tools_list(as_json: bool) -> None:
    """Every registered tool with its risk and where it comes from."""
    from engine.tools import registered_tools
    from engine.tools.policy import load_policy

    policy = load_policy()
    for tool in registered_tools().values():
        record = {
            "name": tool.name,
            "risk": tool.risk,
            "source": tool.source,
            "description": tool.description,
            "always_allowed": tool.name in policy.always_allowed,
            "denied": tool.name in policy.denied,
        }
        if as_json:
            emit_json(record)
        else:
            click.echo(f"{tool.name:<14} {tool.risk:<8} {tool.source:<10} {tool.description}")
    if not as_json:
        click.echo(f"granted folders: {', '.join(policy.granted_folders) or 'none'}", err=True)


@tools.command("call")
@click.argument("name")
@click.argument("arguments_json")
def tools_call(name: str, arguments_json: str) -> None:
    """Run tool NAME with ARGUMENTS_JSON through the same policy the model's calls go through."""
    from engine.tool_calling import parse_choice
    from engine.tools import ToolError, registered_tools
    from engine.tools.policy import load_policy

    if name == "none":
        raise ToolError("'none' is not a tool; `understudy tools list` shows them")
    available = registered_tools()
    choice = parse_choice(json.dumps({"tool": name, "arguments": _json_argument(arguments_json)}), available)
    tool = available[choice.tool]
    policy = load_policy()
    decision = policy.decide(tool, arguments_json, _terminal_approver if sys.stdin.isatty() else None)
    if not decision.allowed:
        raise ToolError(f"not run: {decision.reason}")
    click.echo(tool.run(choice.arguments, policy.context()).text)


def _json_argument(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"ARGUMENTS_JSON is not JSON ({error.msg})") from error


@tools.command("grant")
@click.argument("folder", type=click.Path(file_okay=False))
def tools_grant(folder: str) -> None:
    """Let tools read (and, when approved, write) inside FOLDER."""
    from engine.tools.policy import grant_folder, load_policy, save_policy

    policy = load_policy()
    canonical = grant_folder(policy, folder)
    save_policy(policy)
    click.echo(f"Granted {canonical}")


@tools.command("allow")
@click.argument("name")
def tools_allow(name: str) -> None:
    """Always run tool NAME without asking."""
    _set_tool_rule(name, allow=True)


@tools.command("deny")
@click.argument("name")
def tools_deny(name: str) -> None:
    """Never run tool NAME."""
    _set_tool_rule(name, allow=False)


def _set_tool_rule(name: str, allow: bool) -> None:
    from engine.tools import ToolError, registered_tools
    from engine.tools.policy import load_policy, save_policy

    if name not in registered_tools():
        raise ToolError(f"there is no tool '{name}'; `understudy tools list` shows them")
    policy = load_policy()
    policy.set_rule(name, "allow" if allow else "deny")
    save_policy(policy)
    click.echo(f"{name}: {'always allowed' if allow else 'denied'}")


# redaction ----------------------------------------------------------------------------------------


@cli.command()
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


# cloud and escalations ---------------------------------------------------------------------------


@cli.group()
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
    from engine.escalation import PRESETS, EscalationError, Provider, load_cloud_config, save_cloud_config

    preset_url, preset_model = PRESETS.get(name, (None, None))
    base_url, model = base_url or preset_url, model or preset_model
    if not base_url or not model:
        raise EscalationError(f"'{name}' is no preset: give --base-url and --model")
    config = load_cloud_config()
    config.providers[name] = Provider(name, base_url, model, price_in, price_out)
    config.active = config.active or name
    save_cloud_config(config)
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
    from engine.escalation import load_cloud_config, save_cloud_config

    config = load_cloud_config()
    config.provider(name)
    config.active = name
    save_cloud_config(config)
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


def _escalate_prompt(agent, prompt: str, conversation_id: int | None, as_json: bool) -> None:
    """Propose an escalation; on a terminal ask, otherwise leave it pending and send nothing."""
    from engine.escalation import Escalations

    messages = agent.messages_for(conversation_id, prompt)
    service = Escalations(agent.store)
    escalation_id = service.propose(
        messages, reason="asked with `understudy chat --escalate`", conversation_id=conversation_id
    )
    record = _escalation_record(service.get(escalation_id))
    if record["status"] == "pending":
        if not sys.stdin.isatty():
            if as_json:
                emit_json({"event": "escalation", **record})
            else:
                click.echo(
                    f"Escalation {escalation_id} is pending; nothing was sent. Review it with "
                    f"`understudy escalations show {escalation_id}`."
                )
            return
        _print_escalation(record)
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


def _escalation_record(escalation: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id", "status", "provider", "model", "reason", "task_type", "created_utc", "estimated_cost_usd",
        "decided_by", "consent_utc", "sent_utc", "prompt_tokens", "completion_tokens", "cost_usd", "error",
    )  # fmt: skip
    record = {key: escalation[key] for key in keys}
    record["payload"] = escalation["payload"]
    record["answer"] = escalation["restored_text"]
    return record


@cli.group()
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
            emit_json(_escalation_record(escalation))
        else:
            cost = (
                escalation["cost_usd"]
                if escalation["cost_usd"] is not None
                else escalation["estimated_cost_usd"]
            )
            shown_cost = "?" if cost is None else f"${cost:.4f}"
            click.echo(
                f"#{escalation['id']:<4} {escalation['status']:<8} {escalation['provider']:<12} "
                f"{shown_cost:>9}  {escalation['user_text'][:60]}"
            )
    click.echo(f"total spent: ${service.total_spend():.4f}", err=True)


@escalations.command("show")
@click.argument("escalation_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def escalations_show(escalation_id: int, as_json: bool) -> None:
    """One escalation with the exact payload that would be (or was) sent."""
    from engine.escalation import Escalations
    from engine.store import Store

    record = _escalation_record(Escalations(Store.open()).get(escalation_id))
    if as_json:
        emit_json(record)
        return
    _print_escalation(record)


def _print_escalation(record: dict[str, Any]) -> None:
    estimate = record["estimated_cost_usd"]
    click.echo(
        f"Escalation {record['id']} · {record['status']} · {record['provider']} ({record['model']}) · "
        f"estimated {'unknown' if estimate is None else f'${estimate:.4f}'}"
    )
    click.echo(f"Reason: {record['reason']}")
    click.echo("Exactly this would leave the machine:")
    click.echo(json.dumps(record["payload"], indent=2, ensure_ascii=False))
    if record["answer"]:
        click.echo(f"Answer:\n{record['answer']}")


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


# bench --------------------------------------------------------------------------------------------


@cli.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run."""


def _print_figures(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(figures)
        return
    for key, value in figures.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        click.echo(f"{key:<24} {shown}")


@bench.command("decode")
@click.option("-m", "--model", "model_id", help="Model ID (default: the default generalist).")
@click.option("--rounds", type=click.IntRange(1), default=4, show_default=True)
@click.option("--max-tokens", type=click.IntRange(8), default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_decode(model_id: str | None, rounds: int, max_tokens: int, as_json: bool) -> None:
    """Raw llama-cpp-python vs Understudy's backend plus logging: decode speed, ttft, logging cost."""
    from engine.bench import bench_decode as run

    _print_figures(run(model_id=model_id, rounds=rounds, max_tokens=max_tokens), as_json)


@bench.command("startup")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_startup(rounds: int, as_json: bool) -> None:
    """Time to the first shown window and to model-ready, against a bare Qt window, side by side."""
    from app.startup_bench import bench_startup as run

    _print_figures(run(rounds=rounds), as_json)


@bench.command("tools")
@click.option("-m", "--model", "model_id", help="Model ID (default: the default generalist).")
@click.option("--limit", type=click.IntRange(1), help="Only the first N labelled requests.")
@click.option("--json", "as_json", is_flag=True)
def bench_tools(model_id: str | None, limit: int | None, as_json: bool) -> None:
    """Tool choice and argument accuracy on the labelled requests, with and without the grammar."""
    from engine.tool_bench import bench_tools as run

    _print_figures(run(model_id=model_id, limit=limit), as_json)


@bench.command("train")
@click.option("-m", "--model", "model_id", help="Base model ID (default: the default generalist).")
@click.option("--examples", type=click.IntRange(2), default=32, show_default=True)
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_train(model_id: str | None, examples: int, rounds: int, as_json: bool) -> None:
    """LoRA training tokens/s: the packed trainer against a padded loop, same model and examples."""
    from engine.tuning.train_bench import bench_train as run

    _print_figures(run(model_id=model_id, examples=examples, rounds=rounds), as_json)


@bench.command("swap")
@click.option("-m", "--model", "model_id", help="Model ID (default: the default generalist).")
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_swap(model_id: str | None, rounds: int, as_json: bool) -> None:
    """Switching a LoRA adapter on the loaded model vs reloading the model (target ratio <= 0.1)."""
    from engine.swap_bench import bench_swap as run

    _print_figures(run(model_id=model_id, rounds=rounds), as_json)


@bench.command("redact")
@click.option("--json", "as_json", is_flag=True)
def bench_redact(as_json: bool) -> None:
    """Precision and recall per type on the labelled set shipped in resources/."""
    from engine.redact_bench import bench_redact as run

    _print_figures(run(), as_json)


@bench.command("route")
@click.option("--decisions", type=click.IntRange(1), default=500, show_default=True)
@click.option("--turns", type=click.IntRange(1), default=3, show_default=True, help="Real turns for ttft.")
@click.option("-m", "--model", "model_id", help="Model ID for the turns (default: the default generalist).")
@click.option("--encoder", type=click.Choice(["static-minilm-l6-v2-pca256", "all-MiniLM-L6-v2"]))
@click.option("--json", "as_json", is_flag=True)
def bench_route(decisions: int, turns: int, model_id: str | None, encoder: str | None, as_json: bool) -> None:
    """Routing decision time (p50/p95, warm) against a real turn's time to first token, on the sample log."""
    from engine.route_bench import bench_route as run

    _print_figures(run(decisions=decisions, turns=turns, model_id=model_id, encoder_name=encoder), as_json)


cli.add_command(mcp)
cli.add_command(discover)
cli.add_command(route)
cli.add_command(tasks)
cli.add_command(report)
cli.add_command(tune)
cli.add_command(jobs_command)
cli.add_command(adapters)


def main() -> None:
    cli(prog_name="understudy")
