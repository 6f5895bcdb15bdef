"""Session decisions pinned down where a mutation run found them loose (issue 16).

Exact request sequences ``(operation, token label)`` from the fake server (see conftest): the token
a resend carries after a Retry-After wait, the bounded extra refreshes after a second 401 whose
token went stale, where the bearer token may go, and what the session core raises when the
session ends while a refresh waits for the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import nsdk
import pytest
from nsdk._auth import AsyncBearerAuth, BearerAuth
from nsdk._session import MAX_STALE_RESENDS, SessionCore

if TYPE_CHECKING:
    from .conftest import Driver, FakeClock, FakeServer

BASE_URL = "https://api.example.com"


async def test_resend_after_retry_after_carries_the_token_rotated_meanwhile(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """A 429 is waited out; meanwhile another caller rotated: the resend carries the new token."""

    async def rotate_then_429(request: httpx.Request) -> tuple[int, dict[str, str]]:
        await signed_in.refresh()  # another caller of this client refreshes meanwhile
        return (429, {"Retry-After": "2"})

    server.script("me", rotate_then_429)
    assert (await signed_in.me()).user_id == "1005"
    assert sleeps == [2.0]
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1"), ("me", "access-2")]


async def test_retry_resend_keeps_the_token_when_nothing_rotated(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """A 503 is backed off and resent with the same, still current, token."""
    server.script("me", 503)
    await signed_in.me()
    assert sleeps == [0.125]
    assert server.seq == [("me", "access-1"), ("me", "access-1")]


async def test_second_401_for_a_token_that_expired_meanwhile_refreshes_again(
    make: Callable[..., Driver], server: FakeServer, clock: FakeClock
):
    """The resend waited past its JWT's refresh point before its 401: refresh and resend."""
    server.jwt_ttl = 60.0
    drv = make()
    await drv.login()
    server.calls.clear()

    def expire_in_flight(request: httpx.Request) -> int:
        clock.advance(59.0)  # the resend was held up until its token is about to expire
        return 401

    server.script("me", 401, expire_in_flight)
    assert (await drv.me()).user_id == "1005"
    assert server.seq == [
        ("me", "access-1"),
        ("refresh", "refresh-1"),
        ("me", "access-2"),
        ("refresh", "refresh-2"),
        ("me", "access-3"),
    ]


async def test_stale_resends_are_capped(signed_in: Driver, server: FakeServer):
    """Every answer a 401 for a token rotated meanwhile: 1 + MAX_STALE_RESENDS resends, no more.

    Then the caller gets the 401.
    """

    async def rotate_then_401(request: httpx.Request) -> int:
        await signed_in.refresh()
        return 401

    server.on("me", rotate_then_401)
    with pytest.raises(nsdk.AuthenticationError):
        await signed_in.me()
    assert MAX_STALE_RESENDS == 3
    expected: list[tuple[str, str | None]] = []
    for n in range(1, 6):  # the first send, its resend, and 3 stale resends
        expected += [("me", f"access-{n}"), ("refresh", f"refresh-{n}")]
    assert server.seq == expected


async def test_second_401_for_the_current_token_goes_to_the_caller(
    signed_in: Driver, server: FakeServer
):
    """A second 401 for a current, unexpired token: no further refresh, the caller gets it."""
    server.script("me", 401, 401)
    with pytest.raises(nsdk.AuthenticationError):
        await signed_in.me()
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1"), ("me", "access-2")]
    assert signed_in.state is nsdk.SessionState.ACTIVE


# --- where the bearer token goes -----------------------------------------------------------


async def test_hand_built_request_to_our_origin_carries_the_token(
    signed_in: Driver, server: FakeServer
):
    """A request built by hand on client.api's httpx client, to our origin: it is signed."""
    response = await signed_in.raw_get(f"{BASE_URL}/api/other?x=1")
    assert response.status_code == 404
    assert [(c.path, c.authorization) for c in server.calls] == [("/api/other", "Bearer access-1")]


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com:8443/api/auth/me",  # another port
        "https://other.example.com/api/auth/me",  # another host
        "https://example.com/api/auth/me",  # a parent domain
    ],
)
async def test_hand_built_request_to_another_origin_carries_no_token(
    signed_in: Driver, server: FakeServer, url: str
):
    """Same path, another origin: the token never leaves its own origin."""
    await signed_in.raw_get(url)
    assert [(str(c.path), c.authorization) for c in server.calls] == [("/api/auth/me", None)]


async def test_other_scheme_is_another_origin(
    make: Callable[..., Driver], server: FakeServer, clock: FakeClock
):
    """http:// on the same host and port as an https base URL is another origin: no token."""
    drv = make(base_url="https://api.example.com:80")
    await drv.login()
    server.calls.clear()
    await drv.raw_get("http://api.example.com:80/api/auth/me")
    assert [(c.path, c.authorization) for c in server.calls] == [("/api/auth/me", None)]


async def test_a_fresh_client_has_no_session(make: Callable[..., Driver], server: FakeServer):
    """Before login: no session, signed out, and a protected call sends nothing."""
    drv = make()
    assert drv.client.session is None
    assert drv.state is nsdk.SessionState.SIGNED_OUT
    with pytest.raises(nsdk.NotAuthenticatedError, match="call login"):
        await drv.me()
    assert server.calls == []


# --- the session ends while a refresh waits for the lock ------------------------------------


def _core(state: str) -> SessionCore:
    tokens = nsdk.Tokens("access-1", "refresh-1")
    stored = nsdk.StoredSession(generation=1, tokens=tokens)
    core = SessionCore(
        stored=stored,
        clock=lambda: 0.0,
        refresh_leeway=30.0,
        refresh_reuse_interval=0.0,
        refresh_deadline=30.0,
        on_tokens_refreshed=None,
        on_session_expired=None,
    )
    if state == "signed_out":
        core.signed_out()
    elif state == "closed":
        core.closed()
    elif state == "expired":
        core.expired("refused", 2)
    return core


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [
        ("signed_out", nsdk.NotAuthenticatedError, "not signed in: call login()"),
        ("closed", nsdk.NotAuthenticatedError, "the client is closed: create a new client"),
        ("expired", nsdk.SessionExpiredError, "the session expired (refresh was refused)"),
    ],
)
async def test_refresh_after_the_session_ended_raises_its_error(
    state: str, error: type[nsdk.NsdkError], message: str
):
    """Logout, close or a refused refresh while a refresh waited: that session error, no I/O."""
    core = _core(state)
    sent: list[str] = []

    def refresh(token: str) -> nsdk.Tokens:
        sent.append(token)
        raise AssertionError("nothing may be sent")

    async def arefresh(token: str) -> nsdk.Tokens:
        return refresh(token)

    store = nsdk.MemoryTokenStore()
    origin = httpx.URL(BASE_URL)
    with pytest.raises(error) as info:
        BearerAuth(core, origin, store, refresh).refresh("access-1")
    assert str(info.value).startswith(message)
    with pytest.raises(error):
        await AsyncBearerAuth(core, origin, store, arefresh).refresh("access-1")
    assert sent == []


def test_replaced_compares_with_the_held_token():
    """replaced(): False for the held token, True for any older one."""
    core = _core("active")
    assert core.replaced("access-1") is False
    assert core.replaced("access-0") is True


def test_auth_shells_refuse_the_other_flavour():
    """BearerAuth is sync-only, AsyncBearerAuth async-only: the other flow raises at once."""
    core = _core("active")
    store = nsdk.MemoryTokenStore()
    request = httpx.Request("GET", f"{BASE_URL}/api/auth/me")

    async def arefresh(token: str) -> nsdk.Tokens:
        raise AssertionError

    def refresh(token: str) -> nsdk.Tokens:
        raise AssertionError

    sync_auth = BearerAuth(core, httpx.URL(BASE_URL), store, refresh)
    with pytest.raises(
        RuntimeError, match=r"^BearerAuth is for httpx\.Client; use AsyncBearerAuth$"
    ):
        sync_auth.async_auth_flow(request)
    async_auth = AsyncBearerAuth(core, httpx.URL(BASE_URL), store, arefresh)
    with pytest.raises(
        RuntimeError, match=r"^AsyncBearerAuth is for httpx\.AsyncClient; use BearerAuth$"
    ):
        async_auth.sync_auth_flow(request)


# --- the store's lease and the thread that waits for its lock ------------------------------


class LeasingStore(nsdk.MemoryTokenStore):
    """A memory store whose critical section hands out a lease, recording who used it."""

    def __init__(self) -> None:
        super().__init__()
        self.lease = object()
        self.waiters: list[tuple[str, bool]] = []  # (thread name, daemon) that entered
        self.leases: list[object | None] = []  # the lease given to each compare_and_set

    def refresh_lock(self) -> Any:
        section = super().refresh_lock()
        store = self

        class Section:
            def __enter__(self) -> object:
                thread = threading.current_thread()
                store.waiters.append((thread.name, thread.daemon))
                section.__enter__()
                return store.lease

            def __exit__(self, *exc: object) -> None:
                section.__exit__(*exc)

        return Section()

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> bool:
        self.leases.append(lease)
        return super().compare_and_set(expected, new, lease)


async def test_refresh_writes_with_the_lease_of_its_critical_section(
    make: Callable[..., Driver], server: FakeServer
):
    """Every write of a refresh carries the lease the store's critical section returned."""
    store = LeasingStore()
    drv = make(token_store=store)
    await drv.login()
    store.leases.clear()
    server.expire_access()
    await drv.me()
    assert store.leases == [store.lease, store.lease]  # the in-flight record, the new pair
    if drv.is_async:  # entered in a daemon thread of its own, never the loop's executor
        assert store.waiters == [("nsdk-store-lock", True)]
    else:
        assert store.waiters == [(threading.current_thread().name, False)]


# --- what a resend after a Retry-After wait carries --------------------------------------


async def test_resend_after_logout_meanwhile_keeps_its_token(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """Signed out while a 429 was waited out: the resend is not re-signed (no 'Bearer None')."""

    async def logout_then_429(request: httpx.Request) -> tuple[int, dict[str, str]]:
        await signed_in.logout()
        return (429, {"Retry-After": "1"})

    server.script("me", logout_then_429)
    with pytest.raises(nsdk.NotAuthenticatedError):
        await signed_in.me()
    assert sleeps == [1.0]
    assert [(c.op, c.authorization) for c in server.calls] == [
        ("me", "Bearer access-1"),
        ("logout", "Bearer access-1"),
        ("me", "Bearer access-1"),
    ]


async def test_resend_to_another_origin_keeps_the_callers_authorization(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """A hand-built request to another origin with its own Authorization: resent unchanged."""
    url = "https://other.example.com/api/things"
    server.script(url, 503)
    headers = {"Authorization": "Bearer theirs"}
    await signed_in.raw("GET", url, headers=headers)
    assert [c.authorization for c in server.calls] == ["Bearer theirs", "Bearer theirs"]
    assert sleeps == [0.125]


async def test_cancelled_lock_waiter_leaves_the_critical_section(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """A task cancelled while its thread waits for the store's lock: that thread leaves at once.

    Once the thread gets in, it leaves the critical section, so the next client gets the lock.
    """
    import asyncio

    store = nsdk.MemoryTokenStore(lock_timeout=5.0)
    drv = client_factory("async", token_store=store)
    await drv.login()
    server.expire_access()
    holder = store.refresh_lock()
    holder.__enter__()  # another client is refreshing
    task = asyncio.ensure_future(drv.me())
    for _ in range(100_000):  # let the task reach the lock and start its waiting thread
        if any(t.name == "nsdk-store-lock" for t in threading.enumerate()):
            break
        await asyncio.sleep(0)
    else:
        raise AssertionError("the refresh never waited for the store's lock")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    holder.__exit__(None, None, None)

    def enter_and_leave() -> None:
        with store.refresh_lock():  # TokenStoreBusyError after 5 s if the waiter kept it
            pass

    await asyncio.to_thread(enter_and_leave)
    assert [c.op for c in server.calls] == ["login", "me", "me"]  # no refresh was sent
