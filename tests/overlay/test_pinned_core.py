"""SessionCore and the auth shells' store handling, pinned down call by call (issue 16).

Unit scenarios on the decision core (no I/O: an injected clock, stored sessions built by hand)
where a mutation run found the results loose: adopting what the store holds, the messages and
callbacks of each way a session ends, the reuse interval, whether a token is still usable, the
generation a sign-out records, and the errors and log lines of a failing store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import nsdk
import pytest
from nsdk._auth import BearerAuth, _lock_failed, _method_call, _store_lock
from nsdk._session import SessionCore
from nsdk._tokens import RefreshInFlight

PAIR = nsdk.Tokens("access-1", "refresh-1")
NEXT = nsdk.Tokens("access-2", "refresh-2")


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_core(
    stored: nsdk.StoredSession | None = None,
    clock: Callable[[], float] = lambda: 1000.0,
    reuse: float = 0.0,
    refreshed: list[nsdk.Tokens] | None = None,
    expired: list[nsdk.SessionExpiredError] | None = None,
) -> SessionCore:
    """A core holding ``stored`` (default: PAIR at generation 1)."""
    return SessionCore(
        stored=stored if stored is not None else nsdk.StoredSession(1, PAIR),
        clock=clock,
        refresh_leeway=30.0,
        refresh_reuse_interval=reuse,
        refresh_deadline=30.0,
        on_tokens_refreshed=None if refreshed is None else refreshed.append,
        on_session_expired=None if expired is None else expired.append,
    )


# --- follow: adopting what the store holds -------------------------------------------------


def test_follow_a_peer_pair_at_the_same_generation_keeps_the_session():
    """The store at our own generation with a pair: still active, nothing lost."""
    core = make_core()
    core.follow(nsdk.StoredSession(1, PAIR))
    assert (core.state, core.generation, core.current()) == (
        nsdk.SessionState.ACTIVE,
        1,
        PAIR,
    )


def test_follow_a_peer_rotation_adopts_it_and_drops_a_pending_write():
    """A peer's newer pair is adopted; a pair we failed to store is no longer ours to write."""
    core = make_core()
    core.unsaved(1, nsdk.StoredSession(2, NEXT))
    assert core.pending_write() == (1, NEXT)
    core.follow(nsdk.StoredSession(3, PAIR))
    assert (core.generation, core.current(), core.pending_write()) == (3, PAIR, None)


def test_follow_a_store_that_lost_the_session_fails_closed():
    """A generation below ours: the store lost the session; expired, with the callback."""
    expired: list[nsdk.SessionExpiredError] = []
    core = make_core(stored=nsdk.StoredSession(5, PAIR), expired=expired)
    with pytest.raises(nsdk.SessionExpiredError) as info:
        core.follow(nsdk.StoredSession(2, PAIR))
    assert str(info.value) == (
        "the session expired: the token store lost it (generation 2, older than this client's: "
        "restarted empty, or its record was deleted); call login() again"
    )
    assert expired == [info.value]
    assert (core.state, core.generation) == (nsdk.SessionState.EXPIRED, 2)


def test_follow_a_peer_sign_out():
    """The store holds no pair and is not expired: a peer signed out; no callback."""
    expired: list[nsdk.SessionExpiredError] = []
    core = make_core(expired=expired)
    with pytest.raises(nsdk.NotAuthenticatedError) as info:
        core.follow(nsdk.StoredSession(4))
    assert str(info.value) == (
        "signed out by another client sharing the token store: call login() again"
    )
    assert expired == []
    assert (core.state, core.generation) == (nsdk.SessionState.SIGNED_OUT, 4)


def test_follow_a_peer_refused_refresh():
    """The store says expired: a peer's refresh was refused; expired, with the callback."""
    expired: list[nsdk.SessionExpiredError] = []
    core = make_core(expired=expired)
    with pytest.raises(nsdk.SessionExpiredError) as info:
        core.follow(nsdk.StoredSession(4, expired=True))
    assert str(info.value) == (
        "the session expired: another client sharing the token store found its refresh "
        "refused, or an earlier refresh interrupted, and cleared it; call login() again"
    )
    assert expired == [info.value]
    assert (core.state, core.generation) == (nsdk.SessionState.EXPIRED, 4)


def test_follow_on_a_closed_client():
    """A closed client stays closed: the store's end of session is reported as closed."""
    core = make_core()
    core.closed()
    with pytest.raises(nsdk.NotAuthenticatedError) as info:
        core.follow(nsdk.StoredSession(4))
    assert str(info.value) == "the client is closed: create a new client"
    assert core.state is nsdk.SessionState.CLOSED


# --- other transitions ---------------------------------------------------------------------


def test_reloaded_adopts_only_when_signed_out_and_drops_a_pending_write():
    """reloaded(): a signed-out core adopts the stored pair, and has nothing left to write."""
    core = make_core()
    core.unsaved(1, nsdk.StoredSession(2, NEXT))
    core.signed_out()
    core.reloaded(nsdk.StoredSession(6, PAIR))
    assert (core.state, core.generation, core.pending_write()) == (
        nsdk.SessionState.ACTIVE,
        6,
        None,
    )
    core.reloaded(nsdk.StoredSession(7, NEXT))  # active: not adopted
    assert (core.generation, core.current()) == (6, PAIR)


def test_signed_out_records_the_generation_and_drops_a_pending_write():
    """signed_out(n) records generation n; without one the generation stays."""
    core = make_core()
    core.unsaved(1, nsdk.StoredSession(2, NEXT))
    core.signed_out(7)
    assert (core.state, core.generation, core.pending_write()) == (
        nsdk.SessionState.SIGNED_OUT,
        7,
        None,
    )
    core.signed_in(nsdk.StoredSession(8, PAIR))
    core.signed_out()
    assert core.generation == 8


def test_unsaved_and_refreshed_tell_the_application_the_new_pair():
    """on_tokens_refreshed receives the rotated pair, stored or not."""
    refreshed: list[nsdk.Tokens] = []
    core = make_core(refreshed=refreshed)
    core.unsaved(1, nsdk.StoredSession(2, NEXT))
    core.refreshed(nsdk.StoredSession(3, PAIR))
    assert refreshed == [NEXT, PAIR]
    assert core.pending_write() is None


@pytest.mark.parametrize(
    ("reuse", "elapsed", "expected"),
    [
        (0.0, 0.0, False),
        (0.0, -1.0, False),  # a record from a store clock ahead of ours: still no resend
        (0.5, 0.0, True),
        (0.5, 0.49, True),
        (0.5, 0.5, False),
        (2.0, 1.5, True),
    ],
)
def test_may_resend_within_the_reuse_interval_only(reuse: float, elapsed: float, expected: bool):
    """A refresh of unknown outcome may be presented again only within the reuse interval."""
    clock = Clock()
    core = make_core(clock=clock, reuse=reuse)
    record = RefreshInFlight(started_at=clock.now, deadline=clock.now + 30)
    clock.now += elapsed
    assert core.may_resend(record) is expected


def test_usable(jwt: Callable[..., str]):
    """usable(): the held token, not past its exp (an opaque token has none)."""
    clock = Clock(1000.0)
    token = jwt(exp=1100)
    core = make_core(stored=nsdk.StoredSession(1, nsdk.Tokens(token, "r")), clock=clock)
    assert core.usable(token) is True
    assert core.usable("another") is False
    clock.now = 1099.9
    assert core.usable(token) is True
    clock.now = 1100.0
    assert core.usable(token) is False
    opaque = make_core()
    assert opaque.usable("access-1") is True
    opaque.signed_out()
    assert opaque.usable("access-1") is False


# --- the auth shells and a failing store ----------------------------------------------------


class BrokenLockStore(nsdk.MemoryTokenStore):
    """A memory store whose refresh_lock() fails with a foreign exception."""

    def refresh_lock(self) -> Any:
        raise OSError("disk gone")


def test_lock_failure_is_a_token_store_error_naming_the_store():
    """A foreign error entering the critical section: TokenStoreError naming the store."""
    store = BrokenLockStore()
    with pytest.raises(nsdk.TokenStoreError) as info, _store_lock(store):
        pass
    assert str(info.value) == "BrokenLockStore.refresh_lock() failed (OSError)"
    assert info.value.store == "BrokenLockStore"
    assert isinstance(info.value.__cause__, OSError)
    direct = _lock_failed(store, ValueError("x"))
    assert (str(direct), direct.store) == (
        "BrokenLockStore.refresh_lock() failed (ValueError)",
        "BrokenLockStore",
    )


def test_method_call_names_the_client_method():
    """How an error message points to the client's own method for an operation."""
    assert _method_call(nsdk.Client, "me") == "client.me()"
    assert _method_call(nsdk.Client, "login") == "client.login(...)"
    assert _method_call(nsdk.Client, "list_sessions") is None  # no such method
    assert _method_call(nsdk.Client, "__enter__") is None  # private names are never suggested
    assert _method_call(nsdk.Client, "state") is None  # a property, not a method


def test_proactive_refresh_skipped_when_the_store_is_locked_out(
    jwt: Callable[..., str], caplog: pytest.LogCaptureFixture
):
    """The store's lock fails before a proactive refresh: WARNING, and the valid token is sent."""
    clock = Clock(1000.0)
    token = jwt(iat=900, exp=1020)  # within the 30 s leeway: refreshed before use
    store = BrokenLockStore(nsdk.Tokens(token, "refresh-1"))
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"userId": "1", "tenantId": "2", "email": "e@x.io"})

    with (
        caplog.at_level(logging.DEBUG, logger="nsdk"),
        nsdk.Client(
            "https://api.example.com",
            transport=httpx.MockTransport(handler),
            token_store=store,
            clock=clock,
        ) as client,
    ):
        client.me()
    assert sent == [f"Bearer {token}"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "proactive refresh skipped, the access token is still valid and is sent: "
        "BrokenLockStore.refresh_lock() failed (OSError)"
    ]


class UnreadableStore(nsdk.MemoryTokenStore):
    """A memory store whose read() fails with a foreign exception once ``broken``."""

    broken = False

    def read(self) -> nsdk.StoredSession:
        if self.broken:
            raise OSError("unreadable")
        return super().read()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_signed_out_call_with_an_unreadable_store(
    kind: str, caplog: pytest.LogCaptureFixture
):
    """No session, and the store cannot be read: one DEBUG line naming why; not signed in."""
    store = UnreadableStore()
    handler = httpx.MockTransport(lambda r: httpx.Response(500))
    with caplog.at_level(logging.DEBUG, logger="nsdk"):
        if kind == "sync":
            with (
                nsdk.Client("https://api.example.com", transport=handler, token_store=store) as c,
                pytest.raises(nsdk.NotAuthenticatedError),
            ):
                store.broken = True  # after the client read it at construction
                c.me()
        else:
            client = nsdk.AsyncClient(
                "https://api.example.com", transport=handler, token_store=store
            )
            store.broken = True
            with pytest.raises(nsdk.NotAuthenticatedError):
                await client.me()
            await client.aclose()
    lines = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert lines == [
        "no session here, and the token store cannot be read: UnreadableStore.read() failed "
        "(OSError)"
    ]


def test_bearer_auth_refresh_is_single_flight_per_token():
    """A refresh for a token already replaced returns at once: no store section, no send."""
    core = make_core()
    sent: list[str] = []

    def refresh(token: str) -> nsdk.Tokens:
        sent.append(token)
        return NEXT

    auth = BearerAuth(core, httpx.URL("https://api.example.com"), BrokenLockStore(), refresh)
    auth.refresh("access-0")  # not the held token: replaced, nothing to do
    assert sent == []
    with pytest.raises(nsdk.TokenStoreError):
        auth.refresh("access-1")  # the held token: needs the (broken) critical section


def test_adopting_a_peer_pair_is_logged_at_debug(caplog: pytest.LogCaptureFixture):
    """follow() and reloaded() say at DEBUG which generation they adopted, and why."""
    with caplog.at_level(logging.DEBUG, logger="nsdk"):
        core = make_core()
        core.follow(nsdk.StoredSession(1, PAIR))  # the same generation: nothing adopted
        core.follow(nsdk.StoredSession(3, NEXT))
        core.signed_out()
        core.reloaded(nsdk.StoredSession(4, PAIR))
    assert [r.getMessage() for r in caplog.records if r.name == "nsdk"] == [
        "session resumed from the token store (generation 1)",
        "session adopted from the token store (generation 3): another client sharing it "
        "rotated the pair or signed in",
        "session adopted from the token store (generation 4): another client signed in",
    ]


def test_tls_failure_found_up_to_eight_links_down_the_cause_chain():
    """The ssl verification error is looked for in the first 8 links of the chain, no deeper."""
    import ssl

    from nsdk._retry import tls_verification_failure

    def chain(depth: int) -> BaseException:
        error: BaseException = ssl.SSLCertVerificationError("untrusted")
        for _ in range(depth - 1):
            outer = httpx.ConnectError("connect")
            outer.__cause__ = error
            error = outer
        return error

    assert isinstance(tls_verification_failure(chain(8)), ssl.SSLCertVerificationError)
    assert tls_verification_failure(chain(9)) is None


# --- store writes, the store's clock, and refresh errors that must not be skipped -------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_refresh_record_is_in_the_store_clock(
    kind: str,
    client_factory: Callable[..., Any],
    server: Any,
    clock: Any,
    clocked_store: Callable[..., Any],
):
    """The in-flight record's times are the store's (its now()), with the refresh deadline."""
    store = clocked_store()
    drv = client_factory(kind, token_store=store)
    await drv.login()
    store.writes.clear()
    server.expire_access()
    await drv.me()
    record = store.writes[0].refreshing
    assert record is not None
    assert record.started_at == clock.now - 50.0
    assert record.deadline > record.started_at  # started_at + refresh_deadline (positive)
    assert store.writes[1].refreshing is None


class FailingWrites(nsdk.MemoryTokenStore):
    """A memory store whose compare_and_set() fails, or answers something else than a bool."""

    def __init__(self, answer: object) -> None:
        super().__init__()
        self.answer = answer

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (OSError("disk"), "FailingWrites.compare_and_set() failed (OSError)"),
        ("yes", "FailingWrites.compare_and_set() returned a str; it must return True or False"),
    ],
)
async def test_store_write_failures_are_token_store_errors(
    make: Callable[..., Any], answer: object, message: str
):
    """A broken compare_and_set(): TokenStoreError naming the store and what went wrong."""
    drv = make(token_store=FailingWrites(answer))
    with pytest.raises(nsdk.TokenStoreError) as info:
        await drv.login()
    assert str(info.value) == message
    assert info.value.store == "FailingWrites"


async def test_reactive_refresh_with_a_broken_store_raises(make: Callable[..., Any], server: Any):
    """After a 401 the refresh cannot be skipped: the store's error goes to the caller."""
    store = BrokenLockStore()
    drv = make(token_store=store)
    await drv.login()
    server.calls.clear()
    server.script("me", 401)
    with pytest.raises(nsdk.TokenStoreError, match=r"refresh_lock\(\) failed \(OSError\)"):
        await drv.me()
    assert server.seq == [("me", "access-1")]


async def test_async_proactive_refresh_skipped_when_the_store_is_locked_out(
    jwt: Callable[..., str], caplog: pytest.LogCaptureFixture
):
    """AsyncClient: as the sync one, a WARNING naming the store's error; the token is sent."""
    clock = Clock(1000.0)
    token = jwt(iat=900, exp=1020)
    store = BrokenLockStore(nsdk.Tokens(token, "refresh-1"))
    sent: list[str | None] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"userId": "1", "tenantId": "2", "email": "e@x.io"})

    client = nsdk.AsyncClient(
        "https://api.example.com",
        transport=httpx.MockTransport(handler),
        token_store=store,
        clock=clock,
    )
    with caplog.at_level(logging.DEBUG, logger="nsdk"):
        await client.me()
    await client.aclose()
    assert sent == [f"Bearer {token}"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "proactive refresh skipped, the access token is still valid and is sent: "
        "BrokenLockStore.refresh_lock() failed (OSError)"
    ]


async def test_refresh_done_is_logged_with_the_generation(
    make: Callable[..., Any], server: Any, caplog: pytest.LogCaptureFixture
):
    """A refresh says at DEBUG which generation the new pair was stored as."""
    drv = make()
    await drv.login()
    server.expire_access()
    with caplog.at_level(logging.DEBUG, logger="nsdk"):
        await drv.me()
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refresh done")]
    assert done == ["refresh done: the new pair is in the token store as generation 3"]


class OddStore(nsdk.MemoryTokenStore):
    """A memory store whose read() or now() misbehave on demand."""

    read_answer: object = None
    now_answer: object = None

    def read(self) -> Any:
        if isinstance(self.read_answer, Exception):
            raise self.read_answer
        return super().read() if self.read_answer is None else self.read_answer

    def now(self) -> Any:
        if isinstance(self.now_answer, Exception):
            raise self.now_answer
        return 1000.0 if self.now_answer is None else self.now_answer


@pytest.mark.parametrize(
    ("field", "answer", "message"),
    [
        ("read_answer", OSError("x"), "OddStore.read() failed (OSError)"),
        ("read_answer", {"tokens": 1}, "OddStore.read() returned a dict; it must return "),
        ("now_answer", OSError("x"), "OddStore.now() failed (OSError)"),
        ("now_answer", "1000", "OddStore.now() returned a str; it must return seconds since"),
        ("now_answer", True, "OddStore.now() returned a bool; it must return seconds since"),
    ],
)
def test_store_read_and_now_failures_name_the_store(field: str, answer: object, message: str):
    """A store's read() or now() that fails or answers the wrong type: TokenStoreError."""
    from nsdk._auth import store_now, store_read

    store = OddStore()
    setattr(store, field, answer)
    call = store_read if field == "read_answer" else store_now
    with pytest.raises(nsdk.TokenStoreError) as info:
        call(store)
    assert str(info.value).startswith(message)
    assert info.value.store == "OddStore"
    if isinstance(answer, Exception):
        assert info.value.__cause__ is answer


def test_store_now_reads_the_store_clock():
    """store_now(): the store's now() as a float; None for a store that keeps no clock."""
    from nsdk._auth import store_now

    store = OddStore()
    store.now_answer = 1234
    assert store_now(store) == 1234.0
    assert isinstance(store_now(store), float)
    assert store_now(nsdk.MemoryTokenStore()) is None
