"""Client configuration: base URL and transport security, headers, redirects, store and close."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import nsdk
import pytest

if TYPE_CHECKING:
    from .conftest import Driver, FakeServer

CLIENTS = [nsdk.Client, nsdk.AsyncClient]


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize(
    "url", ["http://example.com", "http://localhost.example.com", "http://127.0.0.1.nip.io"]
)
def test_http_to_remote_host_is_refused(cls: type, url: str):
    """http:// to a non-loopback host raises InsecureTransportError."""
    with pytest.raises(nsdk.InsecureTransportError, match="https://"):
        cls(url)


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.9.9.9",
        "http://localhost",
        "http://api.localhost:8000",
        "http://[::1]:8000",
        "https://example.com",
    ],
)
def test_loopback_http_and_https_are_allowed(cls: type, url: str):
    """http:// to loopback and https:// anywhere need no opt-in."""
    assert cls(url).state is nsdk.SessionState.SIGNED_OUT


@pytest.mark.parametrize("cls", CLIENTS)
def test_allow_insecure_http_opts_in(cls: type):
    """allow_insecure_http=True allows http:// to a remote host."""
    assert "http://example.com" in repr(cls("http://example.com", allow_insecure_http=True))


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "example.com", "https://", "https://user:pw@example.com"]
)
def test_bad_base_url_is_a_configuration_error(url: str):
    """Non-http(s), relative, hostless and credential-carrying base URLs are refused."""
    with pytest.raises(nsdk.ConfigurationError):
        nsdk.Client(url)


@pytest.mark.parametrize(
    "url", ["https://user:s3cret@example.com", "ftp://user:s3cret@example.com"]
)
def test_credentials_in_base_url_are_not_echoed(url: str):
    """The error for a base URL with user:password@ does not repeat the password."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.Client(url)
    assert "s3cret" not in str(info.value)


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch):
    """Without base_url the client reads $NSDK_API_BASE_URL, and refuses to guess without it."""
    monkeypatch.setenv(nsdk.BASE_URL_ENV, "https://env.example.com")
    assert "https://env.example.com" in repr(nsdk.Client())
    monkeypatch.delenv(nsdk.BASE_URL_ENV)
    with pytest.raises(nsdk.ConfigurationError, match=nsdk.BASE_URL_ENV):
        nsdk.AsyncClient()


@pytest.mark.parametrize("name", ["Authorization", "authorization"])
def test_authorization_header_is_refused(name: str):
    """A fixed Authorization header would bypass rotation: refused."""
    with pytest.raises(nsdk.ConfigurationError):
        nsdk.Client("https://api.example.com", headers={name: "Bearer x"})


def test_retry_must_be_a_policy():
    """retry= takes a RetryPolicy, nothing else."""
    with pytest.raises(nsdk.ConfigurationError):
        nsdk.Client("https://api.example.com", retry={"max_attempts": 2})  # type: ignore[arg-type]


async def test_extra_headers_are_sent(make: Callable[..., Driver], server: FakeServer):
    """headers= are sent on every request, next to the managed Authorization."""
    seen: list[httpx.Headers] = []
    server.on("me", lambda request: seen.append(request.headers))
    drv = make(headers={"X-App": "demo"})
    await drv.login()
    assert seen[0]["X-App"] == "demo"
    assert seen[0]["Authorization"] == "Bearer access-1"


async def test_retry_policy_is_used(make: Callable[..., Driver], server: FakeServer, sleeps):
    """retry=RetryPolicy.no_retries() sends a failing request once."""
    drv = make(retry=nsdk.RetryPolicy.no_retries())
    await drv.login()
    server.script("me", 503)
    with pytest.raises(nsdk.ServerError):
        await drv.me()
    assert sleeps == []
    assert server.seq[-1:] == [("me", "access-1")]
    assert len(server.calls) == 3


async def test_base_url_with_path_prefix(client_factory: Callable[..., Driver], kind: str):
    """A base URL with a path prefix sends there, with the token, and still refreshes on 401."""
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("Authorization")))
        path = request.url.path.removeprefix("/v1")
        if path == "/api/auth/login":
            ids = {"userId": "1005", "tenantId": "2001"}
            return httpx.Response(200, json={"accessToken": "a1", "refreshToken": "r1", **ids})
        if path == "/api/auth/refresh":
            return httpx.Response(200, json={"accessToken": "a2", "refreshToken": "r2"})
        if request.headers["Authorization"] == "Bearer a1" and len(seen) > 2:
            return httpx.Response(401, json={"detail": "expired", "request_id": "r"})
        body = {"userId": "1005", "tenantId": "2001", "email": "e"}
        return httpx.Response(200, json=body)

    async def ahandler(request: httpx.Request) -> httpx.Response:
        return handler(request)

    transport = httpx.MockTransport(handler if kind == "sync" else ahandler)
    drv = client_factory(kind, base_url="https://api.example.com/v1", transport=transport)
    await drv.login()
    await drv.me()
    assert seen == [
        ("/v1/api/auth/login", None),
        ("/v1/api/auth/me", "Bearer a1"),
        ("/v1/api/auth/me", "Bearer a1"),
        ("/v1/api/auth/refresh", None),
        ("/v1/api/auth/me", "Bearer a2"),
    ]


async def test_tokens_in_store_restore_the_session(make: Callable[..., Driver], server: FakeServer):
    """Tokens saved by one client let a new client with the same store call me without login."""
    store = nsdk.MemoryTokenStore()
    first = make(token_store=store)
    await first.login()
    assert store.tokens is not None
    second = make(token_store=store)
    assert second.state is nsdk.SessionState.ACTIVE
    await second.me()
    assert server.seq[-1] == ("me", "access-1")


async def _close(drv: Driver) -> None:
    if drv.is_async:
        await drv.client.aclose()
    else:
        drv.client.close()


async def test_close_keeps_tokens_in_store(make: Callable[..., Driver], server: FakeServer):
    """close moves the session to CLOSED and leaves the tokens in the store for a later client."""
    store = nsdk.MemoryTokenStore()
    drv = make(token_store=store)
    await drv.login()
    await _close(drv)
    assert drv.state is nsdk.SessionState.CLOSED
    assert store.tokens is not None
    assert await drv.logout() is False  # nothing to revoke through a closed client
    assert len(server.calls) == 2


@pytest.mark.parametrize("call", ["me", "login"])
async def test_calls_after_close_raise_nsdk_error(
    make: Callable[..., Driver], server: FakeServer, call: str
):
    """After close, calls raise an NsdkError (NotAuthenticatedError for protected ones), unsent."""
    drv = make()
    await drv.login()
    await _close(drv)
    with pytest.raises(nsdk.NsdkError, match="closed"):
        await getattr(drv, call)()
    assert len(server.calls) == 2


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/x",
        "https://evil.example/api/auth/me",
        "http://api.example.com/api/auth/me",
        "https://api.example.com:8443/api/auth/me",
    ],
)
async def test_token_never_sent_to_another_origin(signed_in: Driver, server: FakeServer, url: str):
    """A request to another origin (host, scheme or port) carries no Authorization, even on 401."""
    server.script(url, 401)
    response = await signed_in.raw_get(url)
    assert response.status_code == 401
    assert [c.authorization for c in server.calls] == [None]


async def test_redirect_is_not_followed(signed_in: Driver, server: FakeServer):
    """A 302 from me is an APIError, not a redirect to follow: exactly one request."""
    server.script("me", httpx.Response(302, headers={"Location": "https://evil.example/steal"}))
    with pytest.raises(nsdk.APIError) as info:
        await signed_in.me()
    assert info.value.status_code == 302
    assert info.value.documented is False
    assert server.seq == [("me", "access-1")]
