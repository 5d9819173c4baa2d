"""webfetch against a real HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nbagent.tools.base import PermissionQuery, ToolContext, ToolFailure, ToolResult
from nbagent.tools.web import MAX_BYTES, WebFetchTool

PAGE = """<!doctype html>
<html><head><title>Release notes</title>
<style>body { color: red }</style><script>var secret = "SCRIPT-CONTENT";</script></head>
<body><h1>Version 2</h1><p>Now <b>faster</b> &amp; see <a href="/docs">the docs</a>.</p>
<ul><li>one</li><li>two</li></ul><script>alert("SCRIPT-CONTENT")</script></body></html>"""

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    streamed: list[int]  # bytes the /endless route managed to send before the client hung up

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        route = self.path
        if route == "/page":
            self.send(200, "text/html; charset=utf-8", PAGE.encode())
        elif route == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/page")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/latin1":
            self.send(200, "text/plain; charset=iso-8859-1", "café".encode("latin-1"))
        elif route == "/json":
            self.send(200, "application/json", b'{"ok": true}')
        elif route == "/image.png":
            self.send(200, "image/png", PNG)
        elif route == "/binary":
            self.send(200, "application/octet-stream", b"\x00\x01\x02")
        elif route == "/missing":
            self.send(404, "text/plain", b"no such page")
        elif route == "/slow":
            time.sleep(3)
            self.send(200, "text/plain", b"late")
        elif route == "/endless":
            # No length, text forever: the client must stop reading at its limit.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            chunk = b"x" * 65_535 + b"\n"
            sent = 0
            try:
                while sent < 50 * MAX_BYTES:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.server.streamed.append(sent)  # type: ignore[attr-defined]
        else:
            self.send(404, "text/plain", b"")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """The client hangs up mid-response on purpose (size limits, timeouts)."""


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.streamed = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class Harness:
    def __init__(self, root: Path, base: str) -> None:
        self.base = base
        self.asks: list[PermissionQuery] = []
        self.ctx = ToolContext(root=root, ask=self._ask, output_dir=root / "out")

    async def _ask(self, query: PermissionQuery) -> None:
        self.asks.append(query)

    async def fetch(self, url: str, **args: Any) -> ToolResult:
        tool = WebFetchTool()
        if url.startswith("/"):
            url = self.base + url
        return await tool.run(tool.parse({"url": url, **args}), self.ctx)


@pytest.fixture
def h(tmp_path: Path, server: ThreadingHTTPServer) -> Harness:
    host, port = server.server_address[:2]
    return Harness(tmp_path, f"http://{host!s}:{port}")


async def test_html_becomes_markdown_without_scripts(h: Harness) -> None:
    result = await h.fetch("/page")
    out = result.output
    assert "# Version 2" in out
    assert "Now **faster** & see [the docs](/docs)." in out
    assert "* one\n* two" in out
    assert "SCRIPT-CONTENT" not in out
    assert "color: red" not in out
    assert "<" not in out
    assert result.metadata["content_type"] == "text/html"
    assert h.asks == [
        PermissionQuery(permission="webfetch", patterns=[h.base + "/page"], title=f"fetch {h.base}/page")
    ]


async def test_text_and_html_formats(h: Harness) -> None:
    text = (await h.fetch("/page", format="text")).output
    assert "Version 2" in text
    assert "Now faster & see the docs." in text
    assert "<" not in text
    assert "SCRIPT-CONTENT" not in text
    assert "color: red" not in text

    html = (await h.fetch("/page", format="html")).output
    assert html == PAGE


async def test_follows_redirects_and_decodes_charsets(h: Harness) -> None:
    result = await h.fetch("/redirect")
    assert "# Version 2" in result.output
    assert result.metadata["url"] == h.base + "/page"
    assert (await h.fetch("/latin1")).output == "café"
    assert (await h.fetch("/json")).output == '{"ok": true}'


async def test_size_limit_stops_reading(h: Harness, server: ThreadingHTTPServer) -> None:
    result = await h.fetch("/endless")
    assert result.metadata["bytes"] == MAX_BYTES
    assert result.metadata["truncated"] is True
    assert len(result.output) < 40_000  # and the model sees a bounded part of it
    assert "Response cut at 5 MB" in result.output
    for _ in range(100):
        if server.streamed:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.02)
    assert server.streamed[-1] < 10 * MAX_BYTES  # type: ignore[attr-defined]


async def test_timeout(h: Harness) -> None:
    start = time.monotonic()
    with pytest.raises(ToolFailure, match="longer than 1 s"):
        await h.fetch("/slow", timeout=1)
    assert time.monotonic() - start < 2.5


async def test_refuses_bad_schemes_before_asking(h: Harness) -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)", "example.com"):
        with pytest.raises(ToolFailure, match="only http:// and https://"):
            await h.fetch(url)
    assert h.asks == []


async def test_non_text_refused_images_attached_errors_reported(h: Harness) -> None:
    with pytest.raises(ToolFailure, match="application/octet-stream, not text"):
        await h.fetch("/binary")

    image = await h.fetch("/image.png")
    assert len(image.attachments) == 1
    assert image.attachments[0].media_type == "image/png"
    assert base64.b64decode(image.attachments[0].data) == PNG
    assert image.attachments[0].name == "image.png"

    with pytest.raises(ToolFailure, match="HTTP 404 Not Found") as info:
        await h.fetch("/missing")
    assert "no such page" in str(info.value)

    with pytest.raises(ToolFailure, match="Could not fetch"):
        await h.fetch("http://127.0.0.1:1/")  # nothing listens on port 1
