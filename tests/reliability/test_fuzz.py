"""Property-based fuzzing: whatever the server answers, nsdk returns a model or raises NsdkError.

Arbitrary status codes, headers (Retry-After, X-Request-ID, Content-Type, Content-Encoding ...) and
bodies (bytes, any JSON, near-misses of the documented shapes) are fed to ``Client`` and
``AsyncClient`` through ``httpx.MockTransport``, attempt after attempt (retries and the refresh
after a 401 get fuzzed answers too). The only allowed outcomes are a parsed model or an
``nsdk.NsdkError`` subclass: no ``KeyError``, ``JSONDecodeError``, ``httpx.*`` or ``ValueError``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import nsdk
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from nsdk_api.models import Me

BASE_URL = "https://api.example.com"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POLICY = nsdk.RetryPolicy(max_attempts=3, max_retry_after=5.0)
PASSWORD = "fuzz-password-1"  # made up; the ledger scans for it


def _jwt(n: int) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": "1005", "iat": now, "exp": now + 3600, "n": n}
    return f"{part({'alg': 'HS256'})}.{part(claims)}.fuzz-signature-{n:08d}"


# --- strategies ----------------------------------------------------------------------------

header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)
retry_after = st.one_of(
    header_text,
    st.integers(-5, 10**6).map(str),
    st.sampled_from(["0", "1", " 2 ", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    st.just("Sun Nov  6 08:49:37 1994"),  # the asctime form
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": retry_after,
        "X-Request-ID": header_text,
        "Content-Type": st.sampled_from(
            ["application/json", "text/html", "application/json; charset=latin-1", ""]
        )
        | header_text,
        "WWW-Authenticate": header_text,
    },
)
encoded = st.sampled_from(["gzip", "deflate", "br", "identity"]) | header_text
headers = headers | headers | st.builds(lambda h, e: {**h, "Content-Encoding": e}, headers, encoded)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
field = st.one_of(st.text(max_size=12), json_values)
me_like = st.fixed_dictionaries(
    {}, optional={"userId": field, "tenantId": field, "email": field, "extra": json_values}
)
error_like = st.fixed_dictionaries({}, optional={"detail": field, "request_id": field})
pair_like = st.fixed_dictionaries(
    {}, optional={"accessToken": field, "refreshToken": field, "userId": field, "tenantId": field}
)


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(_encode),
    me_like.map(_encode),
    error_like.map(_encode),
    pair_like.map(_encode),
    st.just(b""),
    st.just(b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"),
)
ME = {"userId": "1005", "tenantId": "2001", "email": "user@example.com"}
VALID_ME = (200, {"Content-Type": "application/json"}, _encode(ME))
statuses = st.sampled_from([200, 204, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504])
# Half of the answers are a documented 200 (extra fields allowed) under fuzzed headers, so
# the success path, and success after retries and refreshes, is exercised as well.
good_me = st.tuples(
    st.just(200),
    headers,
    st.dictionaries(st.text(max_size=8), json_values, max_size=2).map(
        lambda x: _encode({**x, **ME})
    ),
)
answers = st.tuples(statuses | st.integers(200, 599), headers, bodies) | good_me
LOGIN = {"accessToken": "fuzz-login-access-0001", "refreshToken": "fuzz-login-refresh-0001"}
good_login = st.tuples(st.just(200), headers, st.just(_encode({**LOGIN, **ME})))


class Scripted:
    """A MockTransport handler: login succeeds; me/refresh/login answers come from scripts."""

    def __init__(self, me: list[Any], refresh: list[Any], login: list[Any] | None = None) -> None:
        self.scripts = {"me": list(me), "refresh": list(refresh), "login": list(login or [])}
        self.count = 0

    def _pair(self) -> dict[str, str]:
        self.count += 1
        return {"accessToken": _jwt(self.count), "refreshToken": f"fuzz-refresh-{self.count:08d}"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        op = request.url.path.rsplit("/", 1)[-1]
        script = self.scripts.get(op) or []
        if op == "login" and not script:
            return httpx.Response(200, json={**self._pair(), "userId": "1005", "tenantId": "2001"})
        if op == "refresh" and script and script[0] == "valid":
            script.pop(0)
            self.count += 1
            body = {
                "accessToken": _jwt(self.count),
                "refreshToken": f"fuzz-refresh-{self.count:08d}",
            }
            return httpx.Response(200, json=body)
        status, hdrs, body = script.pop(0) if len(script) > 1 else script[0]
        # Header values go out as latin-1 bytes, as a server's would (httpx encodes str as ASCII).
        raw = [(k.encode(), v.encode("latin-1")) for k, v in hdrs.items()]
        return httpx.Response(status, headers=raw, content=body)


def _options(store: Any) -> dict[str, Any]:
    return {"retry": POLICY, "token_store": store, "random": lambda: 0.5}


def _check(outcome: Any, ledger: Any, expected: type) -> None:
    event(type(outcome).__name__)  # the outcome mix shows with --hypothesis-show-statistics
    if isinstance(outcome, BaseException):
        ledger.exception(outcome)
        assert isinstance(outcome, nsdk.NsdkError), f"{type(outcome).__name__} escaped: {outcome!r}"
    else:
        assert isinstance(outcome, expected), repr(outcome)


def run_sync(handler: Scripted, store: Any, method: str) -> Any:
    """Sign in and call ``me`` (or stop at login) on a sync client; the result or the error."""
    client = nsdk.Client(BASE_URL, transport=httpx.MockTransport(handler), sleep=lambda s: None,
                         **_options(store))  # fmt: skip
    try:
        if method == "login" or client.state is not nsdk.SessionState.ACTIVE:
            outcome: Any = client.login(email="user@example.com", password=PASSWORD)
            if method == "login":
                return outcome
        return client.me()
    except Exception as exc:
        return exc
    finally:
        client.close()


async def _run_async(handler: Scripted, store: Any, method: str) -> Any:
    async def no_sleep(seconds: float) -> None:
        return None

    client = nsdk.AsyncClient(BASE_URL, transport=httpx.MockTransport(handler), sleep=no_sleep,
                              **_options(store))  # fmt: skip
    try:
        outcome: Any = await client.login(email="user@example.com", password=PASSWORD)
        if method == "login":
            return outcome
        return await client.me()
    except Exception as exc:
        return exc
    finally:
        await client.aclose()


me_scripts = st.lists(answers, min_size=1, max_size=3)
refresh_scripts = st.lists(st.just("valid") | answers, min_size=1, max_size=2)


@SETTINGS
@given(me=me_scripts, refresh=refresh_scripts)
def test_fuzz_me_sync(me: list[Any], refresh: list[Any], ledger: Any, recording_store: Any) -> None:
    """Client.me() on fuzzed answers (and fuzzed refreshes) returns Me or raises NsdkError."""
    ledger.secret(PASSWORD)
    handler = Scripted([VALID_ME, *me], refresh)  # the first me() is login's scope check
    _check(run_sync(handler, recording_store(), "me"), ledger, Me)


@SETTINGS
@given(me=me_scripts, refresh=refresh_scripts)
def test_fuzz_me_async(
    me: list[Any], refresh: list[Any], ledger: Any, recording_store: Any
) -> None:
    """AsyncClient.me() on fuzzed answers (and fuzzed refreshes) returns Me or raises NsdkError."""
    handler = Scripted([VALID_ME, *me], refresh)
    _check(asyncio.run(_run_async(handler, recording_store(), "me")), ledger, Me)


@SETTINGS
@given(
    login=st.lists(answers | good_login, min_size=1, max_size=3),
    me=st.just([VALID_ME]) | me_scripts,
)
def test_fuzz_login(login: list[Any], me: list[Any], ledger: Any, recording_store: Any) -> None:
    """Client.login() on fuzzed login and me answers returns a Session or raises NsdkError."""
    ledger.secret(LOGIN["accessToken"])
    ledger.secret(LOGIN["refreshToken"])
    handler = Scripted(me, ["valid"], login=login)
    _check(run_sync(handler, recording_store(), "login"), ledger, nsdk.Session)


@SETTINGS
@given(value=st.one_of(st.none(), retry_after, st.text()), now=st.floats(0, 4e9))
def test_fuzz_parse_retry_after(value: str | None, now: float) -> None:
    """parse_retry_after never raises: a wait of at least 0 seconds, or None."""
    wait = nsdk.parse_retry_after(value, now)
    assert wait is None or wait >= 0
