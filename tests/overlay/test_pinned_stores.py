"""Store and coordination code pinned down where a mutation run found it loose (issue 16).

A refused refresh (its message, what the store then holds), a refresh that never reached the
server (its in-flight record dropped), the generation a sign-out leaves, the 0.1 store adapter
(one per store object, its checks and messages), and ``StoredSession``'s repr.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import nsdk
import pytest
from nsdk._auth import run_steps
from nsdk._refresh import sign_out_steps
from nsdk._session import SessionCore
from nsdk._stores import BasicStoreAdapter, as_token_store

if TYPE_CHECKING:
    from .conftest import Driver, FakeServer


async def test_refused_refresh_names_the_refusal_and_expires_the_store(
    make: Callable[..., Driver], server: FakeServer
):
    """A 401 to refresh: SessionExpiredError naming it and its request id; the store expired."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    await drv.login()
    server.calls.clear()
    server.expire_access()
    server.script("refresh", 401)
    with pytest.raises(nsdk.SessionExpiredError) as info:
        await drv.me()
    assert str(info.value) == (
        "the session expired: the refresh was refused (AuthenticationError, request_id=req-2); "
        "local tokens were cleared; call login() again"
    )
    stored = store.read()
    assert (stored.tokens, stored.expired, stored.refreshing) == (None, True, None)
    assert drv.state is nsdk.SessionState.EXPIRED


async def test_rate_limited_refresh_keeps_the_pair_and_drops_the_record(
    make: Callable[..., Driver], server: FakeServer
):
    """A 429 to refresh never reached the server: the pair stays, the in-flight record goes."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store, retry=nsdk.RetryPolicy(max_attempts=1))
    await drv.login()
    before = store.read()
    server.expire_access()
    server.script("refresh", (429, {"Retry-After": "5"}))
    with pytest.raises(nsdk.RateLimitError):
        await drv.me()
    after = store.read()
    assert after.tokens == before.tokens
    assert after.refreshing is None
    assert after.generation == before.generation + 2  # the record written, then dropped
    assert drv.state is nsdk.SessionState.ACTIVE


def test_sign_out_records_the_store_generation():
    """After a sign-out the core holds the generation the store wrote."""
    store = nsdk.MemoryTokenStore(nsdk.Tokens("access-1", "refresh-1"))
    core = SessionCore(
        stored=store.read(),
        clock=lambda: 0.0,
        refresh_leeway=30.0,
        refresh_reuse_interval=0.0,
        refresh_deadline=30.0,
        on_tokens_refreshed=None,
        on_session_expired=None,
    )
    run_steps(sign_out_steps(core), store, None)
    assert store.read().tokens is None
    assert core.generation == store.read().generation == 2
    assert core.state is nsdk.SessionState.SIGNED_OUT


class Basic:
    """A 0.1-style store: load, save, clear."""

    def __init__(self, tokens: Any = None) -> None:
        self.tokens = tokens
        self.saved: list[nsdk.Tokens | None] = []

    def load(self) -> Any:
        return self.tokens

    def save(self, tokens: nsdk.Tokens) -> None:
        self.saved.append(tokens)

    def clear(self) -> None:
        self.saved.append(None)


def test_one_adapter_per_basic_store_object():
    """Clients given the same 0.1 store object share one adapter (one coordination)."""
    pair = nsdk.Tokens("access-1", "refresh-1")
    basic = Basic(pair)
    adapter = as_token_store(basic)
    assert isinstance(adapter, BasicStoreAdapter)
    assert as_token_store(basic) is adapter
    assert as_token_store(Basic()) is not adapter
    assert adapter.read() == nsdk.StoredSession(1, pair)
    assert repr(adapter) == "BasicStoreAdapter(Basic)"


def test_basic_store_that_cannot_be_weakly_referenced_still_works():
    """A 0.1 store without __weakref__ gets an adapter of its own on each call."""

    class Slotted:
        __slots__ = ()

        def load(self) -> None:
            return None

        def save(self, tokens: nsdk.Tokens) -> None:
            return None

        def clear(self) -> None:
            return None

    store = Slotted()
    with pytest.raises(TypeError):
        weakref.ref(store)
    first, second = as_token_store(store), as_token_store(store)
    assert isinstance(first, BasicStoreAdapter)
    assert first is not second


def test_basic_store_load_of_the_wrong_type():
    """load() returning something else than Tokens or None: TokenStoreError naming the store."""
    with pytest.raises(nsdk.TokenStoreError) as info:
        as_token_store(Basic("a-token"))
    assert str(info.value) == ("Basic.load() returned a str; it must return nsdk.Tokens or None")
    assert info.value.store == "Basic"


def test_store_methods_must_be_callable():
    """A store attribute that is not a method: ConfigurationError naming it."""

    class NotCallable(Basic):
        save = 5  # type: ignore[assignment]

    with pytest.raises(nsdk.ConfigurationError) as info:
        as_token_store(NotCallable())
    assert str(info.value) == "token_store.save is not callable"


def test_store_methods_must_be_synchronous():
    """A coroutine method: ConfigurationError saying stores are synchronous."""

    class Async(Basic):
        async def clear(self) -> None:  # type: ignore[override]
            return None

    with pytest.raises(nsdk.ConfigurationError) as info:
        as_token_store(Async())
    assert str(info.value) == (
        "token_store.clear is a coroutine function; token stores are synchronous "
        "(the async client runs them in a worker thread)"
    )


def test_not_a_store():
    """Neither protocol: ConfigurationError naming both and the type given."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        as_token_store(object())
    assert str(info.value) == (
        "token_store must implement nsdk.TokenStore (read, compare_and_set, refresh_lock) or the "
        "0.1 protocol (load, save, clear); got object"
    )


def test_stored_session_repr_hides_tokens():
    """The repr says whether there is a pair, never what it is."""
    assert repr(nsdk.StoredSession()) == (
        "StoredSession(generation=0, tokens=None, refreshing=None, expired=False)"
    )
    held = nsdk.StoredSession(3, nsdk.Tokens("access-secret-1", "refresh-secret-1"))
    assert repr(held) == "StoredSession(generation=3, tokens=***, refreshing=None, expired=False)"
