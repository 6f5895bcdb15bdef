"""The client's surface: tokens, base_url, with_options, nsdk.__version__, and the DEBUG story.

``with_options`` views are checked against the fake server for what they share (one session, one
single-flight refresh, counted in the server's log) and what they do not (timeout and retry policy
per request). The DEBUG lines say why each refresh happened and when a session came from the
store, and never carry a token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import nsdk
import pytest
from nsdk_api.api.auth import me as me_op

if TYPE_CHECKING:
    from .conftest import Driver, FakeClock, FakeServer

BASE_URL = "https://api.example.com"
A1, A2 = nsdk.Tokens("access-1", "refresh-1"), nsdk.Tokens("access-2", "refresh-2")


def _debug_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nsdk"]


def _no_secret_in(lines: list[str], server: FakeServer, password: str) -> None:
    secrets = [*server.issued, password]
    assert [(s, line) for line in lines for s in secrets if s in line] == []


async def _call(drv: Driver, method: Callable[[], Any]) -> Any:
    result = method()
    return await result if drv.is_async else result


# --- module attributes ---------------------------------------------------------------------


def test_unknown_module_attribute_still_raises():
    """The module __getattr__ serves the public names only: others raise AttributeError."""
    with pytest.raises(AttributeError, match="'nsdk' has no attribute 'Clinet'"):
        nsdk.Clinet  # noqa: B018  # the attribute access is the test


# --- base_url ------------------------------------------------------------------------------


def test_base_url_is_the_validated_url(monkeypatch: pytest.MonkeyPatch):
    """client.base_url is the URL sent to: the argument, else $NSDK_API_BASE_URL."""
    with nsdk.Client(BASE_URL) as client:
        assert client.base_url == httpx.URL(BASE_URL) == BASE_URL
    monkeypatch.setenv(nsdk.BASE_URL_ENV, "https://env.example.com/v1")
    with nsdk.Client() as client:
        assert isinstance(client.base_url, httpx.URL)
        assert str(client.base_url) == "https://env.example.com/v1"


# --- tokens and on_tokens_refreshed --------------------------------------------------------


async def test_tokens_follow_the_session(make: Callable[..., Driver], server: FakeServer):
    """client.tokens: None signed out, the login pair at once, each rotation, None after logout."""
    drv = make()
    assert drv.client.tokens is None
    await drv.login()
    assert drv.client.tokens == A1  # the initial pair reaches the application
    assert await drv.refresh() == drv.client.tokens == A2
    await drv.logout()
    assert drv.client.tokens is None


async def test_tokens_of_a_resumed_session(make: Callable[..., Driver]):
    """A client built over a store that holds a session exposes its pair with no login."""
    store = nsdk.MemoryTokenStore(A1)
    drv = make(token_store=store)
    assert drv.client.state is nsdk.SessionState.ACTIVE
    assert drv.client.tokens == A1 and drv.client.session is None


async def test_on_tokens_refreshed_fires_for_own_rotations_only(
    make: Callable[..., Driver], server: FakeServer
):
    """The callback fires per rotation by this client: not at login, not for a peer's rotation."""
    store = nsdk.MemoryTokenStore()
    seen_a: list[nsdk.Tokens] = []
    seen_b: list[nsdk.Tokens] = []
    a = make(token_store=store, on_tokens_refreshed=seen_a.append, refresh_leeway=0)
    await a.login()
    assert seen_a == []  # login: read client.tokens instead
    b = make(token_store=store, on_tokens_refreshed=seen_b.append, refresh_leeway=0)
    server.expire_access()
    await a.me()  # a refreshes after the 401
    assert seen_a == [A2]
    await b.me()  # b's 401 makes it adopt a's pair from the store, with no refresh of its own
    assert b.client.tokens == A2 and seen_b == []
    assert [op for op, _ in server.seq].count("refresh") == 1


# --- with_options --------------------------------------------------------------------------


async def test_with_options_view_shares_the_session(signed_in: Driver, server: FakeServer):
    """A view is a client of the same kind over the same session, store and tokens."""
    client = signed_in.client
    view = client.with_options(timeout=3.0)
    assert type(view) is type(client) and view is not client
    assert view.state is nsdk.SessionState.ACTIVE and view.session == client.session
    assert view.tokens == client.tokens == A1
    assert view.base_url == client.base_url
    assert (await _call(signed_in, view.me)).tenant_id == "2001"
    await _call(signed_in, view.logout)  # signs the client out too: one session
    assert client.state is nsdk.SessionState.SIGNED_OUT and client.tokens is None


async def test_with_options_one_refresh_for_client_and_view(signed_in: Driver, server: FakeServer):
    """Client and view hit by the same expiry at once: one refresh (single-flight), both resent."""
    client = signed_in.client
    view = client.with_options(timeout=3.0, retry=nsdk.RetryPolicy(max_attempts=2))
    server.expire_access()
    first_two = 0
    lock = threading.Lock()
    if signed_in.is_async:
        barrier = asyncio.Barrier(2)

        async def meet(request: httpx.Request) -> None:
            nonlocal first_two
            first_two += 1
            if first_two <= 2:
                await asyncio.wait_for(barrier.wait(), 5)  # both 401s are in flight together

        server.on("me", meet)
        results = await asyncio.gather(client.me(), view.me())
    else:
        gate = threading.Barrier(2, timeout=5)

        def meet_sync(request: httpx.Request) -> None:
            nonlocal first_two
            with lock:
                first_two += 1
                waits = first_two <= 2
            if waits:
                gate.wait()

        server.on("me", meet_sync)
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(client.me), pool.submit(view.me)]
            results = [f.result(timeout=10) for f in futures]
    assert [me.tenant_id for me in results] == ["2001", "2001"]
    assert server.seq == [
        ("me", "access-1"),
        ("me", "access-1"),  # both 401, both in flight together
        ("refresh", "refresh-1"),  # once, for the client and the view
        ("me", "access-2"),
        ("me", "access-2"),
    ]
    assert client.tokens == view.tokens == A2


async def test_with_options_timeout_is_the_views_only(signed_in: Driver, server: FakeServer):
    """The view's requests carry its timeout; the client's keep theirs, and so does the refresh."""
    timeouts: list[tuple[str, dict[str, Any]]] = []

    def record(op: str) -> Callable[[httpx.Request], None]:
        return lambda request: timeouts.append((op, request.extensions["timeout"]))

    server.on("me", record("me"))
    server.on("refresh", record("refresh"))
    client = signed_in.client
    view = client.with_options(timeout=httpx.Timeout(2.0, connect=1.0))
    default = httpx.Timeout(10.0, connect=5.0).as_dict()
    fast = httpx.Timeout(2.0, connect=1.0).as_dict()
    await _call(signed_in, view.me)
    await _call(signed_in, client.me)
    server.expire_access()
    await _call(signed_in, view.me)  # 401, the session's refresh, the resend
    assert timeouts == [
        ("me", fast),
        ("me", default),
        ("me", fast),
        ("refresh", default),  # the refresh is the session's: the client's own options
        ("me", fast),
    ]
    if signed_in.is_async:
        response = await me_op.asyncio_detailed(client=view.api)
    else:
        response = me_op.sync_detailed(client=view.api)
    assert response.status_code == 200 and timeouts[-1] == ("me", fast)  # view.api too


async def test_with_options_retry_is_the_views_only(signed_in: Driver, server: FakeServer):
    """A view that never retries fails on the first 503 the client itself would retry."""
    client = signed_in.client
    never = client.with_options(retry=nsdk.RetryPolicy.no_retries())
    server.script("me", 503)
    with pytest.raises(nsdk.ServerError):
        await _call(signed_in, never.me)
    assert server.seq == [("me", "access-1")]
    server.calls.clear()
    server.script("me", 503)
    assert (await _call(signed_in, client.me)).tenant_id == "2001"
    assert server.seq == [("me", "access-1"), ("me", "access-1")]


async def test_with_options_keeps_what_is_not_given(signed_in: Driver):
    """Options left out keep the client's: with_options() changes nothing but the object."""
    client = signed_in.client
    view = client.with_options()
    assert view.api.timeout == client.api.timeout == httpx.Timeout(10.0, connect=5.0)
    assert view.with_options(timeout=4).api.timeout == 4.0  # a view of a view


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": "10"}, "timeout must be a number of seconds > 0, an httpx.Timeout, or None"),
        ({"timeout": [1]}, "(keep the client's), got a list"),
        ({"timeout": 0}, "got 0"),
        ({"timeout": -1.0}, "got -1.0"),
        ({"timeout": float("nan")}, "got nan"),
        ({"timeout": True}, "got True"),
        ({"retry": 3}, "retry must be an nsdk.RetryPolicy, or None (keep the client's), got 3"),
    ],
)
def test_with_options_refuses_wrong_values(options: dict[str, Any], message: str):
    """A wrong timeout or retry is a ConfigurationError naming what is accepted."""
    with nsdk.Client(BASE_URL) as client, pytest.raises(nsdk.ConfigurationError) as info:
        client.with_options(**options)
    assert message in str(info.value)


async def test_with_options_view_closes_with_its_client(signed_in: Driver, server: FakeServer):
    """Closing the client closes its views: they send nothing more."""
    view = signed_in.client.with_options(timeout=1.0)
    if signed_in.is_async:
        await signed_in.client.aclose()
    else:
        signed_in.client.close()
    with pytest.raises(nsdk.ClientClosedError):
        await _call(signed_in, view.me)
    assert server.calls == []


async def test_closing_a_view_closes_the_session_not_the_pool(
    make: Callable[..., Driver], server: FakeServer, kind: str
):
    """A view's close ends the shared session; the connections are closed with the client."""
    closed: list[str] = []

    class Counting(httpx.MockTransport):
        def close(self) -> None:
            closed.append("pool")

        async def aclose(self) -> None:
            closed.append("pool")

    drv = make(transport=Counting(server.ahandler if kind == "async" else server.handler))
    await drv.login()
    view = drv.client.with_options(timeout=1.0)
    close = "aclose" if drv.is_async else "close"
    await _call(drv, getattr(view, close))
    assert drv.client.state is nsdk.SessionState.CLOSED and closed == []
    await _call(drv, getattr(drv.client, close))
    assert closed == ["pool"]


async def test_with_options_view_api_refuses_the_other_flavour(signed_in: Driver):
    """A view's api refuses calls of the other flavour, as its client's does."""
    view = signed_in.client.with_options(timeout=1.0)
    with pytest.raises(nsdk.ConfigurationError, match="nothing was sent"):
        if signed_in.is_async:
            me_op.sync_detailed(client=view.api)
        else:
            await me_op.asyncio_detailed(client=view.api)


# --- DEBUG: why each refresh happened, and where a session came from ------------------------


async def test_debug_says_refresh_after_a_401(
    signed_in: Driver, server: FakeServer, caplog: pytest.LogCaptureFixture
):
    """A 401 logs why the refresh happens, and its outcome; no token in any line."""
    caplog.set_level(logging.DEBUG, logger="nsdk")
    server.expire_access()
    await signed_in.me()
    lines = _debug_lines(caplog)
    assert lines == [
        "GET /api/auth/me attempt=1 -> 401 request_id=req-1",
        "refresh needed after GET /api/auth/me answered 401; the request is resent once",
        "POST /api/auth/refresh attempt=1 -> 200 request_id=req-2",
        "refresh done: the new pair is in the token store as generation 3",
        "GET /api/auth/me attempt=1 -> 200 request_id=req-3",
    ]
    _no_secret_in(lines, server, signed_in.password)


async def test_debug_says_proactive_refresh(
    make: Callable[..., Driver],
    server: FakeServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    """A JWT within refresh_leeway of exp logs a proactive refresh before the call is sent."""
    server.jwt_ttl = 120.0
    drv = make(refresh_leeway=30)
    await drv.login()
    clock.advance(95)
    caplog.set_level(logging.DEBUG, logger="nsdk")
    caplog.clear()
    await drv.me()
    lines = _debug_lines(caplog)
    exp = int(clock.now - 95 + 120)
    assert lines[0] == (
        f"refresh needed before GET /api/auth/me (proactive): the access token expires at "
        f"exp={exp}, within refresh_leeway"
    )
    assert lines[1].startswith("POST /api/auth/refresh attempt=1 -> 200")
    assert lines[2].startswith("refresh done: ")
    assert lines[3].startswith("GET /api/auth/me attempt=1 -> 200")
    _no_secret_in(lines, server, drv.password)


async def test_debug_says_session_resumed_and_adopted(
    make: Callable[..., Driver], server: FakeServer, caplog: pytest.LogCaptureFixture
):
    """Resuming from the store at construction and adopting a peer's rotation are logged."""
    store = nsdk.MemoryTokenStore()
    a = make(token_store=store, refresh_leeway=0)
    await a.login()
    caplog.set_level(logging.DEBUG, logger="nsdk")
    caplog.clear()
    b = make(token_store=store, refresh_leeway=0)
    assert _debug_lines(caplog) == ["session resumed from the token store (generation 1)"]
    caplog.clear()
    server.expire_access()
    await a.me()  # a rotates: the store holds generation 3 (in-flight record, then the pair)
    caplog.clear()
    await b.me()  # b's 401 sends it to the store: it adopts a's pair
    lines = _debug_lines(caplog)
    assert (
        "session adopted from the token store (generation 3): another client sharing it "
        "rotated the pair or signed in"
    ) in lines
    assert not any(line.startswith("POST /api/auth/refresh") for line in lines)
    _no_secret_in(lines, server, a.password)


async def test_debug_says_session_adopted_after_a_peer_login(
    make: Callable[..., Driver], server: FakeServer, caplog: pytest.LogCaptureFixture
):
    """A signed-out client adopting the session a peer signed in logs it at its next call."""
    store = nsdk.MemoryTokenStore()
    a, b = make(token_store=store), make(token_store=store)
    await a.login()
    caplog.set_level(logging.DEBUG, logger="nsdk")
    caplog.clear()
    await b.me()
    assert _debug_lines(caplog)[0] == (
        "session adopted from the token store (generation 1): another client signed in"
    )


# --- the API reference ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Client", "AsyncClient"])
def test_reference_lists_every_public_member_of_the_clients(repo_root: Path, name: str):
    """The nsdk reference renders inherited members, so every public property is listed."""
    griffe = pytest.importorskip("griffe", reason="the docs dependency group is not installed")
    package = griffe.load(
        "nsdk", search_paths=[str(repo_root / "overlay"), str(repo_root / "generated")]
    )
    public = {n for n in dir(getattr(nsdk, name)) if not n.startswith("_")}
    assert {"api", "state", "session", "tokens", "base_url", "with_options"} <= public
    own = {n for n in package[name].members if not n.startswith("_")}
    assert public - own, "nothing inherited: this check would prove nothing"
    assert public <= set(package[name].all_members)  # what mkdocstrings sees, inherited too
    page = (repo_root / "docs" / "reference" / "nsdk.md").read_text(encoding="utf-8")
    assert re.search(r"^\s+inherited_members: true$", page, re.M), "render inherited members"


# --- the "Testing your application" page -----------------------------------------------------


def _testing_page_namespace(repo_root: Path) -> dict[str, Any]:
    text = (repo_root / "docs" / "testing.md").read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "docs_testing"}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        exec(compile(block, "docs/testing.md", "exec"), namespace)
    return namespace


def test_testing_page_mock_transport_examples_run(repo_root: Path):
    """The page's httpx.MockTransport examples pass as written, sync and async."""
    namespace = _testing_page_namespace(repo_root)
    namespace["test_an_expired_token_is_refreshed_once"]()
    namespace["test_a_429_waits_what_retry_after_says"]()


def test_testing_page_server_examples_run(
    repo_root: Path, nsdk_server: Any, nsdk_server_factory: Callable[..., Any]
):
    """The page's reference-server examples pass with the plugin's fixtures, as written."""
    namespace = _testing_page_namespace(repo_root)
    for name in (
        "test_sign_in_and_call",
        "test_a_rate_limited_call_is_retried",
        "test_a_refused_refresh_fails_closed",
    ):
        nsdk_server.reset()  # what nsdk_server_clean does before each test
        namespace[name](nsdk_server)
    namespace["test_expiry_is_invisible_to_the_caller"](nsdk_server_factory)
