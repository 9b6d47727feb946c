"""Stand-ins for things outside the machine: the cloud and the OS keychain.

The cloud is llama-cpp-python's real OpenAI-compatible server on 127.0.0.1 with the bundled SmolLM2,
behind a small proxy that records every request body byte for byte. The keychain is an in-memory
keyring backend (headless Linux has none).
"""

from __future__ import annotations

import http.client
import http.server
import runpy
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import keyring.backend


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend that keeps secrets in memory for the test session."""

    priority = 10

    def __init__(self):
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server (this file run as a script) on a random loopback port."""

    def __init__(self, model: Path):
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable, __file__, "--model", str(model), "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", "2048", "--model_alias", "stand-in",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("llama_cpp.server exited while starting") from None
                time.sleep(0.2)
        raise RuntimeError("llama_cpp.server did not start within 120 s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class RecordingProxy:
    """Forwards requests to ``upstream_port`` and records (method, path, headers, body) of each."""

    def __init__(self, upstream_port: int):
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        # Set to cut the next answer off after this many bytes, as a dropped connection would.
        self.cut_after_bytes: int | None = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.requests.append((self.command, self.path, dict(self.headers), body))
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
                headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Connection", "close")
                self.end_headers()
                sent = 0
                cut_after, proxy.cut_after_bytes = proxy.cut_after_bytes, None
                while chunk := response.read1(256):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    sent += len(chunk)
                    if cut_after is not None and sent >= cut_after:
                        break
                upstream.close()
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    import llama_cpp

    from engine.backends.llama_cpp import llama_class

    # This process exists only to serve: the models the server loads go through the class new_llama uses.
    llama_cpp.Llama = llama_class()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
