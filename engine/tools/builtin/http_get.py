"""Fetching a web page or API response with HTTP GET.

Named after the tool (and not ``http``, which would read as the standard library's package). The URL
and every redirect are held to ``check_url``; the body is capped in size and time, and only text is
shown to the model.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from engine.errors import ToolError
from engine.tools import Risk, ToolContext, ToolResult
from engine.tools.builtin.base import BuiltinTool, object_schema, truncate
from engine.tools.builtin.security import check_url

HTTP_MAX_BYTES = 1024 * 1024


@functools.cache
def _opener():
    """An opener whose redirects are held to the same rules as the URL the model gave."""
    import urllib.request
    from urllib.parse import urljoin

    class CheckedRedirects(urllib.request.HTTPRedirectHandler):
        def http_error_302(self, req, fp, code, msg, headers):
            location = headers.get("location") or headers.get("uri")
            if location:
                try:
                    check_url(urljoin(req.full_url, location))
                except ToolError:
                    fp.close()
                    raise
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    return urllib.request.build_opener(CheckedRedirects)


_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/xhtml+xml")


def _is_text(content_type: str) -> bool:
    return (
        content_type.startswith("text/")
        or content_type in _TEXT_TYPES
        or content_type.endswith(("+json", "+xml"))
    )


class HttpGetTool(BuiltinTool):
    name = "http_get"
    examples = (
        "download https://www.gnu.org/licenses/gpl-3.0.txt",
        "download the page at http://news.example.org",
        "get the JSON from https://api.example.com/status",
        "open the website https://python.org and tell me what it says",
        "what does https://example.org/robots.txt contain?",
        "load the URL https://httpbin.org/get",
    )
    description = "Fetch a web page or API response with HTTP GET; returns the status, content type and text."
    parameters = object_schema(
        {"url": {"type": "string", "minLength": 1, "description": "an http:// or https:// URL"}},
        required=("url",),
    )
    risk: Risk = "network"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        import urllib.error
        import urllib.request

        url = arguments["url"].strip()
        check_url(url)
        request = urllib.request.Request(url, headers={"User-Agent": "Understudy/0.1"})
        deadline = time.monotonic() + self.timeout_s
        try:
            try:
                response = _opener().open(request, timeout=self.timeout_s)
            except urllib.error.HTTPError as error:  # 4xx and 5xx still carry a useful body
                response = error
            with response:
                status = response.status
                final_url = response.geturl()
                content_type = response.headers.get_content_type()
                charset = response.headers.get_content_charset() or "utf-8"
                body = self._read_capped(response, deadline)
        except urllib.error.URLError as error:
            raise ToolError(f"could not fetch {url}: {error.reason}") from None
        except OSError as error:
            raise ToolError(f"could not fetch {url}: {error}") from None
        truncated = len(body) > HTTP_MAX_BYTES
        body = body[:HTTP_MAX_BYTES]
        if not _is_text(content_type):
            text = f"[{content_type} content, {len(body):,} bytes, not shown]"
        else:
            try:
                decoded = body.decode(charset, errors="replace")
            except LookupError:
                decoded = body.decode("utf-8", errors="replace")
            text, cut = truncate(decoded)
            truncated = truncated or cut
        data = {"url": final_url, "status": status, "content_type": content_type, "truncated": truncated}
        return ToolResult(f"HTTP {status} {content_type}\n{text}", data)

    @staticmethod
    def _read_capped(response, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while size <= HTTP_MAX_BYTES:
            if time.monotonic() > deadline:
                raise ToolError("the response took too long to arrive and was abandoned")
            chunk = response.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
