"""The pool of loaded models, shown on the fake backend (a plugin like any other, so no model loads)."""

from __future__ import annotations

import inspect
import threading

import pytest
from fake_backend import FakeBackend, Reply, catalog_entry_toml

from engine import backends, plugins
from engine.backends import Backend, GenerationOptions, LoadOptions, drain
from engine.catalog import load_catalog
from engine.errors import AdapterError, BackendError


def test_the_fake_is_registered_through_the_plugin_hook_and_keeps_the_backend_protocol(fake_model):
    assert plugins.backend_factories()["fake"] is FakeBackend
    for method in ("stream_chat", "load_adapter", "close"):
        assert inspect.signature(getattr(FakeBackend, method)).parameters.keys() == (
            inspect.signature(getattr(Backend, method)).parameters.keys()
        ), method
    assert load_catalog().default_generalist == fake_model.id


def test_a_model_is_loaded_once_and_reloaded_for_other_options_or_a_changed_entry(fake_model, tmp_path):
    entry = load_catalog().get(fake_model.id)
    first = backends.load(entry)
    assert backends.load(entry) is first and backends.is_loaded(entry)

    threaded = backends.load(entry, LoadOptions(n_threads=3))
    assert threaded is not first and threaded.n_threads == 3

    moved = tmp_path / "moved.gguf"
    moved.write_bytes(fake_model.weights.read_bytes())
    (fake_model.home / "models.toml").write_text(
        f'default_generalist = "{fake_model.id}"\n{catalog_entry_toml(moved)}'
    )  # the user pointed the entry at another file
    changed = load_catalog().get(fake_model.id)
    assert not backends.is_loaded(changed, LoadOptions(n_threads=3))
    assert backends.load(changed, LoadOptions(n_threads=3)).weights == moved


def test_the_fake_streams_its_script_then_echoes_and_stops_between_tokens(fake_model):
    backend = backends.load(load_catalog().get(fake_model.id))
    fake_model.script("One two three.", Reply("A long answer.", hold=True))
    pieces: list[str] = []
    scripted = drain(backend.stream_chat([{"role": "user", "content": "Count."}]), pieces.append)
    assert pieces == ["One", " two", " three."] and scripted.finish_reason == "stop"

    cancel = threading.Event()
    held = drain(
        backend.stream_chat([{"role": "user", "content": "Go on."}], cancel=cancel), lambda _: cancel.set()
    )
    assert (held.text, held.finish_reason, held.completion_tokens) == ("A", "cancelled", 1)

    echoed = drain(
        backend.stream_chat([{"role": "user", "content": "Hello there."}], GenerationOptions(max_tokens=2))
    )
    assert (echoed.text, echoed.finish_reason) == ("Echo: Hello", "length")
    assert [request.finish_reason for request in fake_model.requests] == ["stop", "cancelled", "length"]


def test_the_fake_checks_adapters_and_json_like_a_real_backend(fake_model, tmp_path):
    backend = backends.load(load_catalog().get(fake_model.id))
    not_an_adapter = tmp_path / "broken.gguf"
    not_an_adapter.write_bytes(b"nope")
    with pytest.raises(AdapterError, match="not a GGUF file"):
        backend.load_adapter(not_an_adapter)
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF adapter")
    drain(backend.stream_chat([{"role": "user", "content": "Hi."}], adapter=adapter))
    drain(backend.stream_chat([{"role": "user", "content": "Hi."}]))
    assert backend.adapter_switches == [adapter.resolve(), None]

    schema = {"type": "object", "properties": {"tool": {"const": "none"}}, "required": ["tool"]}
    assert drain(backend.stream_chat([{"role": "user", "content": "Hi."}], json_schema=schema)).text == (
        '{"tool": "none"}'
    )
    fake_model.script("not JSON")
    with pytest.raises(BackendError, match="does not match the requested JSON schema"):
        drain(backend.stream_chat([{"role": "user", "content": "Hi."}], json_schema=schema))
