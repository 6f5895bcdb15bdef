"""The error tree, its translation boundary, malformed answers, and secrets kept out of sight."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import nsdk
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nsdk import _errors
from nsdk_api.api.auth import me as me_op

if TYPE_CHECKING:
    from .conftest import Driver, FakeServer

ME_OK = b'{"userId": "1005", "tenantId": "2001", "email": "user@example.com"}'
ERROR_CLASSES = {
    name: obj
    for name, obj in vars(nsdk).items()
    if inspect.isclass(obj) and issubclass(obj, BaseException)
}


def test_tree_in_docstring_matches_the_classes():
    """The tree drawn in _errors' docstring is exactly the class hierarchy nsdk exports."""
    drawn: dict[str, str | None] = {}
    stack: list[str] = []
    for line in _errors.__doc__.split("::")[1].splitlines():
        found = re.search(r"(\w+Error)\b", line)
        if not found:
            continue
        depth = found.start() // 4 - 1
        del stack[depth:]
        drawn[found.group(1)] = stack[-1] if stack else None
        stack.append(found.group(1))
    actual = {name: cls.__bases__[0].__name__ for name, cls in ERROR_CLASSES.items()}
    actual["NsdkError"] = None  # type: ignore[assignment]
    assert drawn == actual


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, nsdk.BadRequestError),
        (401, nsdk.AuthenticationError),
        (403, nsdk.PermissionDeniedError),
        (404, nsdk.NotFoundError),
        (409, nsdk.ConflictError),
        (429, nsdk.RateLimitError),
        (418, nsdk.APIError),
        (302, nsdk.APIError),
        (500, nsdk.ServerError),
        (501, nsdk.ServerError),
        (599, nsdk.ServerError),
    ],
)
def test_status_class_table(status: int, cls: type[nsdk.APIError]):
    """One table picks the APIError subclass for a status; 5xx is a range."""
    assert _errors.status_class(status) is cls


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (httpx.ConnectError("x"), nsdk.APIConnectionError),
        (httpx.RemoteProtocolError("x"), nsdk.APIConnectionError),
        (httpx.ReadError("x"), nsdk.APIConnectionError),
        (httpx.DecodingError("x"), nsdk.APIConnectionError),
        (httpx.ReadTimeout("x"), nsdk.APITimeoutError),
        (httpx.ConnectTimeout("x"), nsdk.APITimeoutError),
        (httpx.PoolTimeout("x"), nsdk.APITimeoutError),
    ],
)
def test_from_transport(error: httpx.HTTPError, cls: type[nsdk.NsdkError]):
    """httpx errors map to APIConnectionError, timeouts to APITimeoutError, naming the request."""
    translated = _errors.from_transport(error, "GET /api/auth/me")
    assert type(translated) is cls
    assert str(translated).startswith("GET /api/auth/me: ")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"a string"',
        b'{"userId": "1005"}',
        b'{"userId": 1005, "tenantId": "2001", "email": "user@example.com"}',
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b"\xff\xfe\x00",
    ],
    ids=["invalid-json", "array", "string", "missing-fields", "wrong-type", "html", "empty", "bin"],
)
async def test_malformed_success_body(signed_in: Driver, server: FakeServer, body: bytes):
    """A 200 from me whose body is not a spec-shaped Me raises MalformedResponseError."""
    server.script("me", httpx.Response(200, content=body))
    with pytest.raises(nsdk.MalformedResponseError) as info:
        await signed_in.me()
    err = info.value
    assert (err.status_code, err.request_id, err.operation) == (200, "req-1", "me")
    assert "req-1" in str(err)
    assert server.seq == [("me", "access-1")]


async def test_malformed_login_leaves_no_session(make: Callable[..., Driver], server: FakeServer):
    """A login 200 without tokens raises MalformedResponseError and stays signed out."""
    server.script("login", {"userId": "1005"})
    drv = make()
    with pytest.raises(nsdk.MalformedResponseError):
        await drv.login()
    assert drv.state is nsdk.SessionState.SIGNED_OUT
    assert server.seq == [("login", None)]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (403, nsdk.PermissionDeniedError),
        (404, nsdk.NotFoundError),
        (409, nsdk.ConflictError),
        (418, nsdk.APIError),
    ],
)
async def test_undocumented_status(
    signed_in: Driver, server: FakeServer, status: int, cls: type[nsdk.APIError]
):
    """An undocumented 403/404/409 raises its class with documented=False, without retrying."""
    server.script("me", status)
    with pytest.raises(cls) as info:
        await signed_in.me()
    err = info.value
    assert type(err) is cls
    assert (err.status_code, err.documented, err.request_id) == (status, False, "req-1")
    assert err.attempt_request_ids == ("req-1",)
    assert server.seq == [("me", "access-1")]


async def test_documented_error_with_html_body_keeps_status(
    make: Callable[..., Driver], server: FakeServer
):
    """A documented 400 with a proxy's HTML body is still BadRequestError (detail None)."""
    server.script("login", httpx.Response(400, content=b"<html>Bad</html>"))
    with pytest.raises(nsdk.BadRequestError) as info:
        await make().login()
    assert (info.value.detail, info.value.request_id, info.value.documented) == (
        None,
        "req-1",
        True,
    )


def bad_gzip() -> httpx.Response:
    """A 200 claiming gzip whose bytes are not gzip (decoded lazily, by the client)."""
    headers = {"Content-Encoding": "gzip"}
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(b"not gzip"))


async def test_decoding_error_is_translated(signed_in: Driver, server: FakeServer):
    """A body that fails to decode (bad gzip) is an APIConnectionError from client.me()."""
    server.script("me", bad_gzip())
    with pytest.raises(nsdk.APIConnectionError):
        await signed_in.me()


async def test_decoding_error_via_client_api_is_translated(signed_in: Driver, server: FakeServer):
    """A body that fails to decode is an nsdk error from a generated call through client.api."""
    server.script("me", bad_gzip())
    with pytest.raises(nsdk.NsdkError):
        await signed_in.api_me()


ANSWERS = st.tuples(
    st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 418, 429, 500, 502, 503]),
    st.sampled_from([b"", b"{}", b"[]", b"null", b"<html>", b"\xff", ME_OK, b'{"detail": 1}']),
    st.none() | st.text(st.characters(max_codepoint=0xFF), max_size=12) | st.just("\u00b2"),
    st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=st.lists(ANSWERS, min_size=1, max_size=6))
def test_only_nsdk_errors_escape(answers: list[tuple[int, bytes, str | None, bool]]):
    """Whatever me answers, login() and me() succeed or raise the error for one of the answers.

    That is an APIError or MalformedResponseError with one of the statuses answered, or an
    APIConnectionError (a body that does not decode). Nothing else (no bare NsdkError, no session
    or configuration error: the refresh always succeeds here).
    """
    script = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/login":
            body = {"accessToken": "a", "refreshToken": "r", "userId": "1005", "tenantId": "2001"}
            return httpx.Response(200, json=body)
        if request.url.path == "/api/auth/refresh":
            return httpx.Response(200, json={"accessToken": "a2", "refreshToken": "r2"})
        status, body, retry_after, gzip = next(script, (200, ME_OK, None, False))
        headers: dict[str, bytes] = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after.encode("latin-1")
        if gzip:
            headers["Content-Encoding"] = b"gzip"
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

    client = nsdk.Client(
        "https://api.example.com", transport=httpx.MockTransport(handler), sleep=lambda _: None
    )
    raised: nsdk.NsdkError | None = None
    with client:
        try:
            client.login(email="user@example.com", password="pw")
            assert client.me().user_id == "1005"
        except nsdk.NsdkError as exc:
            raised = exc
    if raised is None:
        return
    statuses = {status for status, *_ in answers}
    if isinstance(raised, nsdk.APIError | nsdk.MalformedResponseError):
        assert raised.status_code in statuses, repr(raised)
    else:
        assert type(raised) is nsdk.APIConnectionError, repr(raised)
        assert any(gzip for *_, gzip in answers), repr(raised)


# --- secrets ---------------------------------------------------------------------------------


def _chain(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


async def _failures(drv: Driver, server: FakeServer) -> list[BaseException]:
    """Run failing scenarios on a signed-in driver; the exceptions they raised."""
    raised: list[BaseException] = []
    scenarios: list[tuple[str, list[object]]] = [
        ("me", [401, 401]),  # retry-once -> AuthenticationError
        ("me", [500] * 4),
        ("me", [httpx.ReadTimeout] * 4),
        ("me", [403]),
        ("me", [httpx.Response(200, content=b"{bad")]),
        ("refresh", [httpx.RemoteProtocolError]),
        ("refresh", [401]),  # fail closed -> SessionExpiredError
    ]
    for op, outcomes in scenarios:
        if op == "refresh":
            server.expire_access()
        server.script(op, *outcomes)
        with pytest.raises(nsdk.NsdkError) as info:
            await drv.me()
        raised.append(info.value)
    with pytest.raises(nsdk.NotAuthenticatedError) as info:
        await drv.me()
    raised.append(info.value)
    return raised


async def test_secrets_stay_out_of_reprs_errors_and_logs(
    make: Callable[..., Driver], server: FakeServer, caplog: pytest.LogCaptureFixture
):
    """No token or password appears in reprs, exception texts or nsdk log records."""
    caplog.set_level(logging.DEBUG, logger="nsdk")
    server.token_prefix = "S3CRET-"
    server.jwt_ttl = 3600.0
    drv = make()
    await drv.login()
    tokens = await drv.refresh()
    texts = [repr(drv.client), repr(tokens), repr(drv.client.api), str(drv.client.session)]
    texts += [repr(nsdk.MemoryTokenStore(tokens))]
    for exc in await _failures(drv, server):
        texts += [text for e in _chain(exc) for text in (str(e), repr(e))]
    await drv.login()
    server.script("logout", *[500] * 4)
    assert await drv.logout() is False  # logs a warning with the error
    texts += [record.getMessage() for record in caplog.records]
    secrets = [*server.issued, drv.password]
    assert len(secrets) > 5
    leaks = [(s, t) for t in texts for s in secrets if s in t]
    assert leaks == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)


async def test_debug_log_lines(signed_in: Driver, server: FakeServer, caplog):
    """Each attempt logs method, path, status, attempt number, request_id and the wait at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="nsdk")
    server.script("me", 500, httpx.ConnectError)
    await signed_in.me()
    lines = [r.getMessage() for r in caplog.records if r.name == "nsdk"]
    assert lines == [
        "GET /api/auth/me attempt=1 -> 500 request_id=req-1 retry_in=0.125s",
        "GET /api/auth/me attempt=2 -> ConnectError request_id=- retry_in=0.250s",
        "GET /api/auth/me attempt=3 -> 200 request_id=req-3",
    ]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "nsdk")


def test_generated_call_without_session_sends_nothing():
    """A generated call through client.api before login raises NotAuthenticatedError, unsent."""
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
    client = nsdk.Client("https://api.example.com", transport=transport)
    with client, pytest.raises(nsdk.NotAuthenticatedError):
        me_op.sync_detailed(client=client.api)
    assert sent == []
