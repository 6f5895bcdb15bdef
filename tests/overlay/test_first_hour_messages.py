"""A new user's first hour (issue 14): bad arguments refused at once, messages that say what to do.

Every bad constructor argument is a ``ConfigurationError`` naming the argument and what it
accepts; connection and timeout errors name the URL, the attempts and the time spent; a 429 not
retried says why; a 5xx keeps the server's detail; a 401 on login is about the credentials; the
request id is printed once; public names report the ``nsdk`` module; and the quickstart's handler
covers the network failing through ``nsdk.RetryableError``. Messages are asserted exactly.
"""

from __future__ import annotations

import ast
import doctest
import logging
import math
import pickle
import re
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import nsdk
import pytest

if TYPE_CHECKING:
    from .conftest import Driver, FakeServer

BASE_URL = "https://api.example.com"
ME_URL = f"{BASE_URL}/api/auth/me"
CLIENTS = [nsdk.Client, nsdk.AsyncClient]
TIMEOUT_ACCEPTS = (
    "timeout must be a number of seconds > 0, an httpx.Timeout, or None (the default: 10 s, "
    "5 s to connect), got "
)
HEADERS_ACCEPTS = "headers must be a dict of str to str"


def _recording_transport(sent: list[httpx.Request], kind: type) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async def ahandler(request: httpx.Request) -> httpx.Response:
        return handler(request)

    return httpx.MockTransport(handler if kind is nsdk.Client else ahandler)


# --- bug 4: constructor arguments --------------------------------------------------------------

BAD_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"timeout": "10"}, TIMEOUT_ACCEPTS + "'10'"),
    ({"timeout": 0}, TIMEOUT_ACCEPTS + "0"),
    ({"timeout": -1.5}, TIMEOUT_ACCEPTS + "-1.5"),
    ({"timeout": True}, TIMEOUT_ACCEPTS + "True"),
    ({"timeout": math.nan}, TIMEOUT_ACCEPTS + "nan"),
    ({"timeout": (5, 10)}, TIMEOUT_ACCEPTS + "tuple"),
    ({"refresh_leeway": -1}, "refresh_leeway must be a number of seconds >= 0, got -1"),
    ({"refresh_leeway": "30"}, "refresh_leeway must be a number of seconds >= 0, got '30'"),
    ({"refresh_leeway": math.inf}, "refresh_leeway must be a number of seconds >= 0, got inf"),
    (
        {"refresh_reuse_interval": "10"},
        "refresh_reuse_interval must be a number of seconds >= 0 (0: the server has no reuse "
        "interval), got '10'",
    ),
    (
        {"refresh_reuse_interval": -1.0},
        "refresh_reuse_interval must be a number of seconds >= 0 (0: the server has no reuse "
        "interval), got -1.0",
    ),
    (
        {"retry": {"max_attempts": 2}},
        "retry must be an nsdk.RetryPolicy, or None for the default, got dict",
    ),
    ({"headers": [("X-App", "demo")]}, HEADERS_ACCEPTS + ", or None, got list"),
    ({"headers": {"X-Count": 3}}, HEADERS_ACCEPTS + "; the value of 'X-Count' is of type int"),
    ({"headers": {b"X-App": "demo"}}, HEADERS_ACCEPTS + "; a key is of type bytes"),
    (
        {"base_url": b"https://api.example.com"},
        "base_url must be a str such as 'https://api.example.com', or None to read "
        "$NSDK_API_BASE_URL, got bytes",
    ),
    (
        {"clock": 1_700_000_000.0},
        "clock must be a callable returning the current Unix time (like time.time), or None, "
        "got 1700000000.0",
    ),
    (
        {"random": 0.5},
        "random must be a callable returning a float in [0, 1) (like random.random), or None, "
        "got 0.5",
    ),
    (
        {"on_tokens_refreshed": "save_tokens"},
        "on_tokens_refreshed must be a callable taking the new nsdk.Tokens, or None, "
        "got 'save_tokens'",
    ),
    (
        {"on_session_expired": 1},
        "on_session_expired must be a callable taking the SessionExpiredError, or None, got 1",
    ),
    ({"follow_redirects": "yes"}, "follow_redirects must be True or False, got 'yes'"),
    ({"allow_insecure_http": 1}, "allow_insecure_http must be True or False, got 1"),
]


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS)
def test_bad_constructor_argument_is_named_with_what_it_accepts(
    cls: type, kwargs: dict[str, Any], message: str
):
    """Each wrong argument raises ConfigurationError at construction, naming it and its range."""
    sent: list[httpx.Request] = []
    kwargs = {"base_url": BASE_URL, "transport": _recording_transport(sent, cls), **kwargs}
    with pytest.raises(nsdk.ConfigurationError) as info:
        cls(**kwargs)
    assert str(info.value) == message
    assert sent == []


@pytest.mark.parametrize(
    ("cls", "sleep", "message"),
    [
        (
            nsdk.Client,
            1,
            "sleep must be a callable taking seconds (like time.sleep), or None, got 1",
        ),
        (
            nsdk.AsyncClient,
            "0.1",
            "sleep must be a callable taking seconds (like asyncio.sleep), or None, got str",
        ),
        (
            nsdk.AsyncClient,
            __import__("time").sleep,
            "sleep must return an awaitable for AsyncClient (like asyncio.sleep), got "
            "time.sleep, which would block the event loop",
        ),
    ],
)
def test_bad_sleep_is_refused(cls: type, sleep: object, message: str):
    """sleep= must be a callable (an awaitable one for AsyncClient): refused at construction."""
    transport = _recording_transport([], cls)
    with pytest.raises(nsdk.ConfigurationError) as info:
        cls(BASE_URL, transport=transport, sleep=sleep)
    assert str(info.value) == message


async def test_async_sleep_that_returns_no_awaitable_is_a_configuration_error(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """An AsyncClient sleep returning None is reported as such at its first use, not TypeError."""
    drv = client_factory("async", sleep=lambda seconds: None)
    await drv.login()
    server.script("me", 503)
    with pytest.raises(nsdk.ConfigurationError) as info:
        await drv.me()
    assert str(info.value) == (
        "sleep must return an awaitable for AsyncClient (like asyncio.sleep), got None from it"
    )


@pytest.mark.parametrize(
    ("cls", "transport", "message"),
    [
        (
            nsdk.Client,
            httpx.AsyncHTTPTransport(),
            "transport must be an httpx.BaseTransport (e.g. httpx.HTTPTransport or "
            "httpx.MockTransport), or None, got AsyncHTTPTransport",
        ),
        (
            nsdk.AsyncClient,
            httpx.HTTPTransport(),
            "transport must be an httpx.AsyncBaseTransport for AsyncClient (e.g. "
            "httpx.AsyncHTTPTransport or httpx.MockTransport), or None, got HTTPTransport",
        ),
    ],
)
def test_transport_of_the_other_flavour_is_refused(cls: type, transport: object, message: str):
    """A sync transport for AsyncClient (or the reverse) is refused at construction."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        cls(BASE_URL, transport=transport)
    assert str(info.value) == message


def test_header_value_is_never_echoed():
    """A header value of the wrong type is named by its key and type only: it may be a secret."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.Client(BASE_URL, headers={"X-Api-Key": b"k3y-s3cret"})  # type: ignore[dict-item]
    assert "s3cret" not in str(info.value)
    assert str(info.value) == HEADERS_ACCEPTS + "; the value of 'X-Api-Key' is of type bytes"


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0.5},
        {"timeout": 3},
        {"timeout": httpx.Timeout(None)},
        {"timeout": None},
        {"refresh_leeway": 0},
        {"refresh_reuse_interval": 2},
        {"headers": httpx.Headers({"X-App": "demo"})},
        {"base_url": httpx.URL(BASE_URL)},
        {"clock": None, "random": None, "on_tokens_refreshed": print, "on_session_expired": None},
        {"follow_redirects": True, "allow_insecure_http": False},
    ],
)
def test_accepted_values_still_construct(cls: type, kwargs: dict[str, Any]):
    """The documented kinds of each argument are still accepted."""
    kwargs = {"base_url": BASE_URL, **kwargs}
    assert cls(**kwargs).state is nsdk.SessionState.SIGNED_OUT


def test_configuration_error_is_also_a_value_error():
    """ConfigurationError is an NsdkError and a ValueError (what RetryPolicy used to raise)."""
    assert issubclass(nsdk.ConfigurationError, nsdk.NsdkError)
    assert issubclass(nsdk.ConfigurationError, ValueError)
    assert issubclass(nsdk.InsecureTransportError, ValueError)
    with pytest.raises(ValueError, match="refresh_leeway"):
        nsdk.Client(BASE_URL, refresh_leeway=-1)


RETRY_SECONDS = "must be a number of seconds >= 0, got "


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"max_attempts": 0},
            "RetryPolicy.max_attempts must be an int >= 1 (attempts per request, the first "
            "included; 1: no retries), got 0",
        ),
        (
            {"max_attempts": 2.5},
            "RetryPolicy.max_attempts must be an int >= 1 (attempts per request, the first "
            "included; 1: no retries), got 2.5",
        ),
        ({"initial_backoff": -0.1}, "RetryPolicy.initial_backoff " + RETRY_SECONDS + "-0.1"),
        ({"max_backoff": "8"}, "RetryPolicy.max_backoff " + RETRY_SECONDS + "'8'"),
        ({"multiplier": 0.5}, "RetryPolicy.multiplier must be a number >= 1, got 0.5"),
        (
            {"jitter": 1.5},
            "RetryPolicy.jitter must be a number from 0 to 1 (0: no jitter, 1: full jitter), "
            "got 1.5",
        ),
        (
            {"respect_retry_after": "no"},
            "RetryPolicy.respect_retry_after must be True or False, got 'no'",
        ),
        ({"max_retry_after": -1.0}, "RetryPolicy.max_retry_after " + RETRY_SECONDS + "-1.0"),
        ({"max_retry_after": math.nan}, "RetryPolicy.max_retry_after " + RETRY_SECONDS + "nan"),
        (
            {"retry_statuses": [429]},
            "RetryPolicy.retry_statuses must be a set of server statuses (ints from 500 to 599; "
            "429 is always retried), got [429]",
        ),
        (
            {"retry_statuses": 503},
            "RetryPolicy.retry_statuses must be a set of server statuses (ints from 500 to 599; "
            "429 is always retried), got 503",
        ),
    ],
)
def test_retry_policy_names_the_field_and_its_range(kwargs: dict[str, Any], message: str):
    """RetryPolicy refuses a field out of range with ConfigurationError naming it and the range."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.RetryPolicy(**kwargs)
    assert str(info.value) == message


def test_retry_policy_evolve_is_checked_too():
    """attrs.evolve runs the same checks: a derived policy cannot be out of range either."""
    with pytest.raises(nsdk.ConfigurationError, match=r"^RetryPolicy\.max_attempts must be"):
        attrs.evolve(nsdk.RetryPolicy(), max_attempts=0)


# --- (a) connection and timeout errors -------------------------------------------------------


async def test_connection_error_names_url_attempts_and_time(signed_in: Driver, server: FakeServer):
    """A connection failing 4 times names operation, URL, attempts and time, with attributes."""
    server.script("me", *[httpx.ConnectError] * 4)
    with pytest.raises(nsdk.APIConnectionError) as info:
        await signed_in.me()
    err = info.value
    assert type(err) is nsdk.APIConnectionError
    assert str(err) == (
        f"me: no usable response to GET {ME_URL} after 4 attempts in 0.875 s "
        "(ConnectError: simulated ConnectError); check the network and base_url"
    )
    assert (err.operation, err.url, err.attempts, err.elapsed) == ("me", ME_URL, 4, 0.875)
    assert (err.request_id, err.attempt_request_ids) == (None, ())


async def test_timeout_names_the_timeout_that_expired(make: Callable[..., Driver], server):
    """A read timeout on every attempt names the URL, attempts, time and the read timeout."""
    drv = make(timeout=2.5)
    await drv.login()
    server.script("me", *[httpx.ReadTimeout] * 4)
    with pytest.raises(nsdk.APITimeoutError) as info:
        await drv.me()
    assert str(info.value) == (
        f"me: GET {ME_URL} timed out after 4 attempts in 0.875 s (ReadTimeout, read timeout "
        "2.5 s per attempt); retry later, or raise the timeout"
    )
    assert info.value.attempts == 4


async def test_connection_error_carries_the_answered_attempts_ids(
    signed_in: Driver, server: FakeServer
):
    """A 503 then connection failures: attempt_request_ids holds the answered attempt's id."""
    server.script("me", 503, *[httpx.ConnectError] * 3)
    with pytest.raises(nsdk.APIConnectionError) as info:
        await signed_in.me()
    err = info.value
    assert err.attempt_request_ids == ("req-1",)
    assert (err.attempts, err.operation) == (4, "me")


async def test_connection_error_url_has_no_query(signed_in: Driver, server: FakeServer):
    """The URL in the message and in .url never carries the query string (it may be secret)."""
    server.script("me", *[httpx.ConnectError] * 4)
    with pytest.raises(nsdk.APIConnectionError) as info:
        await signed_in.raw_get(ME_URL + "?api_key=s3cret")
    assert info.value.url == ME_URL
    assert "s3cret" not in str(info.value)


async def test_refresh_connection_drop_is_one_attempt(signed_in: Driver, server: FakeServer):
    """A refresh dropped after sending is not resent: the error says 1 attempt, 0 s."""
    server.expire_access()
    server.script("refresh", httpx.RemoteProtocolError)
    with pytest.raises(nsdk.APIConnectionError) as info:
        await signed_in.me()
    assert str(info.value) == (
        f"refresh: no usable response to POST {BASE_URL}/api/auth/refresh after 1 attempt in "
        "0 s (RemoteProtocolError); check the network and base_url"
    )
    assert (info.value.operation, info.value.attempts) == ("refresh", 1)


# --- (b) a 429 whose Retry-After is above max_retry_after --------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "policy", "asked", "cap"),
    [
        ("120", nsdk.RetryPolicy(), "120 s", "60 s"),
        ("7", nsdk.RetryPolicy(max_retry_after=2.5), "7 s", "2.5 s"),
    ],
)
async def test_429_above_max_retry_after_says_so(
    make: Callable[..., Driver],
    server: FakeServer,
    sleeps: list[float],
    retry_after: str,
    policy: nsdk.RetryPolicy,
    asked: str,
    cap: str,
):
    """A Retry-After above max_retry_after is not waited, and the error gives both numbers."""
    drv = make(retry=policy)
    await drv.login()
    server.calls.clear()
    server.script("me", (429, {"Retry-After": retry_after}))
    with pytest.raises(nsdk.RateLimitError) as info:
        await drv.me()
    assert str(info.value) == (
        f"me: HTTP 429: simulated 429; not retried: the server asked to wait {asked} "
        f"(Retry-After), more than the retry policy's max_retry_after of {cap}; call again in "
        f"{asked}, or raise max_retry_after (request_id=req-1)"
    )
    assert info.value.retry_after == float(retry_after)
    assert sleeps == []


async def test_429_after_the_attempts_keeps_its_message(signed_in: Driver, server: FakeServer):
    """A 429 waited and retried until the attempts ran out says so, not the cap."""
    server.script("me", *[(429, {"Retry-After": "1"})] * 4)
    with pytest.raises(nsdk.RateLimitError) as info:
        await signed_in.me()
    assert str(info.value) == (
        "me: HTTP 429 after 4 attempts: simulated 429; slow down and retry later (request_id=req-4)"
    )


# --- (c) a 5xx after retries keeps the server's detail -----------------------------------------


async def test_undocumented_5xx_keeps_the_detail(signed_in: Driver, server: FakeServer):
    """A 503 (not in the spec for me) after 4 attempts keeps the server's detail."""
    server.script("me", *[503] * 4)
    with pytest.raises(nsdk.ServerError) as info:
        await signed_in.me()
    err = info.value
    assert (err.detail, err.documented, err.attempt_request_ids[-1]) == (
        "simulated 503",
        False,
        "req-4",
    )
    assert str(err) == (
        "me: HTTP 503 after 4 attempts: simulated 503 (undocumented status); retry later; if it "
        "persists, escalate with the request_id (request_id=req-4)"
    )


async def test_5xx_with_a_proxy_page_has_no_detail(signed_in: Driver, server: FakeServer):
    """A 502 whose body is a proxy's HTML page has no detail: nothing of the body is quoted."""

    def page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, content=b"<html>Bad Gateway s3cret</html>")

    server.script("me", *[page] * 4)
    with pytest.raises(nsdk.ServerError) as info:
        await signed_in.me()
    assert info.value.detail is None
    assert "undocumented status; retry later" in str(info.value)
    assert "s3cret" not in str(info.value)


# --- (d) a 401 on login ----------------------------------------------------------------------


async def test_401_on_login_is_about_the_credentials(make: Callable[..., Driver], server):
    """A 401 on login says to check the email and password, not to sign in again."""
    server.script("login", 401)
    with pytest.raises(nsdk.AuthenticationError) as info:
        await make().login()
    assert str(info.value) == (
        "login: HTTP 401: simulated 401; check the email and password (request_id=req-1)"
    )


async def test_401_after_refresh_says_sign_in_again(signed_in: Driver, server: FakeServer):
    """A protected call refused even after a refresh says to sign in again."""
    server.script("me", 401, 401)
    with pytest.raises(nsdk.AuthenticationError) as info:
        await signed_in.me()
    assert str(info.value) == (
        "me: HTTP 401: simulated 401; the access token was refused even after a refresh: sign "
        "in again (request_id=req-3)"
    )


# --- (e) the request id, once ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "rid"),
    [
        ([503] * 4, "req-4"),
        ([500, 500, 400], "req-3"),
        ([(429, {"Retry-After": "600"})], "req-1"),
        ([lambda request: httpx.Response(200, content=b"{bad")], "req-1"),
        ([403], "req-1"),
    ],
)
async def test_request_id_appears_once(signed_in: Driver, server: FakeServer, script, rid: str):
    """str(exc) names the request id exactly once, at the end."""
    server.script("me", *script)
    with pytest.raises(nsdk.NsdkError) as info:
        await signed_in.me()
    assert getattr(info.value, "request_id", None) == rid
    assert str(info.value).count(rid) == 1


def _quickstart_handler(repo_root: Path) -> ast.Module:
    """The first statement of the quickstart's "Handle errors" example: the login handler."""
    text = (repo_root / "docs" / "quickstart.md").read_text(encoding="utf-8")
    section = text.split("## Handle errors", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    tree = ast.parse(block.group(1))
    assert isinstance(tree.body[0], ast.Try)
    return ast.Module(body=[tree.body[0]], type_ignores=[])


@pytest.mark.parametrize(
    ("script", "level", "rid"),
    [
        ([503] * 4, logging.WARNING, "req-4"),
        ([httpx.ConnectError] * 4, logging.WARNING, None),
        ([(429, {"Retry-After": "600"})], logging.WARNING, "req-1"),
        ([400], logging.ERROR, "req-1"),
    ],
    ids=["5xx", "network", "429", "400"],
)
def test_quickstart_handler_logs_once_and_covers_the_network(
    repo_root: Path,
    client_factory: Callable[..., Driver],
    server: FakeServer,
    caplog: pytest.LogCaptureFixture,
    script: list[object],
    level: int,
    rid: str | None,
):
    """The quickstart's login handler catches the network failing too, and logs the id once."""
    caplog.set_level(logging.DEBUG, logger="app")
    client = client_factory("sync").client
    server.script("login", *script)
    namespace = {"nsdk": nsdk, "client": client, "log": logging.getLogger("app")}
    namespace |= {"email": "user@example.com", "password": "pw"}
    code = compile(_quickstart_handler(repo_root), "docs/quickstart.md", "exec")
    exec(code, namespace)
    records = [r for r in caplog.records if r.name == "app"]
    assert [r.levelno for r in records] == [level]
    line = records[0].getMessage()
    if rid is not None:
        assert line.count(rid) == 1, line
    assert "request_id=" in line or rid is None


# --- (f) public names report the public module ----------------------------------------------


@pytest.mark.parametrize("name", [n for n in nsdk.__all__ if callable(getattr(nsdk, n))])
def test_public_name_reports_the_nsdk_module(name: str):
    """Every public class and function says it is nsdk.<name>, as httpx's names do."""
    assert getattr(nsdk, name).__module__ == "nsdk"


def test_traceback_names_the_public_class():
    """A traceback shows nsdk.APIConnectionError, not nsdk._errors.APIConnectionError."""
    line = traceback.format_exception_only(nsdk.APIConnectionError("x: y"))[-1]
    assert line == "nsdk.APIConnectionError: x: y\n"


def test_public_values_still_pickle():
    """Pickling finds the classes under their public module (a policy, a token pair)."""
    policy = nsdk.RetryPolicy(max_attempts=2)
    assert pickle.loads(pickle.dumps(policy)) == policy
    assert pickle.loads(pickle.dumps(nsdk.SessionState.ACTIVE)) is nsdk.SessionState.ACTIVE


@pytest.mark.parametrize("name", [n for n in nsdk.__all__ if isinstance(getattr(nsdk, n), type)])
def test_public_class_examples_run_with_nsdk_alone(name: str):
    """Each public class's examples (its methods' too) run with only nsdk's names in scope."""
    # A class that reports module "nsdk" is no longer found by a doctest scan of its private
    # module, and its methods (defined there) not by a scan of nsdk: collect them from the class.
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs = {"nsdk": nsdk, **vars(nsdk)}
    for test in finder.find(getattr(nsdk, name), f"nsdk.{name}", module=False, globs=globs):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


# --- (g) one base for "try again later" ------------------------------------------------------

RETRYABLE = {
    nsdk.RateLimitError: nsdk.APIError,
    nsdk.ServerError: nsdk.APIError,
    nsdk.APIConnectionError: nsdk.RetryableError,
    nsdk.APITimeoutError: nsdk.APIConnectionError,
    nsdk.TokenStoreBusyError: nsdk.TokenStoreError,
    nsdk.TokenStoreUnavailableError: nsdk.TokenStoreError,
}


def test_retryable_errors_are_exactly_the_try_again_later_ones():
    """RetryableError is a base of exactly the failures worth retrying later, tree kept."""
    exported = [getattr(nsdk, n) for n in nsdk.__all__]
    errors = [e for e in exported if isinstance(e, type) and issubclass(e, nsdk.NsdkError)]
    retryable = {e for e in errors if issubclass(e, nsdk.RetryableError)}
    assert retryable == {*RETRYABLE, nsdk.RetryableError}
    for cls, parent in RETRYABLE.items():
        assert cls.__bases__[0] is parent  # the tree drawn in _errors stays the tree
    assert issubclass(nsdk.RetryableError, nsdk.NsdkError)
    assert nsdk.RetryableError.retry_after is None


async def test_retryable_error_carries_retry_after(signed_in: Driver, server: FakeServer):
    """Caught as RetryableError, a 429 still says how long to wait; a network failure says None."""
    server.script("me", (429, {"Retry-After": "600"}))
    with pytest.raises(nsdk.RetryableError) as info:
        await signed_in.me()
    assert info.value.retry_after == 600.0
    server.script("me", *[httpx.ConnectError] * 4)
    with pytest.raises(nsdk.RetryableError) as info:
        await signed_in.me()
    assert info.value.retry_after is None
