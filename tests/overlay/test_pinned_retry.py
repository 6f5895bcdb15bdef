"""Retry behaviour pinned down where a mutation run found it loose (issue 16).

Each test names the decision it pins: the policy's defaults and validator boundaries, the
``Retry-After`` forms and the ``max_retry_after`` boundary, resend safety by method for requests
the spec does not know, and the DEBUG line of a first answer nothing retries.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import nsdk
import pytest
from nsdk._retry import RetryDecider, parse_retry_after

if TYPE_CHECKING:
    from .conftest import Driver, FakeServer

BASE_URL = "https://api.example.com"


# --- RetryPolicy: defaults and the edges of every validator -----------------------------------


def test_policy_defaults_are_documented_values():
    """Every default, as the docstring and docs/configuration.md give them."""
    policy = nsdk.RetryPolicy()
    assert (
        policy.max_attempts,
        policy.initial_backoff,
        policy.max_backoff,
        policy.multiplier,
        policy.jitter,
        policy.respect_retry_after,
        policy.max_retry_after,
        policy.retry_statuses,
    ) == (4, 0.5, 8.0, 2.0, 1.0, True, 60.0, frozenset({500, 502, 503, 504}))


def test_backoff_grows_then_stops_at_max_backoff():
    """Without jitter: 0.5, 1, 2, 4, 8, then 8 s (the default max_backoff) for ever."""
    policy = nsdk.RetryPolicy(jitter=0.0)
    waits = [policy.backoff(attempt=n, random=lambda: 0.9) for n in range(1, 8)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_jitter_share():
    """jitter=0.5: half of the base is fixed, the other half scaled by random()."""
    policy = nsdk.RetryPolicy(jitter=0.5, initial_backoff=2.0)
    assert policy.backoff(attempt=1, random=lambda: 0.0) == 1.0
    assert policy.backoff(attempt=1, random=lambda: 0.5) == 1.5


@pytest.mark.parametrize(
    "fields",
    [
        {"max_attempts": 1},
        {"initial_backoff": 0},
        {"initial_backoff": 0.0, "max_backoff": 0.0},
        {"multiplier": 1},
        {"jitter": 0},
        {"jitter": 1},
        {"max_retry_after": 0},
        {"retry_statuses": {500}},
        {"retry_statuses": {599}},
        {"retry_statuses": []},
    ],
)
def test_policy_accepts_the_edges(fields: dict[str, object]):
    """The smallest and largest accepted values are accepted (the ranges are inclusive)."""
    policy = nsdk.RetryPolicy(**fields)  # type: ignore[arg-type]
    for name, value in fields.items():
        expected = frozenset(value) if name == "retry_statuses" else value  # type: ignore[arg-type]
        assert getattr(policy, name) == expected


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": 2.0}, "max_attempts"),
        ({"initial_backoff": -0.001}, "initial_backoff"),
        ({"initial_backoff": True}, "initial_backoff"),
        ({"max_backoff": -1}, "max_backoff"),
        ({"max_backoff": math.inf}, "max_backoff"),
        ({"multiplier": 0.999}, "multiplier"),
        ({"jitter": -0.001}, "jitter"),
        ({"jitter": 1.001}, "jitter"),
        ({"jitter": "1"}, "jitter"),
        ({"respect_retry_after": 1}, "respect_retry_after"),
        ({"max_retry_after": -0.5}, "max_retry_after"),
        ({"retry_statuses": {499}}, "retry_statuses"),
        ({"retry_statuses": {600}}, "retry_statuses"),
        ({"retry_statuses": {True}}, "retry_statuses"),
        ({"retry_statuses": 503}, "retry_statuses"),
    ],
)
def test_policy_refuses_just_outside_the_edges(fields: dict[str, object], name: str):
    """Just outside a range: ConfigurationError naming the field."""
    with pytest.raises(nsdk.ConfigurationError, match=rf"^RetryPolicy\.{name} must be "):
        nsdk.RetryPolicy(**fields)  # type: ignore[arg-type]


def test_no_retries_is_one_attempt():
    """RetryPolicy.no_retries() sends each request once."""
    assert nsdk.RetryPolicy.no_retries() == nsdk.RetryPolicy(max_attempts=1)


def test_may_retry_status():
    """429 and the retry statuses may be retried; nothing else is."""
    policy = nsdk.RetryPolicy(retry_statuses={502})
    assert [s for s in (200, 401, 428, 429, 430, 500, 502, 503) if policy.may_retry_status(s)] == [
        429,
        502,
    ]


# --- Retry-After -------------------------------------------------------------------------------


# 1994-11-06 08:49:37 GMT, RFC 9110's example date, as a Unix time.
EXAMPLE = 784111777.0


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 form
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime form: no zone, GMT by definition
    ],
)
def test_http_date_forms_are_gmt_whatever_the_local_zone(new_york: None, value: str):
    """Every HTTP-date form is read as GMT, also on a machine whose zone is not UTC."""
    assert parse_retry_after(value, now=EXAMPLE - 30) == 30.0


def test_retry_after_values():
    """Delta-seconds, a past date, padding, and the unusable values."""
    assert parse_retry_after(" 7 ", now=0.0) == 7.0
    assert parse_retry_after("0", now=0.0) == 0.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=EXAMPLE + 100) == 0.0
    assert parse_retry_after(None, now=0.0) is None
    assert parse_retry_after("-1", now=0.0) is None
    assert parse_retry_after("\u00b2", now=0.0) is None
    assert parse_retry_after("soon", now=0.0) is None


async def test_retry_after_equal_to_max_retry_after_is_waited(
    make: Callable[..., Driver], server: FakeServer, sleeps: list[float]
):
    """Retry-After exactly max_retry_after is honoured (only a longer one raises at once)."""
    drv = make(retry=nsdk.RetryPolicy(max_retry_after=5.0))
    await drv.login()
    server.calls.clear()
    server.script("me", (429, {"Retry-After": "5"}))
    assert (await drv.me()).user_id == "1005"
    assert sleeps == [5.0]
    assert server.seq == [("me", "access-1"), ("me", "access-1")]


async def test_retry_after_ignored_when_policy_says_so(
    make: Callable[..., Driver], server: FakeServer, sleeps: list[float]
):
    """respect_retry_after=False: a 429 is backed off (0.5 s x random 0.25), not waited out."""
    drv = make(retry=nsdk.RetryPolicy(respect_retry_after=False))
    await drv.login()
    server.script("me", (429, {"Retry-After": "600"}))
    assert (await drv.me()).user_id == "1005"
    assert sleeps == [0.125]


# --- resend safety of requests the spec does not know ------------------------------------------


def _decider(method: str, **policy: object) -> RetryDecider:
    return RetryDecider(
        policy=nsdk.RetryPolicy(jitter=0.0, **policy),  # type: ignore[arg-type]
        operation=None,
        method=method,
        clock=lambda: 0.0,
        random=lambda: 0.0,
        attempt=1,
    )


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_idempotent_methods_of_unknown_operations_are_resent(method: str):
    """RFC 9110 idempotent methods: a 503 or a read timeout is resent after the backoff."""
    decider = _decider(method)
    assert decider.after_response(503, httpx.Headers(), "r1") == 0.5
    decider.started()
    assert decider.after_error(httpx.ReadTimeout("t")) == 1.0
    assert decider.waited == 1.5
    assert decider.request_ids == ["r1"]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_other_methods_of_unknown_operations_are_not_resent(method: str):
    """POST and PATCH of unknown operations: a 503 or read timeout is final, a 429 is not."""
    decider = _decider(method)
    assert decider.after_response(503, httpx.Headers(), None) is None
    assert decider.after_error(httpx.ReadTimeout("t")) is None
    assert decider.after_error(httpx.ConnectError("c")) == 0.5  # never sent: safe
    assert decider.after_response(429, httpx.Headers({"Retry-After": "2"}), None) == 2.0


def test_decider_stops_at_max_attempts():
    """Attempt max_attempts is the last: its 503 or 429 is handed over."""
    decider = _decider("GET", max_attempts=2)
    assert decider.after_response(503, httpx.Headers(), None) == 0.5
    assert decider.started() == 2
    assert decider.after_response(503, httpx.Headers(), None) is None
    assert decider.after_response(429, httpx.Headers(), None) is None
    assert decider.after_error(httpx.ConnectError("c")) is None


def test_capped_retry_after_is_recorded():
    """A Retry-After above max_retry_after: no wait, and the asked value is kept for the error."""
    decider = _decider("GET", max_retry_after=1.0)
    assert decider.after_response(429, httpx.Headers({"Retry-After": "1.5"}), None) == 0.5
    assert decider.capped_retry_after is None  # "1.5" is not delta-seconds: backed off instead
    assert decider.after_response(429, httpx.Headers({"Retry-After": "2"}), None) is None
    assert decider.capped_retry_after == 2.0
    assert decider.waited == 0.5


async def test_unknown_put_through_client_api_is_resent(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """A hand-built PUT to our origin that the spec does not know: resent after a 503."""
    server.script("/api/things/1", 503)
    response = await signed_in.raw("PUT", f"{BASE_URL}/api/things/1")
    assert response.status_code == 404  # the fake server's answer to a path it does not know
    assert [(c.method, c.path) for c in server.calls] == [("PUT", "/api/things/1")] * 2
    assert sleeps == [0.125]


async def test_unknown_post_through_client_api_is_not_resent(
    signed_in: Driver, server: FakeServer, sleeps: list[float]
):
    """A hand-built POST the spec does not know: its 503 goes to the caller, nothing resent."""
    server.script("/api/things", 503)
    response = await signed_in.raw("POST", f"{BASE_URL}/api/things")
    assert response.status_code == 503
    assert [(c.method, c.path) for c in server.calls] == [("POST", "/api/things")]
    assert sleeps == []


# --- the DEBUG line of a first answer that nothing retries -------------------------------------


async def test_first_answer_not_retried_is_logged_at_debug(
    signed_in: Driver, caplog: pytest.LogCaptureFixture
):
    """One DEBUG line: method, path, attempt 1, status, request id, and no retry_in."""
    with caplog.at_level(logging.DEBUG, logger="nsdk"):
        await signed_in.me()
    lines = [r.getMessage() for r in caplog.records if r.name == "nsdk" and "attempt=" in r.message]
    assert lines == ["GET /api/auth/me attempt=1 -> 200 request_id=req-1"]


async def test_retried_answers_are_logged_with_their_wait(
    signed_in: Driver, server: FakeServer, caplog: pytest.LogCaptureFixture
):
    """Each attempt's line: the 503 with retry_in, then the 200 as attempt 2."""
    server.script("me", 503)
    with caplog.at_level(logging.DEBUG, logger="nsdk"):
        await signed_in.me()
    lines = [r.getMessage() for r in caplog.records if r.name == "nsdk" and "attempt=" in r.message]
    assert lines == [
        "GET /api/auth/me attempt=1 -> 503 request_id=req-1 retry_in=0.125s",
        "GET /api/auth/me attempt=2 -> 200 request_id=req-2",
    ]
