"""More session decisions pinned down where a mutation run found them loose (issue 16).

The documented DEBUG lines of a refresh (docs/configuration.md, "why each refresh happens"),
the proactive-refresh point of a token whose lifetime is zero, the state of a client resumed
over a store that records an expired session, which requests a resend re-signs, and the
immutability of the session steps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import nsdk
import pytest
from nsdk._session import REFRESH_REFUSED, Refresh, SessionCore, auth_steps, resign

from .conftest import T0, make_jwt

if TYPE_CHECKING:
    from .conftest import Driver, FakeClock, FakeServer

BASE_URL = "https://api.example.com"
ME = "/api/auth/me"
NEEDED_401 = f"refresh needed after GET {ME} answered 401; the request is resent once"
NEEDED_STALE = (
    f"refresh needed after GET {ME} answered 401 again (its token was replaced or expired "
    "meanwhile); the request is resent once"
)


def _needed(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ``refresh needed`` lines of the ``nsdk`` logger, at DEBUG, in order."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "nsdk" and r.levelno == logging.DEBUG and "refresh needed" in r.getMessage()
    ]


def _core(
    tokens: nsdk.Tokens | None, clock: Callable[[], float], *, expired: bool = False
) -> SessionCore:
    return SessionCore(
        stored=nsdk.StoredSession(generation=1, tokens=tokens, expired=expired),
        clock=clock,
        refresh_leeway=30.0,
        refresh_reuse_interval=0.0,
        refresh_deadline=30.0,
        on_tokens_refreshed=None,
        on_session_expired=None,
    )


# --- the documented DEBUG lines ------------------------------------------------------------


async def test_proactive_refresh_logs_its_line(
    make: Callable[..., Driver],
    server: FakeServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    """A JWT within refresh_leeway of its exp: one line naming the request and the exp."""
    server.jwt_ttl = 60.0
    drv = make()
    await drv.login()
    server.calls.clear()
    clock.advance(31.0)  # the leeway is capped at half the 60 s lifetime: due at exp - 30
    caplog.set_level(logging.DEBUG, logger="nsdk")
    await drv.me()
    assert server.seq == [("refresh", "refresh-1"), ("me", "access-2")]
    exp = int(T0 + 60.0)
    assert _needed(caplog) == [
        f"refresh needed before GET {ME} (proactive): the access token expires at exp={exp}, "
        "within refresh_leeway"
    ]


async def test_refresh_after_401_logs_its_line(
    signed_in: Driver, server: FakeServer, caplog: pytest.LogCaptureFixture
):
    """A 401: one ``refresh needed after ... answered 401`` line, then refresh and resend."""
    server.script("me", 401)
    caplog.set_level(logging.DEBUG, logger="nsdk")
    await signed_in.me()
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1"), ("me", "access-2")]
    assert _needed(caplog) == [NEEDED_401]


async def test_stale_resend_logs_the_again_line(
    make: Callable[..., Driver],
    server: FakeServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    """A second 401 for a token that went stale in flight: the ``answered 401 again`` line."""
    server.jwt_ttl = 60.0
    drv = make()
    await drv.login()
    server.calls.clear()

    def expire_in_flight(request: httpx.Request) -> int:
        clock.advance(59.0)
        return 401

    server.script("me", 401, expire_in_flight)
    caplog.set_level(logging.DEBUG, logger="nsdk")
    await drv.me()
    assert [op for op, _ in server.seq] == ["me", "refresh", "me", "refresh", "me"]
    assert _needed(caplog) == [NEEDED_401, NEEDED_STALE]


async def test_second_401_for_the_current_token_logs_one_line(
    signed_in: Driver, server: FakeServer, caplog: pytest.LogCaptureFixture
):
    """The caller gets the second 401 of a current token: no ``again`` line is logged."""
    server.script("me", 401, 401)
    caplog.set_level(logging.DEBUG, logger="nsdk")
    with pytest.raises(nsdk.AuthenticationError):
        await signed_in.me()
    assert _needed(caplog) == [NEEDED_401]


def test_proactive_line_shows_exp_zero(caplog: pytest.LogCaptureFixture):
    """A JWT with ``exp=0`` (long past): refreshed first, and the line says exp=0."""
    tokens = nsdk.Tokens(make_jwt(sub="1005", iat=0, exp=0), "refresh-1")
    core = _core(tokens, lambda: T0)
    request = httpx.Request("GET", f"{BASE_URL}{ME}")
    caplog.set_level(logging.DEBUG, logger="nsdk")
    step = next(auth_steps(core, request, httpx.URL(BASE_URL)))
    assert isinstance(step, Refresh)
    assert step.proactive is True
    assert _needed(caplog) == [
        f"refresh needed before GET {ME} (proactive): the access token expires at exp=0, "
        "within refresh_leeway"
    ]


# --- when a token is due -------------------------------------------------------------------


def test_zero_lifetime_token_is_due_at_its_exp_not_before():
    """iat == exp: the leeway is capped at half the lifetime, 0 s; due at exp exactly."""
    exp = int(T0) + 10
    now = [exp - 0.25]
    tokens = nsdk.Tokens(make_jwt(sub="1005", iat=exp, exp=exp), "refresh-1")
    core = _core(tokens, lambda: now[0])
    assert core.due_for_refresh(tokens) is False
    now[0] = float(exp)
    assert core.due_for_refresh(tokens) is True


def test_resumed_expired_session_stays_expired():
    """A store that records an expired session: the client starts EXPIRED, not SIGNED_OUT."""
    core = _core(None, lambda: T0, expired=True)
    assert core.state is nsdk.SessionState.EXPIRED
    with pytest.raises(
        nsdk.NotAuthenticatedError,
        match=r"^the session expired \(refresh was refused\): call login\(\) again$",
    ):
        core.current()
    assert _core(None, lambda: T0).state is nsdk.SessionState.SIGNED_OUT


# --- which resends are re-signed ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/refresh"])
def test_resend_of_an_unauthenticated_operation_keeps_its_authorization(path: str):
    """Login and refresh never carry the session's token: a resend keeps what the caller set."""
    core = _core(nsdk.Tokens("access-1", "refresh-1"), lambda: T0)
    request = httpx.Request("POST", f"{BASE_URL}{path}", headers={"Authorization": "Bearer own"})
    resign(core, request, httpx.URL(BASE_URL))
    assert request.headers["Authorization"] == "Bearer own"


def test_resend_of_a_protected_call_carries_the_current_token():
    """The counterpart: a protected call that carried an older token is re-signed."""
    core = _core(nsdk.Tokens("access-2", "refresh-2"), lambda: T0)
    request = httpx.Request("GET", f"{BASE_URL}{ME}", headers={"Authorization": "Bearer access-1"})
    resign(core, request, httpx.URL(BASE_URL))
    assert request.headers["Authorization"] == "Bearer access-2"


def test_resend_without_authorization_stays_without():
    """resign() puts the current token only on a request that carries one; none: none added."""
    core = _core(nsdk.Tokens("access-2", "refresh-2"), lambda: T0)
    request = httpx.Request("GET", f"{BASE_URL}{ME}")
    resign(core, request, httpx.URL(BASE_URL))
    assert "Authorization" not in request.headers


def test_auth_steps_refuse_a_refresh_unless_told_it_is_their_own():
    """By default a refresh request to our origin is refused before anything is yielded."""
    core = _core(nsdk.Tokens("access-1", "refresh-1"), lambda: T0)
    request = httpx.Request("POST", f"{BASE_URL}/api/auth/refresh", json={"refreshToken": "x"})
    with pytest.raises(nsdk.ConfigurationError) as info:
        next(auth_steps(core, request, httpx.URL(BASE_URL)))
    assert str(info.value) == REFRESH_REFUSED
    own = auth_steps(core, request, httpx.URL(BASE_URL), own_refresh=True)
    assert next(own) is request
    assert "Authorization" not in request.headers


# --- steps are immutable --------------------------------------------------------------------


def test_steps_refuse_changes_with_a_clear_error():
    """A step's fields can be neither set nor deleted; the error names the class and field."""
    step = Refresh("access-1", proactive=True)
    with pytest.raises(AttributeError, match=r"^Refresh is immutable: cannot delete 'stale'$"):
        del step.stale
    with pytest.raises(AttributeError, match=r"^Refresh is immutable: cannot set 'stale'$"):
        step.stale = "access-2"  # type: ignore[misc]
    assert step.stale == "access-1"
