"""The documentation site in a real browser: self-contained, diagrams drawn, the explorer works.

Debian's Chromium (see conftest.py) opens the site built once for the session, served over
loopback, with every other host unresolvable. Screenshots of the explorer and the flow page go
to each test's ``tmp_path`` (kept by pytest after the run, failed or not; the path is printed).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _browser import SiteServer, Watched, serve_directory, watch
from _docs_site import SpecChangeSite
from _secret_scan import LEDGER
from nsdk_server.config import DEFAULT_USER
from nsdk_server.testing import ServerHandle, run_server_in_thread
from playwright.sync_api import (
    Browser,
    CDPSession,
    FrameLocator,
    Locator,
    Page,
    Route,
    expect,
)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
TIMEOUT_MS = 15_000


def spec_operations(repo_root: Path) -> set[tuple[str, str, str]]:
    """(operationId, METHOD, path) of each operation in openapi.yaml, read without the generator."""
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    return {
        (item[method]["operationId"], method.upper(), path)
        for path, item in spec["paths"].items()
        for method in METHODS
        if method in item
    }


def open_page(watched: Watched, url: str) -> None:
    """Load a page and wait until the network is quiet (scripts ran, diagrams and search ready)."""
    response = watched.page.goto(url, wait_until="networkidle", timeout=TIMEOUT_MS)
    assert response is not None and response.status == 200, url


def explorer(page: Page) -> FrameLocator:
    """The Swagger UI of the API Explorer page (it renders in an iframe), once it has rendered."""
    frame = page.frame_locator("iframe.swagger-ui-iframe")
    frame.locator(".opblock").first.wait_for(timeout=TIMEOUT_MS)
    return frame


def listed_operations(frame: FrameLocator) -> set[tuple[str, str, str]]:
    """(operationId, METHOD, path) of every operation block Swagger UI shows."""
    found = set()
    for block in frame.locator(".opblock").all():
        block_id = block.get_attribute("id") or ""  # operations-<tag>-<operationId>
        method = block.locator(".opblock-summary-method").inner_text().strip()
        path = block.locator(".opblock-summary-path").get_attribute("data-path") or ""
        found.add((block_id.split("-", 2)[-1], method, path))
    return found


def shadow_svgs(cdp: CDPSession) -> list[dict[str, Any]]:
    """The <svg> roots inside the shadow roots of the page's ``div.mermaid`` hosts.

    Material draws each diagram into a *closed* shadow root, which page scripts and Playwright's
    selectors cannot enter; Chrome's DevTools protocol can (``pierce``).
    """
    root = cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        attrs = node.get("attributes", [])
        classes = dict(zip(attrs[::2], attrs[1::2], strict=True)).get("class", "").split()
        if node.get("nodeName") == "DIV" and "mermaid" in classes:
            for shadow in node.get("shadowRoots", []):
                found.extend(c for c in shadow.get("children", []) if c["nodeName"] == "svg")
        for child in [*node.get("children", []), *node.get("shadowRoots", [])]:
            walk(child)

    walk(root)
    return found


def svg_text(cdp: CDPSession, svg: dict[str, Any]) -> str:
    """The text drawn in an SVG (its markup, tags removed)."""
    markup = cdp.send("DOM.getOuterHTML", {"nodeId": svg["nodeId"]})["outerHTML"]
    return " ".join(re.sub(r"<[^>]+>", " ", markup).split())


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Save a full-page screenshot in the test's temp dir and print where."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_every_page_loads_with_no_console_error_and_no_foreign_request(
    light_page: Watched, site_server: SiteServer
) -> None:
    """Each page of the built site: 200, no console or page error, every request to the site."""
    pages = site_server.pages()
    assert {"/", "/auth-flow/", "/api-explorer/", "/reference/http/", "/404.html"} <= set(pages)
    problems: dict[str, list[str]] = {}
    for path in pages:
        watched = watch(light_page.page.context.new_page())
        open_page(watched, site_server.url + path)
        if path == "/api-explorer/":
            explorer(watched.page)  # the iframe's requests and errors count too
        if 'class="mermaid"' in site_server.html(path):  # drawn (or failed) before judging
            watched.page.wait_for_function("!document.querySelector('pre.mermaid')")
        foreign = watched.foreign_requests(site_server.url)
        if watched.errors or foreign:
            problems[path] = watched.errors + [f"foreign request: {r}" for r in foreign]
        assert len(watched.requests) > 1, path  # the page's own assets were loaded and seen
        watched.page.close()
    assert not problems, json.dumps(problems, indent=2)


def mermaid_sources(page_html: str) -> list[str]:
    """The mermaid source of each diagram of a built page, in page order."""
    blocks = re.findall(r'<pre class="mermaid"><code>(.*?)</code></pre>', page_html, re.S)
    return [html.unescape(block) for block in blocks]


def participants(source: str) -> list[str]:
    """The names a sequence diagram draws for its participants (``participant C as Client``)."""
    found = re.finditer(r"^\s*(?:participant|actor) (\S+)(?: as (.+))?$", source, re.M)
    return [(m.group(2) or m.group(1)).strip() for m in found]


def test_flow_diagrams_are_drawn(
    light_page: Watched, site_server: SiteServer, tmp_path: Path
) -> None:
    """The auth-flow page's diagrams are SVG drawings of their sources, not the mermaid text."""
    page = light_page.page
    sources = mermaid_sources((site_server.path / "auth-flow" / "index.html").read_text("utf-8"))
    assert sum(source.startswith("sequenceDiagram") for source in sources) >= 3
    try:
        open_page(light_page, site_server.url + "/auth-flow/")
        page.wait_for_function(
            "n => document.querySelectorAll('div.mermaid').length === n", arg=len(sources)
        )
        cdp = page.context.new_cdp_session(page)
        svgs = shadow_svgs(cdp)
        assert len(svgs) == len(sources)
        for source, svg in zip(sources, svgs, strict=True):
            drawn = svg_text(cdp, svg)
            assert drawn, source
            names = participants(source)
            assert all(name in drawn for name in names), (names, drawn)
        assert page.locator("pre.mermaid").count() == 0  # every source block was replaced
        body = page.locator("body").inner_text()
        assert "sequenceDiagram" not in body
        assert "->>" not in body
        assert not light_page.errors
    finally:
        screenshot(page, tmp_path, "auth-flow")


def test_explorer_lists_every_operation_of_the_spec(
    light_page: Watched, site_server: SiteServer, repo_root: Path, tmp_path: Path
) -> None:
    """Swagger UI shows one block per operation of openapi.yaml, with its method and path."""
    page = light_page.page
    try:
        open_page(light_page, site_server.url + "/api-explorer/")
        frame = explorer(page)
        expected = spec_operations(repo_root)
        assert len(expected) >= 4
        assert listed_operations(frame) == expected
        # The first server is the local reference server, editable; the spec's own comes after.
        options = frame.locator("select#servers option").all_inner_texts()
        assert options[0].startswith("http://{host}:{port}")
        assert any(o.startswith("https://api.example.com") for o in options[1:])
        assert frame.locator(".computed-url code").inner_text() == "http://127.0.0.1:8000"
    finally:
        screenshot(page, tmp_path, "explorer")


def test_explorer_follows_the_light_and_dark_scheme(
    browser: Browser, site_server: SiteServer
) -> None:
    """Dark system scheme: the explorer starts dark; the site's toggle turns both light."""
    context = browser.new_context(color_scheme="dark")
    try:
        watched = watch(context.new_page())
        page = watched.page
        open_page(watched, site_server.url + "/api-explorer/")
        explorer(page)
        swagger = next(f for f in page.frames if f.name)  # the iframe (named after its id)
        is_dark = "document.documentElement.classList.contains('dark-mode')"
        assert page.locator("body").get_attribute("data-md-color-scheme") == "slate"
        assert swagger.evaluate(is_dark) is True
        page.locator("label.md-header__button[for^='__palette_']:visible").click()
        page.wait_for_function("document.body.dataset.mdColorScheme === 'default'")
        assert swagger.evaluate(is_dark) is False
        page.locator("label.md-header__button[for^='__palette_']:visible").click()
        page.wait_for_function("document.body.dataset.mdColorScheme === 'slate'")
        assert swagger.evaluate(is_dark) is True
        assert not watched.errors
    finally:
        context.close()


def test_explorer_loaded_before_the_page_scripts_follows_the_dark_scheme(
    browser: Browser, site_server: SiteServer
) -> None:
    """Swagger UI rendered before Material's bundle has run (a slow network) still starts dark.

    The bundle is held until the explorer has rendered: the plugin's iframe then reads the
    page's scheme before the page has set it, and the site's own head script catches it up.
    """
    context = browser.new_context(color_scheme="dark")
    try:
        watched = watch(context.new_page())
        page = watched.page
        held: list[Route] = []

        def hold(route: Route) -> None:
            held.append(route)  # answered below, once the explorer has rendered

        page.route(re.compile(r"/assets/javascripts/bundle\.[0-9a-f]+\.min\.js$"), hold)
        page.goto(site_server.url + "/api-explorer/", wait_until="commit", timeout=TIMEOUT_MS)
        swagger = explorer(page)
        assert len(held) == 1 and page.evaluate("typeof window.document$") == "undefined"
        held[0].continue_()
        page.wait_for_function("document.body.dataset.mdColorScheme === 'slate'")
        expect(swagger.locator("html")).to_have_class(re.compile(r"\bdark-mode\b"))
        page.locator("label.md-header__button[for^='__palette_']:visible").click()
        expect(swagger.locator("html")).not_to_have_class(re.compile(r"\bdark-mode\b"))
        assert not watched.errors
    finally:
        context.close()


def test_search_finds_refresh(light_page: Watched, site_server: SiteServer) -> None:
    """The search box (its index and worker served by the site) finds pages about refresh."""
    page = light_page.page
    open_page(light_page, site_server.url + "/")
    query = page.locator("input.md-search__input")
    query.click()
    query.press_sequentially("refresh")
    results = page.locator(".md-search-result__item")
    # Polled: typed key by key, the results shown first may be a prefix's ("re" finds
    # "Regenerating ..."), replaced when the search worker answers the whole word.
    expect(results.first).to_contain_text(re.compile("refresh", re.IGNORECASE), timeout=TIMEOUT_MS)
    assert results.count() >= 2
    assert page.locator(".md-search-result mark", has_text="refresh").count() > 0
    titles = page.locator(".md-search-result__article h1").all_inner_texts()
    assert "The authentication flow" in titles, titles
    assert not light_page.errors
    assert not light_page.foreign_requests(site_server.url)


# --- Trying the API from the explorer against the reference server ---------------------------


@pytest.fixture(scope="module")
def api_server(site_server: SiteServer) -> Iterator[ServerHandle]:
    """The reference server, letting pages of the served site (that exact origin) call it."""
    with run_server_in_thread(cors_origin=[site_server.url], faults=True) as server:
        yield server


def try_operation(frame: FrameLocator, operation_id: str, body: str | None = None) -> Locator:
    """Expand an operation, *Try it out*, fill the body, *Execute*; return its live response row."""
    block = frame.locator(f"#operations-auth-{operation_id}")
    block.locator(".opblock-summary").first.click()
    block.locator("button.try-out__btn").click()
    if body is not None:
        block.locator("textarea.body-param__text").fill(body)
    block.locator("button.execute").click()
    response = block.locator(".live-responses-table tr.response")
    response.wait_for(timeout=TIMEOUT_MS)
    return response


def status_and_body(response: Locator) -> tuple[str, Any]:
    """The status cell and the parsed JSON body of a live response row."""
    status = response.locator(".response-col_status").inner_text().strip()
    code = response.locator(".highlight-code code")
    return status, json.loads(code.first.inner_text()) if code.count() else None


def use_server(frame: FrameLocator, server: ServerHandle) -> None:
    """Point the explorer's local server entry at this server's port."""
    port = server.base_url.rsplit(":", 1)[1]
    frame.locator("input[data-variable='port']").fill(port)
    assert frame.locator(".computed-url code").inner_text() == server.base_url


def test_login_authorize_me_against_the_reference_server(
    light_page: Watched, site_server: SiteServer, api_server: ServerHandle, tmp_path: Path
) -> None:
    """In the browser: login 200, Authorize with its access token, me 200 with the demo user."""
    page = light_page.page
    api_server.reset()
    try:
        open_page(light_page, site_server.url + "/api-explorer/")
        frame = explorer(page)
        use_server(frame, api_server)

        credentials = {"email": DEFAULT_USER.email, "password": DEFAULT_USER.password}
        status, login = status_and_body(try_operation(frame, "login", json.dumps(credentials)))
        assert status == "200"
        token = login["accessToken"]
        LEDGER.secret(token)
        LEDGER.secret(login["refreshToken"])
        assert (login["userId"], login["tenantId"]) == (
            DEFAULT_USER.user_id,
            DEFAULT_USER.tenant_id,
        )

        frame.locator(".scheme-container button.authorize").click()
        dialog = frame.locator(".dialog-ux .modal-ux")
        dialog.locator("input").first.fill(token)
        dialog.locator("button.authorize").click()
        dialog.locator("button.btn-done").click()
        assert frame.locator(".scheme-container button.authorize.locked").count() == 1

        status, me = status_and_body(try_operation(frame, "me"))
        assert status == "200"
        assert me == {
            "userId": DEFAULT_USER.user_id,
            "tenantId": DEFAULT_USER.tenant_id,
            "email": DEFAULT_USER.email,
        }
        # The browser itself called the server, cross-origin (so CORS was checked), with the token.
        calls = [r for r in light_page.requests if r.url.startswith(api_server.base_url)]
        assert [(r.method, r.url.removeprefix(api_server.base_url)) for r in calls] == [
            ("POST", "/api/auth/login"),
            ("GET", "/api/auth/me"),
        ]
        carried = calls[1].all_headers()["authorization"] == f"Bearer {token}"
        assert carried, "me was not sent with the access token from login"  # prints no token
        assert calls[1].all_headers()["origin"] == site_server.url
        assert api_server.stats()["requests"] == {"login": 1, "refresh": 0, "me": 1, "logout": 0}
        assert not light_page.errors
        assert not light_page.foreign_requests(site_server.url, api_server.base_url)
    finally:
        screenshot(page, tmp_path, "explorer-after-me")


def test_a_page_from_another_origin_is_refused_by_cors(
    browser: Browser, site_server: SiteServer, api_server: ServerHandle
) -> None:
    """The same site opened as ``localhost`` is another origin: the browser refuses the call.

    This is what shows the server's CORS answers are really checked (no routing in between).
    """
    context = browser.new_context()
    try:
        watched = watch(context.new_page())
        open_page(watched, f"http://localhost:{site_server.port}/api-explorer/")
        frame = explorer(watched.page)
        use_server(frame, api_server)
        logins = api_server.stats()["requests"]["login"]
        credentials = {"email": DEFAULT_USER.email, "password": DEFAULT_USER.password}
        response = try_operation(frame, "login", json.dumps(credentials))
        assert "Failed to fetch" in response.inner_text()
        assert any("blocked by CORS policy" in e for e in watched.errors), watched.errors
        # The preflight was refused, so the browser never sent the login itself.
        assert api_server.stats()["requests"]["login"] == logins
    finally:
        context.close()


def test_an_operation_added_to_the_spec_appears_in_the_explorer(
    browser: Browser, repo_root: Path, spec_change_site: SpecChangeSite
) -> None:
    """Rebuilt from a spec with one more operation, Swagger UI lists that one too."""
    context = browser.new_context()
    try:
        watched = watch(context.new_page())
        with serve_directory(spec_change_site.site.path) as served:
            open_page(watched, served.url + "/api-explorer/")
            listed = listed_operations(explorer(watched.page))
            assert not watched.errors
        assert spec_change_site.added in listed
        assert listed == spec_operations(repo_root) | {spec_change_site.added}
    finally:
        context.close()
