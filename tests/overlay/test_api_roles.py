"""Generated calls through ``client.api``: wrong flavour refused, session roles reach the session.

Issue 14, bugs 1 and 3. ``client.api`` of an ``AsyncClient`` refuses sync calls (and a
``Client``'s refuses asyncio calls) before anything is sent. A generated call of spec role
``login`` or ``logout`` (``x-nsdk-role``) through ``client.api`` signs in or out exactly as the
overlay's own methods do, which send the same calls; a ``refresh`` through ``client.api`` is
refused, unsent: only the client's own refresh runs inside the token store's critical section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import nsdk
import pytest
from nsdk_api.api.auth import login as login_op
from nsdk_api.api.auth import logout as logout_op
from nsdk_api.api.auth import me as me_op
from nsdk_api.api.auth import refresh as refresh_op
from nsdk_api.models import LoginRequest, RefreshRequest

from .conftest import BASE_URL, EMAIL, PASSWORD

if TYPE_CHECKING:
    from types import ModuleType

    from .conftest import Driver, FakeServer

LOGIN = ("login", None)
CREDENTIALS = LoginRequest(email=EMAIL, password=PASSWORD)


async def call(drv: Driver, operation: ModuleType, **kwargs: Any) -> Any:
    """``operation.sync_detailed`` / ``asyncio_detailed`` through ``client.api``, per flavour."""
    if drv.is_async:
        return await operation.asyncio_detailed(client=drv.client.api, **kwargs)
    return operation.sync_detailed(client=drv.client.api, **kwargs)


def stored(store: nsdk.MemoryTokenStore) -> tuple[int, nsdk.Tokens | None]:
    """What the store holds: (generation, tokens)."""
    record = store.read()
    return record.generation, record.tokens


# --- bug 1: the wrong flavour through client.api ------------------------------------------------


async def test_sync_call_through_async_client_api_is_refused_unsent(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """A sync call on an AsyncClient's api raises ConfigurationError naming the async call."""
    drv = client_factory("async")
    await drv.login()
    server.calls.clear()
    with pytest.raises(nsdk.ConfigurationError) as info:
        me_op.sync_detailed(client=drv.client.api)
    assert str(info.value) == (
        "client.api belongs to an nsdk.AsyncClient: synchronous calls through it would bypass "
        "the session, so nothing was sent. Use await me.asyncio_detailed(client=client.api) or "
        "await client.me() (for synchronous code, create an nsdk.Client)"
    )
    assert server.calls == []
    assert (await drv.api_me()).parsed.user_id == "1005"  # the right flavour still works


async def test_asyncio_call_through_sync_client_api_is_refused_unsent(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """An asyncio call on a Client's api raises ConfigurationError naming the sync call."""
    drv = client_factory("sync")
    await drv.login()
    server.calls.clear()
    with pytest.raises(nsdk.ConfigurationError) as info:
        await me_op.asyncio_detailed(client=drv.client.api)
    assert str(info.value) == (
        "client.api belongs to an nsdk.Client: asyncio calls through it would bypass the "
        "session, so nothing was sent. Use me.sync_detailed(client=client.api) or client.me() "
        "(for asyncio code, create an nsdk.AsyncClient)"
    )
    assert server.calls == []
    assert (await drv.api_me()).parsed.user_id == "1005"


async def test_wrong_flavour_login_and_raw_requests_are_refused_unsent(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """Every request on the other flavour's httpx client is refused: a login, hand-built GETs."""
    sync, async_ = client_factory("sync"), client_factory("async")
    with pytest.raises(nsdk.ConfigurationError, match=r"Use await login\.asyncio_detailed\("):
        login_op.sync_detailed(client=async_.client.api, body=CREDENTIALS)
    with pytest.raises(nsdk.ConfigurationError, match=r"or await client\.login\(\.\.\.\) \("):
        login_op.sync(client=async_.client.api, body=CREDENTIALS)
    with pytest.raises(nsdk.ConfigurationError, match=r"Use client\.api\.get_httpx_client\(\) "):
        await sync.client.api.get_async_httpx_client().get("/api/unknown")
    with pytest.raises(nsdk.ConfigurationError, match=r"Use client\.api\.get_async_httpx_client"):
        async_.client.api.get_httpx_client().get(f"{BASE_URL}/api/unknown")
    with pytest.raises(nsdk.ConfigurationError, match=r"Use me\.sync_detailed\(client=client"):
        await sync.client.api.get_async_httpx_client().get("/api/auth/me")  # known by its route
    assert server.calls == []
    assert sync.state is async_.state is nsdk.SessionState.SIGNED_OUT


# --- bug 3: login through client.api --------------------------------------------------------------


async def test_login_through_api_signs_in(make: Callable[..., Driver], server: FakeServer):
    """A generated login through client.api stores and holds its pair; me() then uses it."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    response = await call(drv, login_op, body=CREDENTIALS)
    assert response.status_code == 200
    assert drv.state is nsdk.SessionState.ACTIVE
    assert stored(store) == (1, nsdk.Tokens(access_token="access-1", refresh_token="refresh-1"))
    assert (await drv.me()).user_id == "1005"
    assert server.seq == [LOGIN, ("me", "access-1")]
    assert drv.client.session is None  # not verified with me: that is what login() adds


async def test_overlay_login_advances_the_store_generation_once(
    make: Callable[..., Driver], server: FakeServer
):
    """client.login() signs in once, through the same auth-flow path: one store generation."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    session = await drv.login()
    assert stored(store) == (1, nsdk.Tokens(access_token="access-1", refresh_token="refresh-1"))
    assert drv.client.session == session
    assert server.seq == [LOGIN, ("me", "access-1")]


async def test_login_through_api_over_a_session_replaces_it(signed_in: Driver, server: FakeServer):
    """A second login through client.api replaces the pair and forgets the verified session."""
    assert signed_in.client.session is not None
    await call(signed_in, login_op, body=CREDENTIALS)
    assert signed_in.client.session is None
    await signed_in.me()
    assert server.seq == [LOGIN, ("me", "access-2")]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"accessToken": "access-x", "userId": "1005"}, nsdk.MalformedResponseError),
        (401, nsdk.AuthenticationError),
    ],
    ids=["malformed-200", "401"],
)
async def test_failed_login_through_api_leaves_the_session_unchanged(
    make: Callable[..., Driver], server: FakeServer, answer: object, error: type[Exception]
):
    """A login answer without a parseable pair raises as before; store and state are unchanged."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    server.script("login", answer)
    with pytest.raises(error):
        await call(drv, login_op, body=CREDENTIALS)
    assert drv.state is nsdk.SessionState.SIGNED_OUT
    assert stored(store) == (0, None)


async def test_login_pair_from_another_origin_is_not_adopted(
    make: Callable[..., Driver], server: FakeServer
):
    """A login-shaped answer from another origin, sent on client.api's httpx client, is ignored."""
    drv = make()
    url = "https://elsewhere.example/api/auth/login"
    body = CREDENTIALS.to_dict()
    if drv.is_async:
        response = await drv.client.api.get_async_httpx_client().post(url, json=body)
    else:
        response = drv.client.api.get_httpx_client().post(url, json=body)
    assert response.status_code == 200
    assert drv.state is nsdk.SessionState.SIGNED_OUT


# --- bug 3: logout through client.api -------------------------------------------------------------


async def test_logout_through_api_signs_out(make: Callable[..., Driver], server: FakeServer):
    """A generated logout through client.api clears store and state; me() then fails unsent."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    await drv.login()
    server.calls.clear()
    response = await call(drv, logout_op)
    assert response.status_code == 204
    assert drv.state is nsdk.SessionState.SIGNED_OUT
    assert stored(store) == (2, None)
    with pytest.raises(nsdk.NotAuthenticatedError, match="call login"):
        await drv.me()
    assert server.seq == [("logout", "access-1")]


async def test_logout_through_api_refused_keeps_the_session(
    make: Callable[..., Driver], server: FakeServer
):
    """A logout the server refuses raises to the caller and leaves the session as it was."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store, retry=nsdk.RetryPolicy(max_attempts=1))
    await drv.login()
    server.calls.clear()
    server.script("logout", 500)
    with pytest.raises(nsdk.ServerError):
        await call(drv, logout_op)
    assert drv.state is nsdk.SessionState.ACTIVE
    assert stored(store)[0] == 1
    await drv.me()
    assert server.seq == [("logout", "access-1"), ("me", "access-1")]


@pytest.mark.parametrize(
    ("answer", "confirmed"), [(None, True), (500, False)], ids=["confirmed", "refused"]
)
async def test_overlay_logout_signs_out_once(
    make: Callable[..., Driver], server: FakeServer, answer: object, confirmed: bool
):
    """client.logout() clears the store once, confirmed or not (one new generation, no tokens)."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store, retry=nsdk.RetryPolicy(max_attempts=1))
    await drv.login()
    server.script("logout", answer)
    assert await drv.logout() is confirmed
    assert drv.state is nsdk.SessionState.SIGNED_OUT
    assert stored(store) == (2, None)


# --- bug 3: refresh through client.api ------------------------------------------------------------


async def test_refresh_through_api_is_refused_unsent(signed_in: Driver, server: FakeServer):
    """A generated refresh through client.api raises ConfigurationError pointing to refresh()."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        await call(signed_in, refresh_op, body=RefreshRequest(refresh_token="refresh-1"))
    assert str(info.value) == (
        "a refresh through client.api was refused, and nothing was sent: the client rotates its "
        "tokens itself, inside the token store's refresh critical section, so that no refresh "
        "token is ever presented twice; call client.refresh() (await client.refresh() on an "
        "AsyncClient)"
    )
    assert server.calls == []
    assert signed_in.state is nsdk.SessionState.ACTIVE
    await signed_in.refresh()  # the pair was not spent: the client's own refresh still works
    assert server.seq == [("refresh", "refresh-1")]


async def test_hand_built_refresh_on_api_httpx_client_is_refused(
    signed_in: Driver, server: FakeServer
):
    """A refresh built by hand on client.api's httpx client is refused by its route, unsent."""
    body = {"refreshToken": "refresh-1"}
    with pytest.raises(nsdk.ConfigurationError, match=r"call client\.refresh\(\)"):
        if signed_in.is_async:
            await signed_in.client.api.get_async_httpx_client().post("/api/auth/refresh", json=body)
        else:
            signed_in.client.api.get_httpx_client().post("/api/auth/refresh", json=body)
    assert server.calls == []


async def test_own_refreshes_still_pass(signed_in: Driver, server: FakeServer):
    """The client's own refreshes (after a 401, by refresh()) are not refused as a user's."""
    server.expire_access()
    await signed_in.me()
    await signed_in.refresh()
    assert server.seq == [
        ("me", "access-1"),
        ("refresh", "refresh-1"),
        ("me", "access-2"),
        ("refresh", "refresh-2"),
    ]


def test_own_refresh_mark_does_not_leak_to_other_threads(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """While a thread runs the client's refresh, another thread's api refresh is still refused."""
    import asyncio
    import threading

    drv = client_factory("sync")
    asyncio.run(drv.login())
    server.calls.clear()
    outcome: list[BaseException] = []

    def other_thread_refresh(request: httpx.Request) -> None:
        def attempt() -> None:
            try:
                refresh_op.sync_detailed(
                    client=drv.client.api, body=RefreshRequest(refresh_token="refresh-2")
                )
            except BaseException as exc:  # recorded for the assertion below
                outcome.append(exc)

        worker = threading.Thread(target=attempt)
        worker.start()
        worker.join(timeout=10)
        return None  # then answer the client's own refresh by the spec

    server.script("refresh", other_thread_refresh)
    asyncio.run(drv.refresh())
    assert [type(e) for e in outcome] == [nsdk.ConfigurationError]
    assert server.seq == [("refresh", "refresh-1")]
