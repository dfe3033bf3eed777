"""Serve the portal's page and, beside it, the npm packages its scripts import.

The packages (the noble cryptography libraries, pinned in package.json) are
installed next to this file by ``make``; the page maps their bare import names
to ``/portal/vendor/`` with an import map, so no bundler is needed.

The page holds the patient's key in memory, so every answer under ``/portal`` carries
a Content-Security-Policy that lets it run only its own files and the import map
(allowed by the hash of the map as served, computed at start), talk only to its own
node, and never be framed.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HERE = Path(__file__).parent
STATIC = HERE / "static"
VENDOR = HERE / "node_modules"
PAGE = STATIC / "index.html"
#: SMART App Launch's consent page (node/routes/launch.py sends the browser there).
AUTHORIZE_PAGE = STATIC / "authorize.html"


class _InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self._inline: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and "src" not in dict(attrs):
            self._inline = []

    def handle_data(self, data: str) -> None:
        if self._inline is not None:
            self._inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._inline is not None:
            self.scripts.append("".join(self._inline))
            self._inline = None


def inline_script_hashes(page: Path) -> list[str]:
    """CSP hash sources of the page's inline scripts, over their text exactly as served."""
    parser = _InlineScripts()
    # Read as a browser does: UTF-8, line breaks normalised to LF before the text is hashed.
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in parser.scripts
    ]


def content_security_policy(*pages: Path) -> str:
    hashes = dict.fromkeys(h for page in pages for h in inline_script_hashes(page))
    directives = {
        "default-src": "'none'",
        "script-src": " ".join(["'self'", *hashes]),
        "style-src": "'self'",
        # The health card's QR code is an SVG the page puts in a data: URL.
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "base-uri": "'none'",
        # Sign-in is handled by the page; a form that submitted anyway would put the
        # passphrase in a URL.
        "form-action": "'none'",
        "frame-ancestors": "'none'",
        # Node output is shown as text, never markup: no script may reach an HTML sink.
        "require-trusted-types-for": "'script'",
        "trusted-types": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class _WithHeaders:
    """Adds fixed headers to every answer of the ASGI app it wraps."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)


def mount_portal(app: FastAPI) -> None:
    headers = {
        "Content-Security-Policy": content_security_policy(PAGE, AUTHORIZE_PAGE),
        # frame-ancestors for browsers that predate it.
        "X-Frame-Options": "DENY",
    }
    vendor = StaticFiles(directory=VENDOR, check_dir=False)
    page = StaticFiles(directory=STATIC, html=True)
    # The more specific mount first: /portal would otherwise answer for /portal/vendor.
    app.mount("/portal/vendor", _WithHeaders(vendor, headers), name="vendor")
    app.mount("/portal", _WithHeaders(page, headers), name="portal")
