"""Shared fixtures: an isolated data dir per test, no network, and one real model per session."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Set before huggingface_hub is imported anywhere: tests never reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# Derived files (the distilled encoder, dequantised bases) are built once and kept between runs, in a
# folder git ignores; each test still gets its own data dir.
os.environ.setdefault(
    "UNDERSTUDY_CACHE", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "understudy")
)

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def understudy_home(tmp_path, monkeypatch):
    """Every test gets its own data dir, so its database and catalog overrides are its own."""
    home = tmp_path / "understudy-home"
    monkeypatch.setenv("UNDERSTUDY_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuse connections to anything but this machine."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise OSError(f"tests must not reach the network (tried {address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture
def fake_model(understudy_home, monkeypatch):
    """The fake backend registered as a plugin and its model made the default generalist of this test's
    catalog: for tests of the engine's logic and the GUI, which need answers but not a real model's."""
    from fake_backend import ENVIRONMENT_FLAG, FakeModel, unregister_plugin

    monkeypatch.setenv(ENVIRONMENT_FLAG, "1")  # `understudy` subprocesses register it too
    yield FakeModel(understudy_home).install()
    unregister_plugin()


@pytest.fixture
def memory_keyring():
    """An in-memory keychain for the test (headless machines have no secure one)."""
    import keyring
    from cloud_stand_in import MemoryKeyring

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def cloud_server():
    """The stand-in cloud: a real OpenAI-compatible llama.cpp server behind a recording proxy."""
    from cloud_stand_in import LlamaServer, RecordingProxy

    from engine import catalog

    entry = catalog.load_catalog(user=catalog.shipped_catalog_path()).get("smollm2-135m-instruct")
    server = LlamaServer(catalog.locate(entry))
    proxy = RecordingProxy(server.port)
    yield proxy
    proxy.stop()
    server.stop()


@pytest.fixture
def cloud(cloud_server, understudy_home):
    """A configured provider pointing at the stand-in cloud, with the request record cleared."""
    cloud_server.requests.clear()
    _configure_provider(understudy_home, cloud_server.base_url)
    return cloud_server


@pytest.fixture
def recording_address():
    """A loopback proxy that records every request and answers none (nothing listens behind it): where
    tests that show nothing is sent point a provider, without starting the stand-in cloud's server."""
    from cloud_stand_in import RecordingProxy, free_port

    proxy = RecordingProxy(free_port())
    yield proxy
    proxy.stop()


@pytest.fixture
def unanswering_cloud(recording_address, understudy_home):
    """A configured provider at ``recording_address``."""
    _configure_provider(understudy_home, recording_address.base_url)
    return recording_address


def _configure_provider(understudy_home: Path, base_url: str) -> None:
    from engine.escalation import CloudConfig, Provider, save_cloud_config

    understudy_home.mkdir(parents=True, exist_ok=True)
    save_cloud_config(
        CloudConfig(
            providers={
                "standin": Provider(
                    "standin", base_url, "stand-in", price_in_per_million=2.0, price_out_per_million=8.0
                )
            },
            active="standin",
        )
    )


def _entry_toml(model_id: str = "tiny", source: str = '{ path = "/nowhere/tiny.gguf" }') -> str:
    return f"""
[models.{model_id}]
name = "Tiny"
family = "llama"
role = "generalist"
backend = "llama_cpp"
quantisation = "Q4_1"
context_length = 512
licence = "MIT"
size_mb = 1
ram_mb = 10
source = {source}
"""


@pytest.fixture
def entry_toml():
    """Text of one valid generalist catalog entry, with the ID and source a test needs."""
    return _entry_toml
