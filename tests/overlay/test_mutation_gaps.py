"""Behaviour a mutation run found unpinned after the ``test_pinned_*`` files (issue 16).

What a store holds after each write (login, the in-flight record, the rotated pair, logout),
the generation a client is left at when its session ends on a refused or interrupted refresh,
the store's clock read again for every refresh, the exact message for a store whose ``read()``
answers the wrong type, a ``with_options`` view of a client given its own ``transport=``, and
the retry shells' proxy: named without credentials, and a plain-http 407 chained to the request
it refused; a client waiting out an asctime-form ``Retry-After`` (no zone: GMT by definition)
in a process whose local zone is not UTC; and ``_enter_in_thread`` leaving a critical section its
waiter gave up on (task cancelled, or event loop closed), with exactly ``__exit__(None, None,
None)``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import nsdk
import pytest
from nsdk._auth import _enter_in_thread, run_steps, store_read
from nsdk._refresh import refresh_steps
from nsdk._session import SessionCore
from nsdk._transport import AsyncRetryTransport, RetryTransport

if TYPE_CHECKING:
    from .conftest import ClockedStore, Driver, FakeClock, FakeServer

PAIR = nsdk.Tokens("access-1", "refresh-1")


async def test_store_holds_exactly_each_write_of_a_session(
    make: Callable[..., Driver],
    server: FakeServer,
    clock: FakeClock,
    clocked_store: Callable[..., ClockedStore],
):
    """Login, in-flight record, rotated pair, logout: each a generation, none marked expired."""
    store = clocked_store()
    drv = make(token_store=store)
    await drv.login()
    server.expire_access()
    await drv.me()
    assert await drv.logout() is True
    first, second = nsdk.Tokens("access-1", "refresh-1"), nsdk.Tokens("access-2", "refresh-2")
    record = store.writes[1].refreshing
    assert record is not None
    assert store.writes == [
        nsdk.StoredSession(generation=1, tokens=first, refreshing=None, expired=False),
        nsdk.StoredSession(generation=2, tokens=first, refreshing=record, expired=False),
        nsdk.StoredSession(generation=3, tokens=second, refreshing=None, expired=False),
        nsdk.StoredSession(generation=4, tokens=None, refreshing=None, expired=False),
    ]
    assert [type(w.expired) for w in store.writes] == [bool] * 4


async def test_each_refresh_reads_the_store_clock_again(
    make: Callable[..., Driver],
    server: FakeServer,
    clock: FakeClock,
    clocked_store: Callable[..., ClockedStore],
):
    """The store's clock moved 30 s back after the client started: the record uses its time."""
    store = clocked_store()
    drv = make(token_store=store)  # the client measures the store 50 s behind
    await drv.login()
    store.behind = 80.0
    store.writes.clear()
    server.expire_access()
    await drv.me()
    record = store.writes[0].refreshing
    assert record is not None
    assert record.started_at == clock.now - 80.0


def _core(store: nsdk.MemoryTokenStore, reuse: float = 0.0) -> SessionCore:
    return SessionCore(
        stored=store.read(),
        clock=lambda: 1_700_000_000.0,
        refresh_leeway=30.0,
        refresh_reuse_interval=reuse,
        refresh_deadline=30.0,
        on_tokens_refreshed=None,
        on_session_expired=None,
    )


def test_refused_refresh_leaves_the_client_at_the_cleared_generation():
    """A 401 to refresh clears the store (generation 3): the client records that generation."""
    store = nsdk.MemoryTokenStore(PAIR)
    core = _core(store)
    sent: list[str] = []

    def refuse(refresh_token: str) -> nsdk.Tokens:
        sent.append(refresh_token)
        raise nsdk.AuthenticationError("refused", status_code=401, request_id="req-1")

    with pytest.raises(nsdk.SessionExpiredError):
        run_steps(refresh_steps(core, "access-1"), store, refuse)
    stored = store.read()
    assert sent == ["refresh-1"]
    assert (stored.generation, stored.tokens, stored.expired) == (3, None, True)
    assert core.generation == 3
    assert core.state is nsdk.SessionState.EXPIRED


def test_interrupted_refresh_leaves_the_client_at_the_cleared_generation():
    """A refresh left in flight 10 s ago clears the store (generation 2): the client records it."""
    store = nsdk.MemoryTokenStore()
    record = nsdk.RefreshInFlight(started_at=1_700_000_000.0 - 10.0, deadline=1_700_000_020.0)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR, refreshing=record))
    core = _core(store)

    def never(refresh_token: str) -> nsdk.Tokens:
        raise AssertionError("an interrupted refresh must not be presented again")

    with pytest.raises(nsdk.SessionExpiredError):
        run_steps(refresh_steps(core, "access-1"), store, never)
    stored = store.read()
    assert (stored.generation, stored.tokens, stored.expired) == (2, None, True)
    assert core.generation == 2


def test_store_read_of_the_wrong_type_says_what_it_must_return():
    """A read() answering a dict: the message names the store, the type and what is expected."""

    class DictStore(nsdk.MemoryTokenStore):
        def read(self) -> Any:
            return {"tokens": None}

    with pytest.raises(nsdk.TokenStoreError) as info:
        store_read(DictStore())
    assert str(info.value) == "DictStore.read() returned a dict; it must return nsdk.StoredSession"
    assert info.value.store == "DictStore"


async def test_view_of_a_client_with_its_own_transport_has_its_own_policy(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """with_options on a transport= client: the view sends once, the client still resends."""
    never = nsdk.RetryPolicy.no_retries()
    view = signed_in.client.with_options(retry=never)
    server.script("me", 503)
    with pytest.raises(nsdk.ServerError) as info:
        await view.me() if signed_in.is_async else view.me()
    assert info.value.status_code == 503
    assert server.seq == [("me", "access-1")]
    assert sleeps == []
    server.script("me", 503)
    assert (await signed_in.me()).user_id == "1005"
    assert server.seq == [("me", "access-1")] * 3
    assert len(sleeps) == 1


def _sleep(seconds: float) -> None:
    return None


async def _asleep(seconds: float) -> None:
    return None


def test_shells_keep_their_proxy_without_credentials():
    """A retry shell given a proxy URL with user:password keeps and shows it without them."""
    inner = httpx.MockTransport(lambda request: httpx.Response(200))
    proxy = "http://user:pr0xy-s3cret@proxy.corp:3128"
    sync = RetryTransport(
        inner, nsdk.RetryPolicy(), sleep=_sleep, clock=float, random=float, proxy=proxy
    )
    asynchronous = AsyncRetryTransport(
        inner, nsdk.RetryPolicy(), sleep=_asleep, clock=float, random=float, proxy=proxy
    )
    assert sync.proxy == asynchronous.proxy == "http://proxy.corp:3128"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_plain_http_407_is_chained_to_the_request_it_refused(kind: str):
    """A forwarding proxy's 407: nsdk.ProxyError from an httpx.ProxyError carrying the request."""
    inner = httpx.MockTransport(lambda request: httpx.Response(407))
    url = "http://127.0.0.1:8000/api/things"
    proxy = "http://proxy.corp:3128"
    policy = nsdk.RetryPolicy()
    with pytest.raises(nsdk.ProxyError) as info:
        if kind == "sync":
            shell = RetryTransport(
                inner, policy, sleep=_sleep, clock=float, random=float, proxy=proxy
            )
            with httpx.Client(transport=shell) as client:
                client.get(url)
        else:

            async def send() -> None:
                shell = AsyncRetryTransport(
                    inner, policy, sleep=_asleep, clock=float, random=float, proxy=proxy
                )
                async with httpx.AsyncClient(transport=shell) as client:
                    await client.get(url)

            asyncio.run(send())
    assert info.value.status_code == 407
    cause = info.value.__cause__
    assert isinstance(cause, httpx.ProxyError)
    assert str(cause) == "407 Proxy Authentication Required"
    assert (cause.request.method, str(cause.request.url)) == ("GET", url)


async def test_asctime_retry_after_is_waited_as_gmt_in_another_zone(
    new_york: None, signed_in: Driver, server: FakeServer, clock: FakeClock, sleeps: list[float]
):
    """A 429 whose Retry-After is an asctime date 30 s ahead: waited 30 s, then resent once."""
    when = time.asctime(time.gmtime(clock.now + 30))  # e.g. "Tue Nov 14 22:14:50 2023"
    server.script("me", (429, {"Retry-After": when}))
    assert (await signed_in.me()).user_id == "1005"
    assert sleeps == [30.0]
    assert server.seq == [("me", "access-1"), ("me", "access-1")]


class Gate:
    """A critical section whose ``__enter__`` waits until ``open()``; records every ``__exit__``."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.exits: list[tuple[object, ...]] = []

    def open(self) -> None:
        self.opened.set()

    def __enter__(self) -> str:
        assert self.opened.wait(10), "the test never opened the gate"  # a hang guard only
        return "lease"

    def __exit__(self, *exc: object) -> None:
        self.exits.append(exc)


def _waiting_thread(before: set[threading.Thread]) -> threading.Thread:
    """The thread ``_enter_in_thread`` started (not in ``before``), once it exists."""
    for _ in range(100_000):
        found = [t for t in threading.enumerate() if t.name == "nsdk-store-lock"]
        found = [t for t in found if t not in before]
        if found:
            return found[0]
        time.sleep(0)
    raise AssertionError("_enter_in_thread started no thread")


async def test_section_entered_for_a_waiter_that_is_still_there_is_handed_over():
    """The waiting task gets the section's lease; the section is not left for it."""
    gate = Gate()
    task = asyncio.ensure_future(_enter_in_thread(gate))
    await asyncio.sleep(0)
    gate.open()
    assert await task == "lease"
    assert gate.exits == []


def test_section_entered_after_its_waiter_was_cancelled_is_left():
    """The task was cancelled while its thread waited: once in, the thread leaves at once."""
    loop = asyncio.new_event_loop()
    try:
        gate = Gate()
        before = set(threading.enumerate())
        task = loop.create_task(_enter_in_thread(gate))
        loop.run_until_complete(asyncio.sleep(0))  # the task waits; its thread waits on the gate
        thread = _waiting_thread(before)
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        gate.open()
        thread.join()
        loop.run_until_complete(asyncio.sleep(0))  # the thread's callback runs on the loop
        assert gate.exits == [(None, None, None)]
    finally:
        loop.close()


def test_section_entered_after_its_loop_closed_is_left():
    """The event loop closed while the thread waited: nobody can use the section; it is left."""
    loop = asyncio.new_event_loop()
    gate = Gate()
    before = set(threading.enumerate())
    task = loop.create_task(_enter_in_thread(gate))
    loop.run_until_complete(asyncio.sleep(0))
    thread = _waiting_thread(before)
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()
    gate.open()
    thread.join()
    assert gate.exits == [(None, None, None)]
