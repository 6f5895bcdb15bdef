"""RetryPolicy, parse_retry_after and RetryDecider as pure code; then backoff on both clients.

The client scenarios inject clock, sleep and random (random() == 0.25), so every wait is exact
and nothing really sleeps. With the default policy (0.5 s, x2, full jitter) the backoff waits
are 0.125, 0.25, 0.5 s.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import httpx
import nsdk
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nsdk._retry import RetryDecider
from nsdk_api._operations import OPERATIONS

if TYPE_CHECKING:
    from .conftest import Driver, FakeClock, FakeServer

NOW = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
BACKOFF = [0.125, 0.25, 0.5]


def test_policy_is_frozen():
    """RetryPolicy is an immutable value; evolve derives a new one."""
    policy = nsdk.RetryPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_attempts = 10  # type: ignore[misc]
    assert attrs.evolve(policy, max_attempts=2).max_attempts == 2
    assert policy.max_attempts == 4
    assert nsdk.RetryPolicy.no_retries().max_attempts == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"initial_backoff": -0.1},
        {"max_backoff": -1.0},
        {"multiplier": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"max_retry_after": -1.0},
    ],
)
def test_policy_validators_reject_bad_values(bad: dict[str, float]):
    """Out-of-range parameters are refused at construction."""
    with pytest.raises(ValueError):
        nsdk.RetryPolicy(**bad)


def test_policy_retry_statuses_is_a_frozenset():
    """retry_statuses is converted to a frozenset, so the policy stays hashable."""
    policy = nsdk.RetryPolicy(retry_statuses=[503])
    assert policy.retry_statuses == frozenset({503})
    assert hash(policy) == hash(nsdk.RetryPolicy(retry_statuses={503}))


@pytest.mark.parametrize(
    ("jitter", "rand", "expected"),
    [
        (0.0, 0.99, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]),  # no jitter: the base, capped at 8
        (1.0, 0.0, [0.0] * 6),  # full jitter, lowest draw
        (1.0, 0.5, [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]),
        (0.5, 0.5, [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]),  # half fixed, half random
    ],
)
def test_backoff_math(jitter: float, rand: float, expected: list[float]):
    """backoff = base * (1 - jitter) + base * jitter * random(), base capped at max_backoff."""
    policy = nsdk.RetryPolicy(initial_backoff=0.5, multiplier=2.0, max_backoff=8.0, jitter=jitter)
    assert [policy.backoff(attempt, lambda: rand) for attempt in range(1, 7)] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # IMF-fixdate, equal to now
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),
        ("Wednesday, 21-Oct-15 07:30:00 GMT", 120.0),  # obsolete RFC 850 form
        ("Wed Oct 21 07:30:00 2015", 120.0),  # obsolete asctime form (RFC 9110 5.6.7)
        ("Wed Oct  7 07:28:00 2015", 0.0),  # asctime, day padded with a space, in the past
        ("Tue, 20 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
        ("-1", None),
        ("1.5", None),
        ("+5", None),
        ("1e3", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits are not DIGIT (RFC 5234)
        ("\u00b2", None),  # superscript two: a latin-1 byte a header can carry
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None):
    """Both delta-seconds and the three HTTP-date forms parse; anything else gives None."""
    assert nsdk.parse_retry_after(value, now=NOW) == expected


@given(st.text(alphabet=st.characters(max_codepoint=0xFF)))
def test_parse_retry_after_never_raises(value: str):
    """Any header text (headers decode as latin-1) gives a non-negative wait or None."""
    result = nsdk.parse_retry_after(value, now=NOW)
    assert result is None or result >= 0.0


def decide(op: str | None, method: str, outcomes: list[object], **policy: object) -> list[object]:
    """Feed outcomes to a fresh RetryDecider; the waits it returns, up to the first None."""
    decider = RetryDecider(
        policy=nsdk.RetryPolicy(**policy),  # type: ignore[arg-type]
        operation=OPERATIONS[op] if op else None,
        method=method,
        clock=lambda: NOW,
        random=lambda: 0.25,
    )
    waits: list[object] = []
    for outcome in outcomes:
        decider.started()
        if isinstance(outcome, tuple):
            status, headers = outcome
            wait = decider.after_response(status, httpx.Headers(headers), None)
        elif isinstance(outcome, int):
            wait = decider.after_response(outcome, httpx.Headers(), f"rid-{decider.attempt}")
        else:
            wait = decider.after_error(outcome("simulated"))  # type: ignore[operator]
        waits.append(wait)
        if wait is None:
            break
    return waits


@pytest.mark.parametrize(
    ("op", "method", "outcomes", "policy", "expected"),
    [
        ("me", "GET", [200], {}, [None]),
        ("me", "GET", [500, 502, 503, 504], {}, [*BACKOFF, None]),
        ("me", "GET", [501], {}, [None]),  # not in retry_statuses
        ("me", "GET", [400], {}, [None]),
        ("me", "GET", [401], {}, [None]),  # 401 is the auth flow's business
        ("refresh", "POST", [500], {}, [None]),  # not resend-safe
        ("refresh", "POST", [429, 429], {}, [0.125, 0.25]),  # refused before processing
        ("login", "POST", [500], {}, [0.125]),  # resend-safe in the spec
        ("me", "GET", [(429, {"Retry-After": "3"})], {}, [3.0]),
        ("me", "GET", [(429, {"Retry-After": "61"})], {}, [None]),  # above max_retry_after
        ("me", "GET", [(429, {"Retry-After": "9"})], {"max_retry_after": 10.0}, [9.0]),
        ("me", "GET", [(429, {"Retry-After": "3"})], {"respect_retry_after": False}, [0.125]),
        ("me", "GET", [(429, {"Retry-After": "junk"})], {}, [0.125]),  # unusable: back off
        ("me", "GET", [429, 429, 429, 429], {}, [*BACKOFF, None]),
        ("me", "GET", [500, 500], {"max_attempts": 1}, [None]),
        ("me", "GET", [httpx.ReadTimeout, httpx.RemoteProtocolError], {}, [0.125, 0.25]),
        ("refresh", "POST", [httpx.ReadTimeout], {}, [None]),  # bytes may have left
        ("refresh", "POST", [httpx.RemoteProtocolError], {}, [None]),
        ("refresh", "POST", [httpx.WriteError], {}, [None]),
        ("refresh", "POST", [httpx.ConnectError, httpx.ConnectTimeout], {}, [0.125, 0.25]),
        ("refresh", "POST", [httpx.PoolTimeout], {}, [0.125]),
        (None, "GET", [500], {}, [0.125]),  # unknown operation: by method semantics
        (None, "POST", [500], {}, [None]),
        (None, "POST", [httpx.ConnectError], {}, [0.125]),
    ],
)
def test_decider_table(
    op: str | None, method: str, outcomes: list[object], policy: dict[str, object], expected
):
    """The decision core says wait-and-resend (seconds) or stop (None) per outcome and policy."""
    assert decide(op, method, outcomes, **policy) == expected


def test_decider_records_request_ids_and_total_wait():
    """The decider keeps every attempt's request id, oldest first, and the total wait."""
    decider = RetryDecider(
        policy=nsdk.RetryPolicy(), operation=OPERATIONS["me"], method="GET",
        clock=lambda: NOW, random=lambda: 0.25,
    )  # fmt: skip
    for rid in ("a", "b", "c", "d"):
        decider.started()
        decider.after_response(503, httpx.Headers(), rid)
    assert decider.request_ids == ["a", "b", "c", "d"]
    assert decider.waited == sum(BACKOFF)


# --- backoff on both clients ---------------------------------------------------------------

RA = "Retry-After"


@pytest.mark.parametrize(
    ("outcomes", "expected_sleeps"),
    [
        ([(429, {RA: "2"})], [2.0]),
        ([(429, {RA: email.utils.formatdate(1_700_000_007, usegmt=True)})], [7.0]),
        ([(429, {RA: b"\xb2"})], [0.125]),  # "²" is no number: back off instead
        ([429, 429], [0.125, 0.25]),
        ([500, 502, 503], BACKOFF),
        ([httpx.ConnectError], [0.125]),
        ([httpx.ReadTimeout, httpx.RemoteProtocolError], [0.125, 0.25]),
    ],
    ids=["ra-delta", "ra-date", "ra-latin1-digit", "no-header", "5xx", "connect", "read"],
)
async def test_me_is_retried_then_succeeds(
    signed_in: Driver,
    server: FakeServer,
    sleeps: list[float],
    outcomes: list[object],
    expected_sleeps: list[float],
):
    """me is resent after 429, 5xx and transport errors, waiting exactly what the policy says."""
    server.script("me", *outcomes)
    me = await signed_in.me()
    assert me.user_id == "1005"
    assert sleeps == expected_sleeps
    assert server.seq == [("me", "access-1")] * (len(outcomes) + 1)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_exhausted_raises_server_error(
    signed_in: Driver, server: FakeServer, sleeps: list[float], status: int
):
    """max_attempts 5xx answers raise ServerError with the last and all request ids."""
    server.script("me", *[status] * 4)
    with pytest.raises(nsdk.ServerError) as info:
        await signed_in.me()
    err = info.value
    assert (err.status_code, err.request_id) == (status, "req-4")
    assert err.attempt_request_ids == ("req-1", "req-2", "req-3", "req-4")
    assert err.documented is (status == 500)  # the spec documents 500 only
    assert "req-4" in str(err)
    assert sleeps == BACKOFF
    assert len(server.calls) == 4


async def test_429_exhausted_raises_rate_limit_error(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """A 429 on every attempt raises RateLimitError carrying the last Retry-After."""
    server.script("me", *[(429, {RA: "1"})] * 4)
    with pytest.raises(nsdk.RateLimitError) as info:
        await signed_in.me()
    assert info.value.retry_after == 1.0
    assert info.value.attempt_request_ids == ("req-1", "req-2", "req-3", "req-4")
    assert sleeps == [1.0, 1.0, 1.0]


async def test_retry_after_above_cap_raises_at_once(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """A Retry-After above max_retry_after raises RateLimitError at once, without sleeping."""
    server.script("me", (429, {RA: "120"}))
    with pytest.raises(nsdk.RateLimitError) as info:
        await signed_in.me()
    assert info.value.retry_after == 120.0
    assert sleeps == []
    assert server.seq == [("me", "access-1")]


async def test_400_is_never_retried(make: Callable[..., Driver], server: FakeServer, sleeps):
    """A 400 on login raises BadRequestError after exactly one request."""
    server.script("login", 400)
    with pytest.raises(nsdk.BadRequestError) as info:
        await make().login()
    assert info.value.detail == "simulated 400"
    assert server.seq == [("login", None)]
    assert sleeps == []


@pytest.mark.parametrize(
    ("error", "raised"),
    [(httpx.ReadTimeout, nsdk.APITimeoutError), (httpx.ConnectError, nsdk.APIConnectionError)],
)
async def test_transport_errors_exhausted(
    signed_in: Driver, server: FakeServer, sleeps: list[float], error: type, raised: type
):
    """A transport error on every attempt surfaces as the nsdk error, chained to httpx's."""
    server.script("me", *[error] * 4)
    with pytest.raises(raised) as info:
        await signed_in.me()
    assert isinstance(info.value.__cause__, error)
    assert sleeps == BACKOFF
    assert len(server.calls) == 4


@pytest.mark.parametrize(
    ("outcome", "raised"),
    [
        (httpx.ReadTimeout, nsdk.APITimeoutError),
        (httpx.RemoteProtocolError, nsdk.APIConnectionError),
        (500, nsdk.ServerError),
    ],
)
async def test_refresh_is_never_resent_after_bytes_may_have_left(
    signed_in: Driver, server: FakeServer, sleeps: list[float], outcome: object, raised: type
):
    """A refresh that may have reached the server is sent once: its token is one-time."""
    server.expire_access()
    server.script("refresh", outcome)
    with pytest.raises(raised) as info:
        await signed_in.me()
    assert not isinstance(info.value, nsdk.SessionExpiredError)
    assert server.seq == [("me", "access-1"), ("refresh", "refresh-1")]
    assert sleeps == []


@pytest.mark.parametrize("outcome", [httpx.ConnectError, httpx.ConnectTimeout, 429])
async def test_refresh_is_resent_when_not_processed(
    signed_in: Driver, server: FakeServer, sleeps: list[float], outcome: object
):
    """A refresh that never left (connect failure) or was refused unprocessed (429) is resent."""
    server.expire_access()
    server.script("refresh", outcome)
    await signed_in.me()
    assert server.seq == [
        ("me", "access-1"),
        ("refresh", "refresh-1"),
        ("refresh", "refresh-1"),
        ("me", "access-2"),
    ]
    assert sleeps == [0.125]


async def test_retry_after_date_uses_injected_clock(
    signed_in: Driver, server: FakeServer, sleeps: list[float], clock: FakeClock
):
    """An HTTP-date Retry-After is measured against the injected clock, to the second."""
    clock.now = NOW
    server.script("me", (429, {RA: "Wed, 21 Oct 2015 07:28:42 GMT"}))
    await signed_in.me()
    assert sleeps == [42.0]
