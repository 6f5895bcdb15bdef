"""Session scenarios with exact request sequences, run against both Client and AsyncClient.

Sequences are ``(operation, token)``: the bearer token for protected calls, the refresh token in
the body for refresh (see conftest.FakeServer).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import nsdk
import pytest

if TYPE_CHECKING:
    from .conftest import Driver, FakeClock, FakeServer

USER_ID, TENANT_ID = "1005", "2001"  # the fake server's user (the spec's examples)
LOGIN = ("login", None)


async def test_login_verifies_scope_with_me(make: Callable[..., Driver], server: FakeServer):
    """login sends login then me with the new access token and returns the verified session."""
    drv = make()
    session = await drv.login(expected_tenant_id=TENANT_ID)
    assert session == nsdk.Session(user_id=USER_ID, tenant_id=TENANT_ID, email="user@example.com")
    assert server.seq == [LOGIN, ("me", "access-1")]
    assert drv.state is nsdk.SessionState.ACTIVE
    assert drv.client.session == session


async def test_reactive_refresh_resends_with_new_token(signed_in: Driver, server: FakeServer):
    """A 401 on me triggers exactly one refresh, then me is resent once with the new token."""
    server.expire_access()
    me = await signed_in.me()
    assert me.user_id == USER_ID
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1"), ("me", "access-2")]


async def test_retry_once_second_401_raises(signed_in: Driver, server: FakeServer):
    """After a refresh the request is resent once; a second 401 raises AuthenticationError."""
    server.script("me", 401, 401)
    with pytest.raises(nsdk.AuthenticationError) as info:
        await signed_in.me()
    assert info.value.status_code == 401
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1"), ("me", "access-2")]


async def test_stale_401_after_concurrent_refresh_resends_without_refreshing(
    signed_in: Driver, server: FakeServer
):
    """A second 401 for a token another caller replaced meanwhile is resent, with no refresh.

    The first 401 refreshes and resends; the resend's token is rotated by another caller while
    it is in flight, so its 401 is stale (``SessionCore.stale``): resent at once with the
    current token, without a refresh of its own.
    """

    async def refresh_meanwhile_then_401(request: httpx.Request) -> int:
        await signed_in.refresh()  # another caller rotates while this request is in flight
        return 401

    server.script("me", 401, refresh_meanwhile_then_401)
    assert (await signed_in.me()).user_id == USER_ID
    assert server.seq == [
        ("me", "access-1"),
        ("refresh", "refresh-1"),  # this call's refresh after the first 401
        ("me", "access-2"),
        ("refresh", "refresh-2"),  # the other caller's, while access-2 was in flight
        ("me", "access-3"),  # resent with the current token: no third refresh
    ]


def test_refresh_single_flight_threads(client_factory: Callable[..., Driver], server: FakeServer):
    """16 threads that all get 401 for the same stale token cause exactly one refresh."""
    n = 16
    drv = client_factory("sync")
    asyncio.run(drv.login())
    server.calls.clear()
    server.expire_access()
    first_wave = threading.Barrier(n)

    def gate(request: httpx.Request) -> int | None:
        if request.headers["Authorization"] == "Bearer access-1":
            first_wave.wait(timeout=10)  # every thread is in flight with the stale token
            return 401
        return None

    server.on("me", gate)
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda _: drv.client.me(), range(n)))
    assert all(r.user_id == USER_ID for r in results)
    assert (
        server.seq
        == [("me", "access-1")] * n + [("refresh", "refresh-1")] + [("me", "access-2")] * n
    )


async def test_refresh_single_flight_tasks(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """50 tasks that all get 401 for the same stale token cause exactly one refresh."""
    n = 50
    drv = client_factory("async")
    await drv.login()
    server.calls.clear()
    server.expire_access()
    first_wave = asyncio.Barrier(n)

    async def gate(request: httpx.Request) -> int | None:
        if request.headers["Authorization"] == "Bearer access-1":
            async with asyncio.timeout(10):
                await first_wave.wait()
            return 401
        return None

    server.on("me", gate)
    results = await asyncio.gather(*(drv.me() for _ in range(n)))
    assert all(r.user_id == USER_ID for r in results)
    assert (
        server.seq
        == [("me", "access-1")] * n + [("refresh", "refresh-1")] + [("me", "access-2")] * n
    )


async def test_refused_refresh_fails_all_waiting_tasks_closed(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """When the one shared refresh is refused, every waiting task gets SessionExpiredError."""
    n = 10
    expired: list[nsdk.SessionExpiredError] = []
    drv = client_factory("async", on_session_expired=expired.append)
    await drv.login()
    server.calls.clear()
    server.expire_access()
    server.script("refresh", 401)
    first_wave = asyncio.Barrier(n)

    async def gate(request: httpx.Request) -> int:
        await first_wave.wait()
        return 401

    server.on("me", gate)
    results = await asyncio.gather(*(drv.me() for _ in range(n)), return_exceptions=True)
    assert all(isinstance(r, nsdk.SessionExpiredError) for r in results), results
    assert server.seq == [("me", "access-1")] * n + [("refresh", "refresh-1")]
    assert len(expired) == 1


@pytest.mark.parametrize(
    "refusal", [401, 400, {"accessToken": "only-half"}], ids=["401", "400", "malformed-200"]
)
async def test_refused_refresh_fails_closed(
    make: Callable[..., Driver], server: FakeServer, refusal: object
):
    """A refresh answered 401, 400 or an unusable 200 clears everything and expires the session."""
    store = nsdk.MemoryTokenStore()
    expired: list[nsdk.SessionExpiredError] = []
    drv = make(token_store=store, on_session_expired=expired.append)
    await drv.login()
    server.calls.clear()
    server.expire_access()
    server.script("refresh", refusal)
    with pytest.raises(nsdk.SessionExpiredError) as info:
        await drv.me()
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1")]
    assert expired == [info.value]
    assert store.tokens is None
    assert drv.state is nsdk.SessionState.EXPIRED
    assert drv.client.session is None
    with pytest.raises(nsdk.NotAuthenticatedError):
        await drv.me()
    with pytest.raises(nsdk.NotAuthenticatedError):
        await drv.api_me()
    with pytest.raises(nsdk.NotAuthenticatedError):
        await drv.refresh()
    assert len(server.calls) == 2  # nothing more was sent


async def test_proactive_refresh_before_expiry(
    make: Callable[..., Driver], server: FakeServer, clock: FakeClock
):
    """A JWT access token within the leeway of its exp is refreshed before me is sent."""
    server.jwt_ttl = 300.0
    drv = make(refresh_leeway=30.0)
    await drv.login()
    clock.advance(300.0 - 29.0)  # 29 s before exp: inside the 30 s leeway
    await drv.me()
    assert server.seq == [
        LOGIN,
        ("me", "access-1"),
        ("refresh", "refresh-1"),
        ("me", "access-2"),
    ]


async def test_jwt_outside_leeway_is_not_refreshed(
    make: Callable[..., Driver], server: FakeServer, clock: FakeClock
):
    """A JWT access token outside the leeway is sent as is."""
    server.jwt_ttl = 300.0
    drv = make(refresh_leeway=30.0)
    await drv.login()
    clock.advance(300.0 - 31.0)
    await drv.me()
    assert server.seq == [LOGIN, ("me", "access-1"), ("me", "access-1")]


async def test_opaque_token_is_refreshed_reactively_only(
    make: Callable[..., Driver], server: FakeServer, clock: FakeClock
):
    """An opaque access token is never refreshed ahead of time, only after a 401."""
    server.script(
        "login",
        {
            "accessToken": "opaque-token",
            "refreshToken": "r1",
            "userId": USER_ID,
            "tenantId": "2001",
        },
    )
    server.access = "opaque-token"
    server.refresh_token = "r1"
    drv = make()
    await drv.login()
    clock.advance(10 * 365 * 24 * 3600.0)
    await drv.me()
    server.expire_access()
    await drv.me()
    assert server.seq == [
        LOGIN,
        ("me", "opaque-token"),
        ("me", "opaque-token"),
        ("me", "opaque-token"),
        ("refresh", "r1"),
        ("me", "access-1"),
    ]


@pytest.mark.parametrize(
    ("me_body", "expected_tenant_id"),
    [
        ({"userId": "9999", "tenantId": TENANT_ID, "email": "x@example.com"}, None),
        ({"userId": USER_ID, "tenantId": "9999", "email": "x@example.com"}, None),
        (None, "9999"),
    ],
    ids=["other-user", "other-tenant", "unexpected-tenant"],
)
async def test_scope_mismatch_clears_session(
    make: Callable[..., Driver],
    server: FakeServer,
    me_body: dict[str, str] | None,
    expected_tenant_id: str | None,
):
    """A me answer that disagrees with login (or expected_tenant_id) clears the session."""
    if me_body is not None:
        server.me_body = me_body
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    with pytest.raises(nsdk.ScopeMismatchError):
        await drv.login(expected_tenant_id=expected_tenant_id)
    assert server.seq == [LOGIN, ("me", "access-1")]
    assert drv.state is nsdk.SessionState.SIGNED_OUT
    assert store.tokens is None
    with pytest.raises(nsdk.NotAuthenticatedError):
        await drv.me()
    assert len(server.calls) == 2


@pytest.mark.parametrize(
    ("outcomes", "confirmed", "sent"),
    [
        ((), True, 1),
        ((500, 500, 500, 500), False, 4),
        ((httpx.ConnectError,) * 4, False, 4),
    ],
    ids=["204", "500-after-retries", "connect-error"],
)
async def test_logout_always_clears_local_state(
    make: Callable[..., Driver],
    server: FakeServer,
    outcomes: tuple[object, ...],
    confirmed: bool,
    sent: int,
):
    """logout returns whether the server confirmed, and signs out locally either way."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    await drv.login()
    server.calls.clear()
    server.script("logout", *outcomes)
    assert await drv.logout() is confirmed
    assert server.seq == [("logout", "access-1")] * sent
    assert drv.state is nsdk.SessionState.SIGNED_OUT
    assert store.tokens is None
    with pytest.raises(nsdk.NotAuthenticatedError):
        await drv.me()
    assert len(server.calls) == sent


async def test_generated_call_gets_refresh(signed_in: Driver, server: FakeServer):
    """A generated call through client.api gets the bearer token and the 401 -> refresh flow."""
    server.expire_access()
    response = await signed_in.api_me()
    assert response.parsed.tenant_id == TENANT_ID
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1"), ("me", "access-2")]


async def test_generated_call_gets_backoff(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """A generated call through client.api gets the 429 backoff too."""
    server.script("me", (429, {"Retry-After": "2"}))
    response = await signed_in.api_me()
    assert response.status_code == 200
    assert sleeps == [2.0]
    assert server.seq == [("me", "access-1")] * 2


async def test_bad_credentials_raise_without_session(
    make: Callable[..., Driver], server: FakeServer
):
    """A 401 on login raises AuthenticationError, is not refreshed, and leaves no session."""
    server.script("login", 401)
    drv = make()
    with pytest.raises(nsdk.AuthenticationError):
        await drv.login()
    assert server.seq == [LOGIN]
    assert drv.state is nsdk.SessionState.SIGNED_OUT
