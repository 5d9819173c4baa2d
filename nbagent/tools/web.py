"""``webfetch``: one URL, streamed with limits, HTML turned into markdown or text."""

from __future__ import annotations

import asyncio
import base64
import re
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urlparse

import httpx
from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.messages import Attachment
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output

MAX_BYTES = 5 * 1024 * 1024
DEFAULT_TIMEOUT = 30
MAX_TIMEOUT = 120
USER_AGENT = "Mozilla/5.0 (compatible; nbagent webfetch)"
TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/xhtml+xml",
    "application/javascript",
    "application/ecmascript",
    "application/x-sh",
    "application/x-yaml",
    "application/yaml",
    "application/toml",
    "application/x-ndjson",
    "application/sql",
    "application/graphql",
)
DROP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "canvas", "iframe"})
BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "section", "article", "table",
     "ul", "ol", "header", "footer", "nav", "blockquote", "hr", "title", "dt", "dd"}
)  # fmt: skip


class WebFetchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http(s) URL.")
    format: Literal["markdown", "text", "html"] = Field(
        default="markdown", description="How to return the page."
    )
    timeout: int | None = Field(
        default=None, ge=1, le=MAX_TIMEOUT, description="Seconds (default 30, max 120)."
    )


def _is_text(media_type: str) -> bool:
    return (
        media_type.startswith("text/") or media_type in TEXT_TYPES or media_type.endswith(("+json", "+xml"))
    )


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page, with block elements on lines of their own."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_TAGS:
            self._skip += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_markdown(html: str) -> str:
    from markdownify import markdownify  # a few hundred ms of bs4 import: only when used

    html = re.sub(r"<(noscript|template|svg|iframe)\b.*?</\1\s*>", "", html, flags=re.IGNORECASE | re.DOTALL)
    md: str = markdownify(html, heading_style="ATX")
    md = re.sub(r"[ \t]+\n", "\n", md)
    return re.sub(r"\n{3,}", "\n\n", md).strip()


def _decode(data: bytes, encoding: str | None) -> str:
    try:
        return data.decode(encoding or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


class WebFetchTool(Tool[WebFetchParams]):
    name = "webfetch"
    params = WebFetchParams
    read_only = True

    async def run(self, args: WebFetchParams, ctx: ToolContext) -> ToolResult:
        url = args.url.strip()
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ToolFailure(f"Cannot fetch {url!r}: only http:// and https:// URLs are supported.")
        await ctx.ask(PermissionQuery(permission="webfetch", patterns=[url], title=f"fetch {url}"))
        timeout = args.timeout or DEFAULT_TIMEOUT
        try:
            async with asyncio.timeout(timeout):
                return await self._fetch(url, args.format, ctx)
        except TimeoutError:
            raise ToolFailure(f"Fetching {url} took longer than {timeout} s and was stopped.") from None
        except httpx.HTTPError as exc:
            raise ToolFailure(f"Could not fetch {url}: {type(exc).__name__}: {exc}") from None

    async def _fetch(self, url: str, fmt: str, ctx: ToolContext) -> ToolResult:
        accept = {
            "markdown": "text/markdown, text/html;q=0.9, text/plain;q=0.8, */*;q=0.1",
            "text": "text/plain, text/html;q=0.9, */*;q=0.1",
            "html": "text/html, */*;q=0.1",
        }[fmt]
        headers = {"User-Agent": USER_AGENT, "Accept": accept}
        async with (
            httpx.AsyncClient(follow_redirects=True, headers=headers, timeout=None) as client,
            client.stream("GET", url) as resp,
        ):
            content_type = resp.headers.get("content-type", "")
            media_type = content_type.split(";")[0].strip().lower()
            is_image = media_type.startswith("image/") and media_type != "image/svg+xml"
            if resp.status_code >= 400:
                snippet = _decode(await _read_some(resp, 2000), resp.encoding)[:500]
                raise ToolFailure(
                    f"HTTP {resp.status_code} {resp.reason_phrase} for {resp.url}"
                    + (f"\n{snippet}" if snippet.strip() else "")
                )
            if media_type and not (is_image or _is_text(media_type) or media_type == "image/svg+xml"):
                raise ToolFailure(
                    f"{resp.url} is {media_type}, not text or an image: webfetch does not return it."
                    " Download it with bash (curl -o) if you need the file."
                )
            declared = int(resp.headers.get("content-length") or 0)
            if is_image and declared > MAX_BYTES:
                raise ToolFailure(f"The image at {resp.url} is {declared} bytes; the limit is {MAX_BYTES}.")
            data = await _read_some(resp, MAX_BYTES + 1)
            truncated = len(data) > MAX_BYTES
            data = data[:MAX_BYTES]
            meta = {
                "url": str(resp.url),
                "status": resp.status_code,
                "content_type": media_type,
                "bytes": len(data),
                "truncated": truncated,
            }
            if is_image:
                if truncated:
                    raise ToolFailure(f"The image at {resp.url} is larger than {MAX_BYTES} bytes.")
                name = resp.url.path.rsplit("/", 1)[-1]
                return ToolResult(
                    output=f"Image {media_type}, {len(data)} bytes, from {resp.url} (attached).",
                    title=url,
                    metadata=meta,
                    attachments=[
                        Attachment(
                            media_type=media_type, data=base64.b64encode(data).decode("ascii"), name=name
                        )
                    ],
                )
            if not media_type and b"\0" in data[:4096]:
                raise ToolFailure(
                    f"{resp.url} has no content type and looks binary: webfetch returns only text."
                )
            text = _decode(data, resp.encoding)

        is_html = media_type in ("text/html", "application/xhtml+xml") or (
            not media_type and text.lstrip()[:100].lower().startswith(("<!doctype html", "<html"))
        )
        if is_html and fmt == "markdown":
            text = await asyncio.to_thread(html_to_markdown, text)
        elif is_html and fmt == "text":
            text = html_to_text(text)
        if truncated:
            text += f"\n\n[Response cut at {MAX_BYTES // (1024 * 1024)} MB.]"
        if not text.strip():
            text = "(empty response)"
        return ToolResult(output=bound_output(text, ctx, label="webfetch"), title=url, metadata=meta)


async def _read_some(resp: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body; stops reading (and downloading) there."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
