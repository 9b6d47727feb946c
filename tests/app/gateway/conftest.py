"""The gateway served by real uvicorn on a free loopback port, in the test's process so the fake
model's script applies; clients are the official openai SDK."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class RunningGateway:
    url: str
    token: str
    port: int
    state: Any  # the server's Gateway
    clients: list = field(default_factory=list)

    def client(self, **options):
        """An openai SDK client, closed when the test ends."""
        import openai

        client = openai.OpenAI(base_url=self.url, api_key=self.token, max_retries=0, **options)
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()


def start_gateway():
    import uvicorn
    from cloud_stand_in import free_port

    from app.gateway.access import gateway_token
    from app.gateway.server import create_app

    port = free_port()
    app = create_app("127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not (server.started and app.state.gateway.ready.is_set()):
        assert time.monotonic() < deadline and thread.is_alive(), "the gateway did not start"
        time.sleep(0.02)
    return (
        server,
        thread,
        RunningGateway(f"http://127.0.0.1:{port}/v1", gateway_token(), port, app.state.gateway),
    )


@pytest.fixture
def gateway(fake_model):
    server, thread, running = start_gateway()
    yield running
    running.close_clients()
    server.should_exit = True
    thread.join(30)


@pytest.fixture
def real_gateway():
    server, thread, running = start_gateway()
    yield running
    running.close_clients()
    server.should_exit = True
    thread.join(30)
