"""Tokens, JWT time claims, token stores, the refresh leeway and session state transitions."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import nsdk
import pytest
from nsdk._session import SessionCore
from nsdk._tokens import jwt_claims_times

if TYPE_CHECKING:
    from .conftest import Driver, FakeServer

NOW = 1_700_000_000.0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_tokens_repr_hides_both_tokens(jwt: Callable[..., str]):
    """repr(Tokens) shows neither token, only the expiry."""
    tokens = nsdk.Tokens(access_token=jwt(exp=NOW), refresh_token="refresh-secret")
    assert repr(tokens) == f"Tokens(access_token=***, refresh_token=***, expires_at={NOW!r})"
    assert "refresh-secret" not in repr(tokens) and tokens.access_token not in repr(tokens)


def test_tokens_are_frozen_values():
    """Tokens cannot be changed, and compare by their two tokens."""
    tokens = nsdk.Tokens(access_token="a", refresh_token="r")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        tokens.access_token = "b"  # type: ignore[misc]
    assert tokens == nsdk.Tokens(access_token="a", refresh_token="r")
    assert tokens != nsdk.Tokens(access_token="a", refresh_token="r2")


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"iat": 100, "exp": 400}, (100.0, 400.0)),
        ({"iat": 100.5, "exp": 400.25}, (100.5, 400.25)),
        ({"exp": 400}, (None, 400.0)),
        ({"iat": 100}, (100.0, None)),
        ({"iat": True, "exp": False}, (None, None)),  # booleans are not times
        ({"iat": "100", "exp": "400"}, (None, None)),
        ({"exp": None}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_jwt_claims_times(jwt: Callable[..., str], claims: dict[str, object], expected):
    """iat and exp are read from a JWT payload when they are numbers."""
    assert jwt_claims_times(jwt(**claims)) == expected


@pytest.mark.parametrize(
    "token",
    [
        "opaque-token",
        "a.b",
        "a.b.c.d",
        "x.!!!not-base64!!!.y",
        f"x.{_b64(b'not json')}.y",
        f"x.{_b64(b'[1, 2]')}.y",
        f"x.{_b64(bytes([0xFF, 0xFE]))}.y",
        "",
    ],
)
def test_non_jwt_tokens_have_no_times(token: str):
    """Opaque and malformed tokens give (None, None): refresh is then reactive only."""
    assert jwt_claims_times(token) == (None, None)
    assert nsdk.Tokens(access_token=token, refresh_token="r").expires_at is None


@pytest.mark.parametrize("pad", ["", "x", "xx", "xxx"])
def test_jwt_payload_without_padding(jwt: Callable[..., str], pad: str):
    """Payloads of every length decode without base64 padding, as JWTs are sent."""
    token = jwt(iat=1, exp=2, sub=pad)
    assert "=" not in token
    assert jwt_claims_times(token) == (1.0, 2.0)


def _core(now: float, leeway: float) -> SessionCore:
    return SessionCore(
        stored=nsdk.StoredSession(),
        clock=lambda: now,
        refresh_leeway=leeway,
        refresh_reuse_interval=0.0,
        refresh_deadline=60.0,
        on_tokens_refreshed=None,
        on_session_expired=None,
    )


@pytest.mark.parametrize(
    ("iat", "exp", "leeway", "now", "due"),
    [
        (NOW, NOW + 300, 30, NOW + 269, False),
        (NOW, NOW + 300, 30, NOW + 270, True),  # exactly at exp - leeway
        (NOW, NOW + 300, 30, NOW + 400, True),  # already expired
        (NOW, NOW + 20, 30, NOW + 9, False),  # leeway capped at half the 20 s lifetime
        (NOW, NOW + 20, 30, NOW + 10, True),
        (None, NOW + 300, 30, NOW + 270, True),  # no iat: the full leeway
        (None, NOW + 300, 0, NOW + 299, False),
    ],
)
def test_due_for_refresh(jwt, iat: float | None, exp: float, leeway: float, now: float, due: bool):
    """A JWT is due within the leeway of exp; the leeway is capped at half its lifetime."""
    claims = {"exp": exp} if iat is None else {"iat": iat, "exp": exp}
    tokens = nsdk.Tokens(access_token=jwt(**claims), refresh_token="r")
    assert _core(now, leeway).due_for_refresh(tokens) is due


def test_opaque_token_is_never_due():
    """An access token without exp is never refreshed ahead of time."""
    tokens = nsdk.Tokens(access_token="opaque-token", refresh_token="r")
    assert _core(NOW + 10**9, 30).due_for_refresh(tokens) is False


def test_memory_store_compare_and_set_and_repr():
    """MemoryTokenStore writes only over the expected generation; its repr shows no token."""
    store = nsdk.MemoryTokenStore()
    assert isinstance(store, nsdk.TokenStore)
    assert store.read() == nsdk.StoredSession() and store.tokens is None
    first, second = (nsdk.Tokens(access_token=f"a{i}", refresh_token=f"r{i}") for i in (1, 2))
    assert store.compare_and_set(0, nsdk.StoredSession(1, first))
    assert not store.compare_and_set(0, nsdk.StoredSession(1, second))  # fenced off
    assert store.tokens is first
    assert store.compare_and_set(1, nsdk.StoredSession(2, second))
    assert store.read().generation == 2 and store.tokens is second
    assert repr(store) == "MemoryTokenStore(generation=2, holding_tokens=True)"
    assert "a2" not in repr(store.read()) and "r2" not in repr(store.read())


def test_memory_store_compare_and_set_is_atomic():
    """64 threads racing compare-and-set over one generation: exactly one write wins each round."""
    store = nsdk.MemoryTokenStore()
    wins: list[int] = []
    barrier = threading.Barrier(64)

    def work(n: int) -> None:
        barrier.wait()
        for _ in range(200):
            cur = store.read()
            tokens = nsdk.Tokens(access_token=f"a{n}", refresh_token=f"r{n}")
            if store.compare_and_set(cur.generation, cur.successor(tokens)):
                wins.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.read().generation == len(wins)  # no lost update: one generation per win


def test_memory_store_lock_wait_is_bounded():
    """A refresh lock held past lock_timeout gives TokenStoreBusyError, and nothing changes."""
    store = nsdk.MemoryTokenStore(lock_timeout=0.01)
    with store.refresh_lock():
        outcome: list[BaseException] = []

        def other() -> None:
            try:
                with store.refresh_lock():
                    pass
            except nsdk.NsdkError as exc:
                outcome.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(outcome) == 1 and isinstance(outcome[0], nsdk.TokenStoreBusyError)
    assert "lock_timeout" in str(outcome[0])


class RecordingStore:
    """A 0.1-style user store (load/save/clear) that records what the client does with it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.tokens: nsdk.Tokens | None = None

    def load(self) -> nsdk.Tokens | None:
        return self.tokens

    def save(self, tokens: nsdk.Tokens) -> None:
        self.events.append(f"save {tokens.refresh_token}")
        self.tokens = tokens

    def clear(self) -> None:
        self.events.append("clear")
        self.tokens = None


async def test_store_and_callback_follow_rotation(make: Callable[..., Driver], server: FakeServer):
    """The store is saved after login and every rotation, cleared on logout; the callback fires."""
    store = RecordingStore()
    assert isinstance(store, nsdk.BasicTokenStore)
    refreshed: list[nsdk.Tokens] = []
    drv = make(token_store=store, on_tokens_refreshed=refreshed.append)
    await drv.login()
    server.expire_access()
    await drv.me()
    rotated = await drv.refresh()
    assert rotated == nsdk.Tokens(access_token="access-3", refresh_token="refresh-3")
    await drv.logout()
    assert store.events == ["save refresh-1", "save refresh-2", "save refresh-3", "clear"]
    assert [t.refresh_token for t in refreshed] == ["refresh-2", "refresh-3"]


def test_illegal_transition_is_refused():
    """A closed session cannot be signed in again: the one transition table refuses it."""
    core = _core(NOW, 30)
    core.closed()
    with pytest.raises(nsdk.NsdkError, match="illegal session transition closed -> active"):
        core.signed_in(nsdk.StoredSession(1, nsdk.Tokens(access_token="a", refresh_token="r")))
    assert core.state is nsdk.SessionState.CLOSED


def test_states_follow_the_session():
    """SIGNED_OUT -> ACTIVE on sign-in, EXPIRED when refresh is refused, ACTIVE again on login."""
    core = _core(NOW, 30)
    assert core.state is nsdk.SessionState.SIGNED_OUT
    core.signed_in(nsdk.StoredSession(1, nsdk.Tokens(access_token="a", refresh_token="r")))
    assert core.state is nsdk.SessionState.ACTIVE
    error = core.expired("the refresh was refused (request_id=q)", 3)
    assert core.state is nsdk.SessionState.EXPIRED and core.generation == 3
    assert "request_id=q" in str(error)
    with pytest.raises(nsdk.SessionExpiredError):
        core.replaced("a")
    core.signed_in(nsdk.StoredSession(4, nsdk.Tokens(access_token="b", refresh_token="r2")))
    assert core.current().access_token == "b"
