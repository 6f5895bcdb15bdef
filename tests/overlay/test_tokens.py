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
        store=nsdk.MemoryTokenStore(),
        clock=lambda: now,
        refresh_leeway=leeway,
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


def test_memory_store_round_trip_and_repr():
    """MemoryTokenStore keeps, replaces and forgets tokens; its repr shows none of them."""
    store = nsdk.MemoryTokenStore()
    assert isinstance(store, nsdk.TokenStore)
    assert store.load() is None
    first, second = (nsdk.Tokens(access_token=f"a{i}", refresh_token=f"r{i}") for i in (1, 2))
    store.save(first)
    store.save(second)
    assert store.load() is second
    assert repr(store) == "MemoryTokenStore(holding_tokens=True)"
    store.clear()
    assert store.load() is None


def test_memory_store_is_thread_safe():
    """Concurrent saves and loads never observe a torn or foreign value."""
    store = nsdk.MemoryTokenStore()
    values = [nsdk.Tokens(access_token=f"a{i}", refresh_token=f"r{i}") for i in range(8)]
    seen: list[object] = []

    def work(tokens: nsdk.Tokens) -> None:
        for _ in range(500):
            store.save(tokens)
            seen.append(store.load())

    threads = [threading.Thread(target=work, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(map(id, seen)) <= set(map(id, values))


class RecordingStore:
    """A user store (structural TokenStore) that records what the client does with it."""

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
    assert isinstance(store, nsdk.TokenStore)
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
        core.signed_in(nsdk.Tokens(access_token="a", refresh_token="r"))
    assert core.state is nsdk.SessionState.CLOSED


def test_states_follow_the_session():
    """SIGNED_OUT -> ACTIVE on sign-in, EXPIRED when refresh is refused, ACTIVE again on login."""
    core = _core(NOW, 30)
    assert core.state is nsdk.SessionState.SIGNED_OUT
    core.signed_in(nsdk.Tokens(access_token="a", refresh_token="r"))
    assert core.state is nsdk.SessionState.ACTIVE
    error = core.refresh_refused(nsdk.AuthenticationError("x", status_code=401, request_id="q"))
    assert core.state is nsdk.SessionState.EXPIRED
    assert "request_id=q" in str(error)
    with pytest.raises(nsdk.SessionExpiredError):
        core.refresh_token_for("a")
    core.signed_in(nsdk.Tokens(access_token="b", refresh_token="r2"))
    assert core.current().access_token == "b"
