"""http_get against a real local HTTP server: status, type, caps, redirects and unreachable hosts."""

from __future__ import annotations

import http.server
import threading

import pytest
from tool_sandbox import NO_GRANTS

from engine.errors import ToolError
from engine.tools import OUTPUT_LIMIT_CHARS
from engine.tools.builtin.http_get import HttpGetTool

ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/": (200, {"Content-Type": "text/plain; charset=utf-8"}, "hello from the stand-in ✓".encode()),
    "/missing": (404, {"Content-Type": "text/plain"}, b"no such page"),
    "/big": (200, {"Content-Type": "text/html"}, b"<p>" + b"a" * (2 * 1024 * 1024)),
    "/image": (200, {"Content-Type": "image/png"}, b"\x89PNG\x00" * 100),
    "/to-home": (302, {"Location": "/"}, b""),
    "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
    "/to-ftp": (302, {"Location": "ftp://127.0.0.1/"}, b""),
}


class StandInHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, headers, body = ROUTES[self.path]
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_get_fetches_text_with_status_and_type(web_server):
    result = HttpGetTool().run({"url": web_server + "/"}, NO_GRANTS)
    assert result.data["status"] == 200 and result.data["content_type"] == "text/plain"
    assert "hello from the stand-in ✓" in result.text
    missing = HttpGetTool().run({"url": web_server + "/missing"}, NO_GRANTS)
    assert missing.data["status"] == 404 and "no such page" in missing.text
    redirected = HttpGetTool().run({"url": web_server + "/to-home"}, NO_GRANTS)
    assert redirected.data["url"] == web_server + "/" and "hello" in redirected.text


def test_http_get_caps_what_it_returns(web_server):
    big = HttpGetTool().run({"url": web_server + "/big"}, NO_GRANTS)
    assert big.data["truncated"] is True and len(big.text) < OUTPUT_LIMIT_CHARS + 200
    image = HttpGetTool().run({"url": web_server + "/image"}, NO_GRANTS)
    assert "image/png content, 500 bytes, not shown" in image.text


@pytest.mark.parametrize("path", ["/to-file", "/to-ftp"])
def test_http_get_refuses_redirects_to_other_schemes(web_server, path):
    with pytest.raises(ToolError, match="not an http or https URL"):
        HttpGetTool().run({"url": web_server + path}, NO_GRANTS)


def test_http_get_reports_unreachable_hosts():
    with pytest.raises(ToolError, match="could not fetch"):
        HttpGetTool(timeout_s=5).run({"url": "http://127.0.0.1:9/"}, NO_GRANTS)
