"""The fault matrix: one injected server fault per row, and exactly what the client does about it.

Every row injects faults into the reference server (real HTTP on loopback) and states the expected
outcome: the exception (or none), the requests the server received per operation (attempts), the
waits the client asked for, and the session state afterwards. The same table runs for ``Client``
and ``AsyncClient``.

The client's policy is fixed and deterministic: 3 attempts, backoff 0.25 s then 0.5 s (no jitter),
``Retry-After`` honoured up to 10 s; its sleep is recorded instead of slept. Read-timeout rows
use a 0.5 s timeout against a 1.5 s server delay, so they take real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import nsdk
import pytest
from nsdk import SessionState

POLICY = nsdk.RetryPolicy(
    max_attempts=3, initial_backoff=0.25, multiplier=2.0, max_backoff=2.0, jitter=0.0,
    max_retry_after=10.0,
)  # fmt: skip
B1, B2 = 0.25, 0.5  # the backoff waits after attempts 1 and 2
ACTIVE, EXPIRED, SIGNED_OUT = SessionState.ACTIVE, SessionState.EXPIRED, SessionState.SIGNED_OUT
MODES = ("sync", "async")


def http_date(seconds_from_now: float) -> str:
    """An RFC 9110 HTTP-date that many seconds from now (whole seconds, GMT)."""
    return formatdate(time.time() + seconds_from_now, usegmt=True)


@dataclass(frozen=True)
class Row:
    """One fault and its expected outcome."""

    name: str
    faults: tuple[dict[str, Any], ...]  # FaultsClient.add keyword arguments, "op" included
    raises: type[Exception] | None = None
    attempts: dict[str, int] = field(default_factory=lambda: {"me": 1})
    waits: tuple[float, ...] = ()
    state: SessionState = ACTIVE
    action: str = "me"  # "me", or "login" (then the row starts signed out)
    check: Callable[[Any, Any, Any], None] | None = None  # (outcome, driver, server)
    settle: float = 0.0  # seconds for a delayed server handler to finish before the next row


def _fault(op: str, **kwargs: Any) -> dict[str, Any]:
    return {"op": op, **kwargs}


def _rotated(outcome: Any, driver: Any, server: Any) -> None:
    stats = server.stats()
    assert stats["refresh_ok"] == 1 and stats["replays"] == 0


def _rate_limit_30(outcome: Any, driver: Any, server: Any) -> None:
    assert outcome.retry_after == 30.0
    assert outcome.status_code == 429


def _server_error_ids(outcome: Any, driver: Any, server: Any) -> None:
    assert outcome.status_code == 500 and outcome.request_id
    assert len(outcome.attempt_request_ids) == 3
    assert len(set(outcome.attempt_request_ids)) == 3  # three distinct requests, one per attempt


def _no_detail(outcome: Any, driver: Any, server: Any) -> None:
    assert outcome.detail is None  # an HTML or empty body has no detail; the status still counts


def _undocumented(status: int) -> Callable[[Any, Any, Any], None]:
    def check(outcome: Any, driver: Any, server: Any) -> None:
        assert outcome.status_code == status and outcome.documented is False

    return check


def _refresh_unspent(outcome: Any, driver: Any, server: Any) -> None:
    """A reset before the server acted is unknowable (bytes left): the next refresh fails closed.

    With no reuse interval the token is never presented again.
    """
    assert driver.call("me") is not None  # the access token itself is still good
    with pytest.raises(nsdk.SessionExpiredError, match="interrupted"):
        driver.call("refresh")
    assert driver.state is EXPIRED
    stats = server.stats()
    assert stats["refresh_requests"] == 1 and stats["replays"] == 0
    assert stats["families_revoked"] == 0


def _refresh_spent(outcome: Any, driver: Any, server: Any) -> None:
    """The server rotated but the answer was lost: never resent; the next refresh fails closed.

    At once, naming the cause, instead of presenting the spent token (which would be replay).
    """
    stats = server.stats()
    assert stats["refresh_requests"] == 1 and stats["replays"] == 0
    assert driver.call("me") is not None  # the access token itself is still good
    with pytest.raises(nsdk.SessionExpiredError, match="interrupted"):
        driver.call("refresh")
    assert driver.state is EXPIRED
    stats = server.stats()
    assert stats["refresh_requests"] == 1 and stats["families_revoked"] == 0


def _http_date_wait(outcome: Any, driver: Any, server: Any) -> None:
    assert len(driver.waits) == 1 and 2.0 < driver.waits[0] <= 4.0


ROWS = [
    # --- 401 and refresh ------------------------------------------------------------------
    Row("401 then refresh ok", (_fault("me", status=401),),
        attempts={"me": 2, "refresh": 1}, check=_rotated),
    Row("refresh answers 401: fail closed",
        (_fault("me", status=401), _fault("refresh", status=401)),
        raises=nsdk.SessionExpiredError, attempts={"me": 1, "refresh": 1}, state=EXPIRED),
    Row("401 again after refresh: no loop", (_fault("me", status=401, times=2),),
        raises=nsdk.AuthenticationError, attempts={"me": 2, "refresh": 1}),
    Row("refresh answers malformed JSON: fail closed (the rotated pair is lost)",
        (_fault("me", status=401), _fault("refresh", body="malformed")),
        raises=nsdk.SessionExpiredError, attempts={"me": 1, "refresh": 1}, state=EXPIRED),
    Row("refresh answers 500: not resent, session kept",
        (_fault("me", status=401), _fault("refresh", status=500)),
        raises=nsdk.ServerError, attempts={"me": 1, "refresh": 1}),
    Row("refresh answers 429: waited and resent",
        (_fault("me", status=401), _fault("refresh", status=429, retry_after="1")),
        attempts={"me": 2, "refresh": 2}, waits=(1.0,)),
    # --- 429 -------------------------------------------------------------------------------
    Row("429 with delta-seconds", (_fault("me", status=429, retry_after="2"),),
        attempts={"me": 2}, waits=(2.0,)),
    Row("429 with an HTTP-date", (_fault("me", status=429, retry_after=lambda: http_date(4)),),
        attempts={"me": 2}, check=_http_date_wait),
    Row("429 without Retry-After: backoff", (_fault("me", status=429),),
        attempts={"me": 2}, waits=(B1,)),
    Row("429 asking more than the policy's cap: raise at once",
        (_fault("me", status=429, retry_after="30"),),
        raises=nsdk.RateLimitError, attempts={"me": 1}, check=_rate_limit_30),
    Row("429 persistent", (_fault("me", status=429, retry_after="1", times=3),),
        raises=nsdk.RateLimitError, attempts={"me": 3}, waits=(1.0, 1.0)),
    # --- 5xx -------------------------------------------------------------------------------
    Row("500 transient", (_fault("me", status=500),), attempts={"me": 2}, waits=(B1,)),
    Row("500 persistent", (_fault("me", status=500, times=3),),
        raises=nsdk.ServerError, attempts={"me": 3}, waits=(B1, B2), check=_server_error_ids),
    Row("500 from a server exception", (_fault("me", exception=True),),
        attempts={"me": 2}, waits=(B1,)),
    Row("502 transient", (_fault("me", status=502),), attempts={"me": 2}, waits=(B1,)),
    Row("503 transient", (_fault("me", status=503),), attempts={"me": 2}, waits=(B1,)),
    Row("504 transient", (_fault("me", status=504),), attempts={"me": 2}, waits=(B1,)),
    Row("503 persistent (undocumented for me)", (_fault("me", status=503, times=3),),
        raises=nsdk.ServerError, attempts={"me": 3}, waits=(B1, B2), check=_undocumented(503)),
    # --- 4xx -------------------------------------------------------------------------------
    Row("400 on login", (_fault("login", status=400),), action="login",
        raises=nsdk.BadRequestError, attempts={"login": 1}, state=SIGNED_OUT),
    Row("401 on login", (_fault("login", status=401),), action="login",
        raises=nsdk.AuthenticationError, attempts={"login": 1}, state=SIGNED_OUT),
    Row("403 undocumented", (_fault("me", status=403),),
        raises=nsdk.PermissionDeniedError, check=_undocumented(403)),
    Row("404 undocumented", (_fault("me", status=404),),
        raises=nsdk.NotFoundError, check=_undocumented(404)),
    Row("409 undocumented", (_fault("me", status=409),),
        raises=nsdk.ConflictError, check=_undocumented(409)),
    # --- connections -----------------------------------------------------------------------
    Row("GET dropped before the server acted: resent", (_fault("me", drop="before"),),
        attempts={"me": 2}, waits=(B1,)),
    Row("GET dropped after the server acted: resent (resend-safe)", (_fault("me", drop="after"),),
        attempts={"me": 2}, waits=(B1,)),
    Row("refresh dropped before the server acted: raised, then fails closed (unknowable)",
        (_fault("me", status=401), _fault("refresh", drop="before")),
        raises=nsdk.APIConnectionError, attempts={"me": 1, "refresh": 1},
        check=_refresh_unspent),
    Row("refresh dropped after the server rotated: never resent, then fails closed",
        (_fault("me", status=401), _fault("refresh", drop="after")),
        raises=nsdk.APIConnectionError, attempts={"me": 1, "refresh": 1}, check=_refresh_spent),
    Row("read timeout on GET: resent", (_fault("me", delay=1.5),),
        attempts={"me": 2}, waits=(B1,), settle=1.0),
    Row("read timeout on refresh: never resent",
        (_fault("me", status=401), _fault("refresh", delay=1.5)),
        raises=nsdk.APITimeoutError, attempts={"me": 1, "refresh": 1}, settle=1.2),
    # --- bodies ----------------------------------------------------------------------------
    Row("200 with malformed JSON", (_fault("me", body="malformed"),),
        raises=nsdk.MalformedResponseError),
    Row("200 with valid JSON of the wrong shape", (_fault("me", body="wrong_shape"),),
        raises=nsdk.MalformedResponseError),
    Row("200 with an HTML page", (_fault("me", body="html"),),
        raises=nsdk.MalformedResponseError),
    Row("502 HTML error page (a proxy's), persistent",
        (_fault("me", status=502, body="html", times=3),),
        raises=nsdk.ServerError, attempts={"me": 3}, waits=(B1, B2), check=_no_detail),
    Row("200 with an empty body", (_fault("me", body="empty"),),
        raises=nsdk.MalformedResponseError),
    Row("500 with an empty body, persistent", (_fault("me", status=500, body="empty", times=3),),
        raises=nsdk.ServerError, attempts={"me": 3}, waits=(B1, B2), check=_no_detail),
    Row("200 with a huge body (5 MiB)", (_fault("me", body="huge"),),
        raises=nsdk.MalformedResponseError),
    Row("200 with a body cut short: resent", (_fault("me", body="truncated"),),
        attempts={"me": 2}, waits=(B1,)),
]  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_fault_matrix(row: Row, mode: str, server: Any, make_driver: Any, ledger: Any) -> None:
    """The injected fault leads to exactly the row's exception, attempts, waits and state."""
    driver = make_driver(mode, server.base_url, retry=POLICY, timeout=0.5)
    if row.action != "login":
        driver.login()
    server.reset()
    for fault in row.faults:
        kwargs = {k: (v() if callable(v) else v) for k, v in fault.items()}
        server.faults.add(**kwargs)

    outcome: Any
    try:
        outcome = driver.login() if row.action == "login" else driver.call(row.action)
    except Exception as exc:
        ledger.exception(exc)
        outcome = exc
    if row.settle:
        time.sleep(row.settle)

    if row.raises is None:
        assert not isinstance(outcome, Exception), repr(outcome)
        assert outcome.user_id == "1005"
    else:
        assert type(outcome) is row.raises, repr(outcome)
    requests = server.stats()["requests"]
    assert {op: n for op, n in requests.items() if n} == row.attempts
    if row.check is None or row.check is not _http_date_wait:
        assert tuple(driver.waits) == row.waits
    assert driver.state is row.state
    assert server.faults.pending() == []  # every injected fault was consumed
    if row.check is not None:
        row.check(outcome, driver, server)
