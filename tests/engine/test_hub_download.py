"""Hub downloads against a real HTTP server on 127.0.0.1 that speaks the hub's file protocol.

The server stands in for huggingface.co (outside this machine): it answers HEAD with the headers the hub
sends (commit, etag = the file's sha256, size), serves GET with Range, and cuts the first transfer off
halfway so the download has to resume.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from typing import ClassVar

import pytest

from engine import catalog
from engine.errors import ModelDownloadError

PAYLOAD = b"GGUF" + bytes(range(256)) * 4096  # about 1 MB
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStandIn(http.server.BaseHTTPRequestHandler):
    served_ranges: ClassVar[list[str]] = []
    cut_first_transfer = True

    def log_message(self, *args):
        pass

    def _headers(self, status: int, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{SHA256}"')
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def do_HEAD(self):
        if not self.path.endswith("/resolve/main/tiny.gguf"):
            self.send_error(404)
            return
        self._headers(200, len(PAYLOAD))

    def do_GET(self):
        if not self.path.endswith("/resolve/main/tiny.gguf"):
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        type(self).served_ranges.append(requested or "all")
        start = int(requested.split("=")[1].split("-")[0]) if requested else 0
        body = PAYLOAD[start:]
        if requested:
            self._headers(
                206, len(body), {"Content-Range": f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"}
            )
        else:
            self._headers(200, len(body))
        if type(self).cut_first_transfer:
            type(self).cut_first_transfer = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # Small chunks so the cut-off transfer has written something to resume from.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    HubStandIn.served_ranges = []
    HubStandIn.cut_first_transfer = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def hub_entry(tmp_path, entry_toml, sha256: str | None = None) -> catalog.ModelEntry:
    checksum = f', sha256 = "{sha256}"' if sha256 else ""
    path = tmp_path / "catalog.toml"
    source = f'{{ hub_repo = "someone/tiny-GGUF", hub_file = "tiny.gguf"{checksum} }}'
    path.write_text('default_generalist = "tiny"\n' + entry_toml(source=source))
    return catalog.load_catalog(shipped=path, user=tmp_path / "none.toml").get("tiny")


def test_download_resumes_reports_progress_and_checks_the_published_sha256(
    hub, tmp_path, understudy_home, entry_toml
):
    entry = hub_entry(tmp_path, entry_toml)
    progress: list[tuple[int, int]] = []
    path = catalog.download(entry, lambda done, total: progress.append((done, total)), endpoint=hub)
    assert path.read_bytes() == PAYLOAD
    assert path.is_relative_to(understudy_home)
    assert catalog.is_installed(entry)
    assert catalog.locate(entry) == path
    assert HubStandIn.served_ranges[0] == "all"
    assert HubStandIn.served_ranges[1].startswith("bytes=")  # resumed where the cut transfer stopped
    assert progress[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_a_download_that_does_not_match_the_catalog_checksum_is_deleted(hub, tmp_path, entry_toml):
    entry = hub_entry(tmp_path, entry_toml, sha256="b" * 64)
    with pytest.raises(
        ModelDownloadError, match=f"has sha256 {SHA256}, expected b+; the download was deleted"
    ):
        catalog.download(entry, endpoint=hub)
    assert not catalog.is_installed(entry)


def test_a_cancelled_download_continues_where_it_stopped(hub, tmp_path, entry_toml):
    HubStandIn.cut_first_transfer = False
    entry = hub_entry(tmp_path, entry_toml)

    class Cancelled(Exception):
        pass

    def cancel_after_a_quarter(done: int, total: int) -> None:
        if done >= total // 4:
            raise Cancelled

    with pytest.raises(ModelDownloadError) as stopped:
        catalog.download(entry, cancel_after_a_quarter, endpoint=hub)
    assert isinstance(stopped.value.__cause__, Cancelled)
    assert not catalog.is_installed(entry)
    assert catalog.download(entry, endpoint=hub).read_bytes() == PAYLOAD
    assert HubStandIn.served_ranges[0] == "all"
    assert HubStandIn.served_ranges[1].startswith("bytes=")
