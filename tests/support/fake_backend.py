"""A fake chat model for tests of the engine's logic (routing, tools, logging, the GUI), not of a model.

It is a backend plugin like any other: registered through the real plugin manager's
``register_backends`` hook, with a catalog entry of its own in the test's data dir (see ``FakeModel``).
It answers from a script the test writes (plain text, a tool call, a long answer that runs until it is
stopped), or, once the script is used up, echoes the last user message. The script and a record of
every request live in a folder beside the entry's weights file, so an ``understudy`` command in a
subprocess answers from the same script: run this file as a script and it is that command, with the
fake registered.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.backends import Completion, GenerationOptions, LoadOptions, Message
from engine.catalog import ModelEntry, gguf_problem
from engine.errors import AdapterError, BackendError
from engine.hookspecs import hookimpl

BACKEND_NAME = "fake"
MODEL_ID = "fake-model"
PLUGIN_NAME = "fake-backend"
# Set while a test's fake model is installed: `understudy` subprocesses then run this file instead.
ENVIRONMENT_FLAG = "UNDERSTUDY_FAKE_BACKEND"
SCRIPT_FILE = "script.json"
REQUESTS_FILE = "requests.jsonl"
WEIGHTS_FILE = "fake.gguf"
# How long a held answer waits to be stopped before it ends by itself (a test that forgot to stop it).
HOLD_LIMIT_S = 60.0
_PIECES = re.compile(r"\s*\S+|\s+$")


@dataclass(frozen=True)
class Reply:
    """One scripted answer, with the confidence figures the router reads from a completion.

    ``hold`` makes a long answer: after its first token the stream waits until it is cancelled, the way
    a user's Stop lands while a real model is still writing.
    """

    text: str
    mean_logprob: float = -0.5
    min_logprob: float = -1.5
    hold: bool = False


def tool_call(tool: str, **arguments: Any) -> Reply:
    """The reply a model gives when it chooses ``tool`` with ``arguments`` (the engine's JSON shape)."""
    return Reply(json.dumps({"tool": tool, "arguments": arguments}))


NO_TOOL = Reply(json.dumps({"tool": "none"}))


@dataclass
class Request:
    """What the engine asked of the fake in one ``stream_chat`` call, and what it answered."""

    messages: list[Message]
    options: dict[str, Any]
    json_schema: dict | None
    adapter: str | None
    answer: str
    finish_reason: str


class FakeBackend:
    """Satisfies ``engine.backends.Backend``; answers from the script beside its weights file."""

    name = BACKEND_NAME

    def __init__(self, entry: ModelEntry, weights: Path, options: LoadOptions = LoadOptions()):
        problem = gguf_problem(weights)
        if problem:
            raise BackendError(f"fake model: {problem}")
        self.entry = entry
        self.weights = weights
        self.folder = weights.parent
        self.n_threads = options.n_threads or 1
        self.n_ctx = options.n_ctx or entry.context_length
        self.gpu_layers = options.gpu_layers or 0
        self.loaded_adapters: list[Path] = []
        self.adapter_switches: list[Path | None] = []
        self.active_adapter: Path | None = None
        self.closed = False
        self._lock = threading.Lock()

    def stream_chat(
        self,
        messages: list[Message],
        options: GenerationOptions = GenerationOptions(),
        cancel: threading.Event | None = None,
        json_schema: dict | None = None,
        adapter: Path | None = None,
    ) -> Generator[str, None, Completion]:
        with self._lock:
            started = time.perf_counter()
            self._switch_adapter(adapter)
            reply = _next_reply(self.folder, messages, json_schema)
            pieces = _PIECES.findall(reply.text)
            finish_reason = "stop"
            if len(pieces) > options.max_tokens:
                pieces, finish_reason = pieces[: options.max_tokens], "length"
            sent: list[str] = []
            first_token_at = last_token_at = None
            for piece in pieces:
                if cancel is not None and cancel.is_set():
                    finish_reason = "cancelled"
                    break
                last_token_at = time.perf_counter()
                first_token_at = first_token_at or last_token_at
                sent.append(piece)
                yield piece
                if reply.hold and cancel is not None and len(sent) == 1:
                    cancel.wait(HOLD_LIMIT_S)
            finished = time.perf_counter()
            text = "".join(sent)
            _append_request(
                self.folder,
                Request(
                    messages=list(messages),
                    options=asdict(options),
                    json_schema=json_schema,
                    adapter=None if self.active_adapter is None else str(self.active_adapter),
                    answer=text,
                    finish_reason=finish_reason,
                ),
            )
            decode_rate = None
            if len(sent) >= 2 and last_token_at > first_token_at:
                decode_rate = (len(sent) - 1) / (last_token_at - first_token_at)
            return Completion(
                text=text,
                finish_reason=finish_reason,
                prompt_tokens=sum(len(_PIECES.findall(m["content"])) + 3 for m in messages),
                completion_tokens=len(sent),
                ttft_ms=None if first_token_at is None else (first_token_at - started) * 1000,
                duration_ms=(finished - started) * 1000,
                decode_tokens_per_second=decode_rate,
                messages=list(messages),
                mean_logprob=reply.mean_logprob if sent else None,
                min_logprob=reply.min_logprob if sent else None,
            )

    def load_adapter(self, adapter: Path) -> None:
        """Checks the file as llama.cpp would (a GGUF header) and remembers it; there are no weights."""
        path = Path(adapter).resolve()
        _check_adapter(path)
        if path not in self.loaded_adapters:
            self.loaded_adapters.append(path)

    def _switch_adapter(self, adapter: Path | None) -> None:
        path = None if adapter is None else Path(adapter).resolve()
        if path == self.active_adapter:
            return
        if path is not None:
            _check_adapter(path)
        self.adapter_switches.append(path)
        self.active_adapter = path

    def close(self) -> None:
        self.closed = True


def _check_adapter(path: Path) -> None:
    problem = gguf_problem(path)
    if problem:
        raise AdapterError(f"adapter file: {problem}")


# The script and the request record, in files so a subprocess shares them ------------------------------


def _next_reply(folder: Path, messages: list[Message], json_schema: dict | None) -> Reply:
    script_path = folder / SCRIPT_FILE
    script = json.loads(script_path.read_text(encoding="utf-8")) if script_path.exists() else []
    if script:
        reply = Reply(**script.pop(0))
        script_path.write_text(json.dumps(script), encoding="utf-8")
    elif json_schema is None:
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        reply = Reply(f"Echo: {last_user}")
    elif _admits(json_schema, NO_TOOL.text):
        reply = NO_TOOL
    else:
        raise BackendError(
            "the fake model has no scripted answer for a JSON-constrained request; script one with "
            "fake_model.script(tool_call(...))"
        )
    if json_schema is not None and not _admits(json_schema, reply.text):
        # llama.cpp's grammar makes this impossible for a real model: the script is wrong.
        raise BackendError(f"the scripted answer {reply.text!r} does not match the requested JSON schema")
    return reply


def _admits(json_schema: dict, text: str) -> bool:
    import jsonschema

    try:
        jsonschema.validate(json.loads(text), json_schema)
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return False
    return True


def _append_request(folder: Path, request: Request) -> None:
    with (folder / REQUESTS_FILE).open("a", encoding="utf-8") as record:
        record.write(json.dumps(asdict(request)) + "\n")


# Registration and the test's handle -------------------------------------------------------------------


class FakeBackendPlugin:
    """The plugin that registers the fake, as a third-party backend package would."""

    @hookimpl
    def register_backends(self, register):
        register(BACKEND_NAME, FakeBackend)


def register_plugin() -> None:
    from engine import plugins

    manager = plugins.plugin_manager()
    if not manager.has_plugin(PLUGIN_NAME):
        manager.register(FakeBackendPlugin(), name=PLUGIN_NAME)


def unregister_plugin() -> None:
    from engine import plugins

    manager = plugins.plugin_manager()
    if manager.has_plugin(PLUGIN_NAME):
        manager.unregister(name=PLUGIN_NAME)


def catalog_entry_toml(weights: Path, context_length: int = 4096) -> str:
    return f"""
[models.{MODEL_ID}]
name = "Fake Model"
family = "llama"
role = "generalist"
backend = "{BACKEND_NAME}"
quantisation = "none"
context_length = {context_length}
licence = "MIT"
size_mb = 1
ram_mb = 10
description = "Answers from the test's script."
source = {{ path = "{weights}" }}
"""


@dataclass
class FakeModel:
    """The test's handle on the fake: its catalog entry, its script and what it was asked."""

    home: Path
    folder: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder = self.home / "fake-model"

    @property
    def id(self) -> str:
        return MODEL_ID

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS_FILE

    def install(self) -> FakeModel:
        """Register the plugin, write the weights file and the catalog entry, as the default generalist.

        The entry goes into the data dir's models.toml after anything already there; a test that writes
        its own entries later appends them (``add_catalog_entries``).
        """
        register_plugin()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.weights.write_bytes(b"GGUF fake weights: the fake backend reads none")
        catalog_file = self.home / "models.toml"
        existing = catalog_file.read_text(encoding="utf-8") if catalog_file.exists() else ""
        catalog_file.write_text(
            f'default_generalist = "{MODEL_ID}"\n{existing}{catalog_entry_toml(self.weights)}',
            encoding="utf-8",
        )
        return self

    def add_catalog_entries(self, toml_text: str) -> None:
        """Add entries to the data dir's models.toml, keeping the fake's."""
        with (self.home / "models.toml").open("a", encoding="utf-8") as catalog_file:
            catalog_file.write("\n" + toml_text)

    def script(self, *replies: Reply | str) -> None:
        """Queue answers, in order; plain strings are plain answers. Later calls add to the queue."""
        path = self.folder / SCRIPT_FILE
        queued = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
        queued += [asdict(Reply(reply) if isinstance(reply, str) else reply) for reply in replies]
        path.write_text(json.dumps(queued), encoding="utf-8")

    @property
    def unused_replies(self) -> int:
        path = self.folder / SCRIPT_FILE
        return len(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else 0

    @property
    def requests(self) -> list[Request]:
        """Every ``stream_chat`` call so far, oldest first, in this process or a subprocess."""
        path = self.folder / REQUESTS_FILE
        if not path.exists():
            return []
        return [Request(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def main() -> None:
    """`understudy` with the fake registered (what CLI tests run while a fake model is installed)."""
    register_plugin()
    from app.main import main as understudy

    understudy()


if __name__ == "__main__":
    main()
