"""One session, many clients: the store as coordination point, with exact request sequences.

Two clients share one store (both on the fake server, sync or async): whatever one does, the
other adopts from the store without a request of its own; every race ends as the store says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import nsdk
import pytest

if TYPE_CHECKING:
    from .conftest import ClockedStore, Driver, FakeClock, FakeServer

LOGIN = ("login", None)
A1, A2 = nsdk.Tokens("access-1", "refresh-1"), nsdk.Tokens("access-2", "refresh-2")


async def test_peer_refresh_is_adopted_without_a_request(
    make: Callable[..., Driver], server: FakeServer
):
    """The issue's repro: b's 401 after a rotated is answered by adopting, never by refreshing."""
    store = nsdk.MemoryTokenStore()
    a = make(token_store=store, refresh_leeway=0)
    await a.login()
    b = make(token_store=store, refresh_leeway=0)  # resumes the session from the store
    server.calls.clear()
    server.expire_access()
    await a.me()
    await b.me()
    assert server.seq == [
        ("me", "access-1"),
        ("refresh", "refresh-1"),
        ("me", "access-2"),
        ("me", "access-1"),  # b still held access-1: the 401 sends it to the store, not refresh
        ("me", "access-2"),
    ]
    assert store.tokens == A2 and b.client.state is nsdk.SessionState.ACTIVE


async def test_logout_racing_a_refresh_stays_signed_out(
    make: Callable[..., Driver], server: FakeServer
):
    """b logs out while a's refresh is in flight: a's write is fenced off, nobody is signed in."""
    store = nsdk.MemoryTokenStore(lock_timeout=1.0)
    a, b = make(token_store=store), make(token_store=store)
    await a.login()
    server.calls.clear()
    server.expire_access()

    async def rotate_then_peer_logout(request: httpx.Request) -> httpx.Response:
        answer = server._by_spec(request, request.extensions["test_rid"])  # rotated: access-2
        await b.logout()  # revokes the family (access-1 still valid there), clears the store
        return answer

    server.script("refresh", rotate_then_peer_logout)
    server.script("logout", httpx.Response(204))
    with pytest.raises(nsdk.NotAuthenticatedError, match="signed out by another client"):
        await a.me()
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1"), ("logout", "access-1")]
    assert store.tokens is None and not store.read().expired
    assert a.state is nsdk.SessionState.SIGNED_OUT and b.state is nsdk.SessionState.SIGNED_OUT


async def test_refused_refresh_never_deletes_a_peers_newer_pair(
    make: Callable[..., Driver], server: FakeServer
):
    """a's refresh is refused after b stored a new login: a adopts b's pair, the store keeps it."""
    store = nsdk.MemoryTokenStore()
    a, b = make(token_store=store), make(token_store=store)
    await a.login()
    server.calls.clear()
    server.expire_access()

    async def peer_login_then_refuse(request: httpx.Request) -> int:
        await b.login()  # access-2/refresh-2, a new generation in the store
        return 401

    server.script("refresh", peer_login_then_refuse)
    await a.me()
    assert server.seq == [
        ("me", "access-1"),
        ("refresh", "refresh-1"),
        LOGIN,
        ("me", "access-2"),  # b's scope check
        ("me", "access-2"),  # a resent with the pair it adopted
    ]
    assert store.tokens == A2
    assert a.state is nsdk.SessionState.ACTIVE


async def test_peer_fail_closed_reaches_every_client(
    make: Callable[..., Driver], server: FakeServer
):
    """a's refresh is refused: the store records the expiry and b fails closed without a request."""
    store = nsdk.MemoryTokenStore()
    expired: list[nsdk.SessionExpiredError] = []
    a = make(token_store=store)
    await a.login()
    b = make(token_store=store, on_session_expired=expired.append)
    server.calls.clear()
    server.expire_access()
    server.script("refresh", 401)
    with pytest.raises(nsdk.SessionExpiredError, match="refresh was refused"):
        await a.me()
    assert store.read().expired and store.tokens is None
    with pytest.raises(nsdk.SessionExpiredError, match="another client"):
        await b.me()  # b's 401 for access-1 leads it to the store, which says expired
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1"), ("me", "access-1")]
    assert b.state is nsdk.SessionState.EXPIRED and len(expired) == 1


def _interrupted(clock: FakeClock, age: float) -> nsdk.MemoryTokenStore:
    # A store whose pair had a refresh started `age` seconds ago that never finished.
    store = nsdk.MemoryTokenStore()
    record = nsdk.RefreshInFlight(started_at=clock() - age, deadline=clock() - age + 60)
    assert store.compare_and_set(0, nsdk.StoredSession(7, A1, record))
    return store


async def test_interrupted_refresh_fails_closed_without_a_reuse_interval(
    make: Callable[..., Driver], server: FakeServer, clock: FakeClock
):
    """A refresh record left by a dead holder, no reuse interval: fail closed, token not resent."""
    await make().login()  # the server's current pair is access-1/refresh-1
    server.calls.clear()
    store = _interrupted(clock, age=1.0)
    drv = make(token_store=store)
    with pytest.raises(nsdk.SessionExpiredError, match=r"interrupted.*reuse_interval is 0"):
        await drv.refresh()
    assert server.seq == []  # no blind replay
    assert store.read() == nsdk.StoredSession(8, None, None, expired=True)
    assert drv.state is nsdk.SessionState.EXPIRED


@pytest.mark.parametrize(("age", "resent"), [(9.9, True), (10.0, False)])
async def test_interrupted_refresh_is_resent_only_within_the_reuse_interval(
    make: Callable[..., Driver], server: FakeServer, clock: FakeClock, age: float, resent: bool
):
    """With a 10 s reuse interval the same refresh token is presented again, until 10 s passed."""
    await make().login()
    server.calls.clear()
    store = _interrupted(clock, age=age)
    drv = make(token_store=store, refresh_reuse_interval=10.0)
    if resent:
        assert await drv.refresh() == A2
        assert server.seq == [("refresh", "refresh-1")]
        assert store.read().refreshing is None and store.tokens == A2
    else:
        with pytest.raises(nsdk.SessionExpiredError, match=r"10 s, already past"):
            await drv.refresh()
        assert server.seq == []


async def test_lost_refresh_answer_is_resent_once_within_the_reuse_interval(
    make: Callable[..., Driver], server: FakeServer
):
    """A read timeout on refresh: with a reuse interval the same token is presented once more."""
    drv = make(refresh_reuse_interval=10.0)
    await drv.login()
    server.calls.clear()
    server.script("refresh", httpx.ReadTimeout)
    assert await drv.refresh() == A2
    assert server.seq == [("refresh", "refresh-1"), ("refresh", "refresh-1")]


async def test_lost_refresh_answer_without_reuse_interval_leaves_the_record(
    make: Callable[..., Driver], server: FakeServer
):
    """A read timeout on refresh, no reuse interval: raised; the next refresh fails closed."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    await drv.login()
    server.calls.clear()
    server.script("refresh", httpx.ReadTimeout)
    with pytest.raises(nsdk.APITimeoutError):
        await drv.refresh()
    assert store.read().refreshing is not None and store.tokens == A1
    with pytest.raises(nsdk.SessionExpiredError, match="interrupted"):
        await drv.refresh()
    assert server.seq == [("refresh", "refresh-1")]


async def test_refresh_that_never_left_clears_the_record(
    make: Callable[..., Driver], server: FakeServer
):
    """Connect errors on every attempt: nothing was spent, so the record goes and a retry works."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store, retry=nsdk.RetryPolicy(max_attempts=2))
    await drv.login()
    server.calls.clear()
    server.script("refresh", httpx.ConnectError, httpx.ConnectError)
    with pytest.raises(nsdk.APIConnectionError):
        await drv.refresh()
    assert store.read().refreshing is None and store.tokens == A1
    assert await drv.refresh() == A2
    assert server.seq == [("refresh", "refresh-1")] * 3


class FlakyStore(nsdk.MemoryTokenStore):
    """A memory store whose writes of a rotated pair fail while ``broken`` is set."""

    broken = False

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> bool:
        if self.broken and new.refreshing is None and new.tokens is not None:
            raise nsdk.TokenStoreError("disk full (simulated)", store="FlakyStore")
        return super().compare_and_set(expected, new, lease)


async def test_pair_the_store_refused_is_kept_and_written_at_the_next_refresh(
    make: Callable[..., Driver], server: FakeServer
):
    """A pair the store fails to save: raised, kept in memory, stored at the next refresh."""
    store = FlakyStore()
    drv = make(token_store=store)
    await drv.login()
    server.calls.clear()
    store.broken = True
    with pytest.raises(nsdk.TokenStoreError, match="disk full"):
        await drv.refresh()
    assert drv.state is nsdk.SessionState.ACTIVE and store.tokens == A1  # nothing lost
    await drv.me()  # works from memory with access-2
    store.broken = False
    rotated = await drv.refresh()  # first stores access-2, then rotates it
    assert rotated == nsdk.Tokens("access-3", "refresh-3") and store.tokens == rotated
    assert server.seq == [("refresh", "refresh-1"), ("me", "access-2"), ("refresh", "refresh-2")]


async def test_busy_store_raises_retryable_error_and_sends_nothing(
    make: Callable[..., Driver], server: FakeServer
):
    """Another client holds the refresh lock past lock_timeout: TokenStoreBusyError, no request."""
    store = nsdk.MemoryTokenStore(lock_timeout=0.05)
    drv = make(token_store=store)
    await drv.login()
    server.calls.clear()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store.refresh_lock():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        with pytest.raises(nsdk.TokenStoreBusyError, match="lock_timeout"):
            await drv.refresh()
    finally:
        release.set()
        thread.join()
    assert server.seq == [] and drv.state is nsdk.SessionState.ACTIVE
    assert await drv.refresh() == A2  # retryable: the next attempt goes through


async def test_signed_out_client_adopts_a_peer_login_on_its_next_call(
    make: Callable[..., Driver], server: FakeServer
):
    """b was built before a signed in: its first protected call finds a's session in the store."""
    store = nsdk.MemoryTokenStore()
    a, b = make(token_store=store), make(token_store=store)
    with pytest.raises(nsdk.NotAuthenticatedError):
        await b.me()  # nobody signed in yet: nothing sent
    await a.login()
    await b.me()
    assert server.seq == [LOGIN, ("me", "access-1"), ("me", "access-1")]
    assert b.state is nsdk.SessionState.ACTIVE
    assert await b.logout() is True and store.tokens is None
    with pytest.raises(nsdk.NotAuthenticatedError):
        await a.me()  # a's 401 for the revoked token: the store says signed out


async def test_reload_session_picks_up_a_peer_login(
    make: Callable[..., Driver], server: FakeServer
):
    """reload_session adopts what the store holds now: a peer's login, then its logout."""
    store = nsdk.MemoryTokenStore()
    a, b = make(token_store=store), make(token_store=store)
    assert b.state is nsdk.SessionState.SIGNED_OUT
    await a.login()
    reload: Any = b.client.reload_session
    state = await reload() if b.is_async else reload()
    assert state is nsdk.SessionState.ACTIVE
    await a.logout()
    with pytest.raises(nsdk.NotAuthenticatedError, match="another client"):
        await reload() if b.is_async else reload()


class AsyncMethods:
    """A store written with coroutine methods: refused at construction."""

    async def read(self) -> nsdk.StoredSession:
        return nsdk.StoredSession()

    async def compare_and_set(self, expected: int, new: nsdk.StoredSession, lease: object) -> bool:
        return True

    async def refresh_lock(self) -> None:
        return None


class DictLoader:
    """A 0.1 store whose load returns a dict."""

    def load(self) -> object:
        return {"access_token": "x"}

    def save(self, tokens: nsdk.Tokens) -> None:
        raise AssertionError("never saved")

    def clear(self) -> None:
        raise AssertionError("never cleared")


class DictReader:
    """A store whose read returns a dict."""

    def read(self) -> object:
        return {"generation": 1}

    def compare_and_set(self, expected: int, new: nsdk.StoredSession, lease: object) -> bool:
        return True

    def refresh_lock(self) -> object:
        return threading.Lock()


@pytest.mark.parametrize(
    ("store", "error", "match"),
    [
        (object(), nsdk.ConfigurationError, "must implement nsdk.TokenStore"),
        (AsyncMethods(), nsdk.ConfigurationError, "coroutine function"),
        (DictLoader(), nsdk.TokenStoreError, r"DictLoader.load\(\) returned a dict"),
        (DictReader(), nsdk.TokenStoreError, r"DictReader.read\(\) returned a dict"),
    ],
)
def test_wrong_stores_are_refused_at_construction(
    client_factory: Callable[..., Driver], kind: str, store: object, error: type, match: str
):
    """A store of the wrong shape or returning the wrong value: a typed error, at construction."""
    with pytest.raises(error, match=match):
        client_factory(kind, token_store=store)


async def test_cancelled_lock_waiter_never_keeps_the_lock(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """An async refresh cancelled while waiting for the store's lock leaves it free afterwards."""
    import asyncio

    store = nsdk.MemoryTokenStore(lock_timeout=5.0)
    drv = client_factory("async", token_store=store)
    await drv.login()
    server.calls.clear()
    release = threading.Event()
    held = threading.Event()

    def holder() -> None:
        with store.refresh_lock():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    waiter = asyncio.ensure_future(drv.refresh())
    await asyncio.sleep(0.05)  # the waiter's thread is blocked on the lock
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    thread.join()
    await asyncio.sleep(0.05)  # the waiter's thread gets in, sees the cancel, leaves
    with store.refresh_lock():  # free again (would raise TokenStoreBusyError after 5 s)
        pass
    assert server.seq == []


async def test_many_async_clients_in_one_loop_refresh_once(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """12 AsyncClients of one loop on one store (more than its default workers): one refresh."""
    import asyncio

    store = nsdk.MemoryTokenStore(lock_timeout=5.0)
    first = client_factory("async", token_store=store)
    await first.login()
    clients = [first] + [client_factory("async", token_store=store) for _ in range(11)]
    server.calls.clear()
    server.expire_access()
    await asyncio.gather(*(c.me() for c in clients))
    assert [op for op, _ in server.seq].count("refresh") == 1
    assert server.seq.count(("me", "access-2")) == 12


class BrokenLockStore(nsdk.MemoryTokenStore):
    """A store whose critical section fails on entry with a foreign exception."""

    def refresh_lock(self) -> Any:
        class Broken:
            def __enter__(self) -> None:
                raise RuntimeError("lock service down")

            def __exit__(self, *exc: object) -> None:
                raise AssertionError("never entered, never left")

        return Broken()


async def test_foreign_error_entering_a_store_lock_is_a_token_store_error(
    make: Callable[..., Driver], server: FakeServer
):
    """A custom store's lock raising RuntimeError on entry: TokenStoreError, nothing sent."""
    drv = make(token_store=BrokenLockStore())
    await drv.login()
    server.calls.clear()
    with pytest.raises(nsdk.TokenStoreError, match=r"refresh_lock\(\) failed \(RuntimeError\)"):
        await drv.refresh()
    assert server.seq == [] and drv.state is nsdk.SessionState.ACTIVE


@pytest.mark.parametrize("skew", [-300.0, 300.0])
async def test_skewed_host_refreshes_by_the_store_clock(
    make: Callable[..., Driver],
    server: FakeServer,
    clock: FakeClock,
    skew: float,
    clocked_store: Callable[..., ClockedStore],
):
    """A host 5 minutes off: no refresh before the token's exp on the store's clock, one after."""
    server.jwt_ttl = 60.0  # JWT access tokens: iat/exp on the server's (the store's) time
    store = clocked_store(behind=0.0)
    drv = make(token_store=store, clock=lambda: clock() + skew, refresh_leeway=0)
    await drv.login()
    server.calls.clear()
    for _ in range(5):
        await drv.me()
        clock.advance(10)  # 50 s of the token's 60
    assert [op for op, _ in server.seq] == ["me"] * 5  # no early refresh, no storm
    clock.advance(15)  # past exp on the store's clock
    await drv.me()
    assert server.seq[5:] == [("refresh", "refresh-1"), ("me", "access-2")]


async def test_store_restarted_empty_is_an_expired_session(
    make: Callable[..., Driver],
    server: FakeServer,
    clock: FakeClock,
    clocked_store: Callable[..., ClockedStore],
):
    """The store lost the session (generation went back to 0): SessionExpiredError, no refresh."""
    store = clocked_store(behind=0.0)
    drv = make(token_store=store)
    await drv.login()
    server.calls.clear()
    store.restart_empty()
    server.expire_access()
    with pytest.raises(nsdk.SessionExpiredError, match="token store lost it"):
        await drv.me()
    assert server.seq == [("me", "access-1")]
    assert drv.state is nsdk.SessionState.EXPIRED


class DownStore(nsdk.MemoryTokenStore):
    """A store that can be switched off, like Redis during an outage."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise nsdk.TokenStoreUnavailableError("store down (simulated)", store="DownStore")

    def read(self) -> nsdk.StoredSession:
        self._check()
        return super().read()

    def refresh_lock(self) -> Any:
        self._check()
        return super().refresh_lock()


async def test_store_outage_a_token_due_but_valid_is_still_sent(
    make: Callable[..., Driver], server: FakeServer, clock: FakeClock, caplog
):
    """Store down, token within refresh_leeway but unexpired: sent as is; once expired: raised."""
    server.jwt_ttl = 60.0
    store = DownStore()
    drv = make(token_store=store, refresh_leeway=30)
    await drv.login()
    server.calls.clear()
    clock.advance(45)  # due for a proactive refresh, 15 s before exp
    store.down = True
    with caplog.at_level("WARNING", logger="nsdk"):
        await drv.me()
    assert server.seq == [("me", "access-1")]
    assert "proactive refresh skipped" in caplog.text and "access-1" not in caplog.text
    clock.advance(20)  # expired now: the refresh is needed and the store is down
    server.expire_access()
    with pytest.raises(nsdk.TokenStoreUnavailableError):
        await drv.me()
    assert drv.state is nsdk.SessionState.ACTIVE  # nothing lost: retry when the store is back
    store.down = False
    await drv.me()
    assert [op for op, _ in server.seq].count("refresh") == 1


async def test_signed_out_client_with_the_store_down_is_not_authenticated(
    make: Callable[..., Driver], server: FakeServer
):
    """No session here and the store unreadable: NotAuthenticatedError, nothing sent."""
    store = DownStore()
    drv = make(token_store=store)
    store.down = True
    with pytest.raises(nsdk.NotAuthenticatedError):
        await drv.me()
    assert server.seq == []
