"""Shared fixtures: an isolated data dir per test, no network, and one real model per session."""

from __future__ import annotations

import os
import socket

import pytest

# Set before huggingface_hub is imported anywhere: tests never reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

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
