"""Helpers for the browser tests (tests/browser): the site over loopback HTTP, recorded pages.

The browser is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it), driven by Playwright for
Python; ``playwright install`` is never run. Every host but loopback is blocked inside the browser
by ``--host-resolver-rules``: a page that reaches for a CDN gets no answer and, since every request
is recorded, fails its test. Playwright's request routing is deliberately not used: with routing
on, Playwright answers CORS preflights itself and a server with broken CORS would pass.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
]
LOCAL_SCHEMES = {"data", "blob", "about"}  # no network


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the built site; keeps the access log out of the test output."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True)
class SiteServer:
    """The built site served over HTTP on a loopback port."""

    path: Path
    port: int

    @property
    def url(self) -> str:
        """The origin, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def html(self, url_path: str) -> str:
        """The built HTML behind a page's URL path (``/auth-flow/``, ``/404.html``)."""
        file = self.path / url_path.lstrip("/")
        return (file / "index.html" if url_path.endswith("/") else file).read_text("utf-8")

    def pages(self) -> list[str]:
        """The URL path of every page of the site, found in the build, not from a fixed list.

        Every HTML file, except the documents the API Explorer page loads in its iframe (they
        are checked as part of that page: alone, they have no parent page to talk to).
        """
        found = []
        for html in sorted(self.path.rglob("*.html")):
            relative = html.relative_to(self.path).as_posix()
            if html.name.startswith("swagger-") or relative.startswith("assets/"):
                continue
            found.append("/" + relative.removesuffix("index.html"))
        return found


@contextlib.contextmanager
def serve_directory(path: Path) -> Iterator[SiteServer]:
    """Serve a built site over HTTP on a free loopback port, in a thread, until exit."""
    handler = functools.partial(_QuietHandler, directory=str(path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="docs-site", daemon=True)
    thread.start()
    try:
        yield SiteServer(path, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class Watched:
    """A page, with every request it made and every console error it logged."""

    page: Page
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign_requests(self, *allowed_origins: str) -> list[str]:
        """Requests to anything but the allowed origins (data:, blob:, about: are local)."""
        allowed = {urlsplit(origin).netloc for origin in allowed_origins}
        return [
            f"{request.method} {request.url}"
            for request in self.requests
            if urlsplit(request.url).scheme not in LOCAL_SCHEMES
            and urlsplit(request.url).netloc not in allowed
        ]


def watch(page: Page) -> Watched:
    """Record the page's requests (its frames' and workers' too), console errors, page errors."""
    watched = Watched(page)
    page.on("request", lambda request: watched.requests.append(request))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(f"console: {message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda exc: watched.errors.append(f"page error: {exc}"))
    page.on("requestfailed", lambda r: watched.errors.append(f"request failed: {r.url}"))
    return watched
