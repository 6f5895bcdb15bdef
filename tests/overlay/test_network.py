"""Network settings as httpx users know them, and errors that say what went wrong (issue 13).

The transports a client builds are the ones httpx's own ``Client`` would (the direct one, one per
proxy mounted by URL pattern, from ``proxy=`` or the environment), each wrapped in nsdk's retry
transport. Proxy and TLS failures become typed errors with exact messages, retried only where
resending can help. A real TLS server with a throwaway CA (trustme) proves ``verify=`` and
``SSL_CERT_FILE``. The end-to-end runs through a real proxy live with the reference server's TLS.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import nsdk
import pytest
import trustme
from _secret_scan import LEDGER
from nsdk import _network
from nsdk._transport import AsyncRetryTransport, RetryTransport

if TYPE_CHECKING:
    from .conftest import Driver, FakeServer

BASE_URL = "https://api.example.com"
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")
SECRET = "pr0xy-s3cret"
LEDGER.secret(SECRET)  # the suite-wide scan fails if a log line, error or report shows it


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA variable from the machine running the tests leaks into them."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _httpx_client(client: nsdk.Client | nsdk.AsyncClient) -> httpx.Client | httpx.AsyncClient:
    if isinstance(client, nsdk.AsyncClient):
        return client.api.get_async_httpx_client()
    return client.api.get_httpx_client()


def _mounted(client: nsdk.Client | nsdk.AsyncClient) -> dict[str, str | None]:
    """The httpx client's mounts: URL pattern -> proxy of the retry transport (None: direct)."""
    shell = AsyncRetryTransport if isinstance(client, nsdk.AsyncClient) else RetryTransport
    inner = (
        httpx.AsyncHTTPTransport if isinstance(client, nsdk.AsyncClient) else httpx.HTTPTransport
    )
    out: dict[str, str | None] = {}
    mounts = _httpx_client(client)._mounts  # httpx's routing table, read to prove what it holds
    for pattern, transport in mounts.items():
        if transport is not None:
            assert isinstance(transport, shell), pattern.pattern
            assert isinstance(transport._inner, inner), pattern.pattern
            out[pattern.pattern] = transport.proxy
        else:
            out[pattern.pattern] = None
    direct = _httpx_client(client)._transport
    assert isinstance(direct, shell) and isinstance(direct._inner, inner)
    assert direct.proxy is None
    return out


def _build(kind: str, **kwargs: Any) -> nsdk.Client | nsdk.AsyncClient:
    cls = nsdk.Client if kind == "sync" else nsdk.AsyncClient
    return cls(BASE_URL, **kwargs)


ENV_MOUNTS = {
    "http://": "http://proxy-http:3128",
    "https://": "http://proxy-https:3128",
    "all://": "http://proxy-all:3128",
    "all://*internal.example.com": None,
    "all://localhost": None,
}


def _set_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://user:{SECRET}@proxy-http:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy-https:3128")
    monkeypatch.setenv("ALL_PROXY", "proxy-all:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.com,localhost")


# --- the transports httpx would build, each wrapped ----------------------------------------------


def test_environment_proxies_is_httpx_own_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one private httpx helper nsdk uses still exists and reads the variables as expected."""
    from httpx._utils import get_environment_proxies

    _set_proxy_env(monkeypatch)
    expected = {
        "http://": f"http://user:{SECRET}@proxy-http:3128",
        "https://": "http://proxy-https:3128",
        "all://": "http://proxy-all:3128",
        "all://*internal.example.com": None,
        "all://localhost": None,
    }
    assert _network.environment_proxies() == get_environment_proxies() == expected
    monkeypatch.setenv("NO_PROXY", "*")
    assert _network.environment_proxies() == {}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_environment_proxies_are_mounted_as_httpx_would_each_wrapped(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY/HTTPS_PROXY/ALL_PROXY/NO_PROXY give httpx's mounts, each a retry transport."""
    _set_proxy_env(monkeypatch)
    client = _build(kind)
    assert _mounted(client) == ENV_MOUNTS  # credentials never kept in the label
    plain = httpx.Client() if kind == "sync" else httpx.AsyncClient()
    assert {p.pattern for p in plain._mounts} == set(ENV_MOUNTS)  # what httpx itself mounts


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_trust_env_false_ignores_the_proxy_variables(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trust_env=False: no proxy mounted whatever the environment says."""
    _set_proxy_env(monkeypatch)
    assert _mounted(_build(kind, trust_env=False)) == {}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_proxy_argument_overrides_the_environment(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """proxy= is the one proxy for every URL, the variables notwithstanding."""
    _set_proxy_env(monkeypatch)
    client = _build(kind, proxy=f"http://me:{SECRET}@corp-proxy:8080")
    assert _mounted(client) == {"all://": "http://corp-proxy:8080"}
    assert SECRET not in repr(client)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_no_proxy_anywhere_builds_only_the_direct_transport(kind: str) -> None:
    """Without proxies, one wrapped direct transport, as before."""
    assert _mounted(_build(kind)) == {}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_with_options_view_uses_the_same_mounts(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A with_options view routes through the same proxies, over the client's own pools."""
    _set_proxy_env(monkeypatch)
    client = _build(kind)
    view = client.with_options(retry=nsdk.RetryPolicy.no_retries())
    assert _mounted(view) == ENV_MOUNTS
    base = _httpx_client(client)._mounts
    for pattern, transport in _httpx_client(view)._mounts.items():
        if transport is not None:
            assert transport._inner is base[pattern]._inner  # the client's connection pool
            assert transport._policy.max_attempts == 1


def test_network_settings_reach_the_transports() -> None:
    """verify, limits and http2 are those of every transport built, proxied or direct."""
    ctx = ssl.create_default_context()
    limits = httpx.Limits(max_connections=7)
    client = nsdk.Client(BASE_URL, proxy="http://p:1", verify=ctx, limits=limits, http2=True)
    for transport in (client._transports.direct, client._transports.mounts["all://"]):
        assert transport is not None
        pool = transport._inner._pool
        assert pool._ssl_context is ctx
        assert pool._max_connections == 7
        assert pool._http2 is True


# --- requests through the mounted transports: retry and auth apply -------------------------------


class _Seen(list[tuple[str, str]]):
    """The requests httpx's transports were asked to send: (pool kind, path)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Any] = []  # answers to give instead of the fake server's, in order


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch, server: FakeServer) -> _Seen:
    """Patch httpx's own transports so the fake server (or ``script``) answers every request."""
    seen = _Seen()

    def answer(transport: Any, request: httpx.Request) -> httpx.Response:
        pool = type(transport._pool).__name__.removeprefix("Async")  # the same for both flavours
        seen.append((pool, request.url.path))
        if seen.script:
            out = seen.script.pop(0)
            if isinstance(out, BaseException):
                raise out
            return out
        return server.handler(request)

    async def aanswer(transport: Any, request: httpx.Request) -> httpx.Response:
        return answer(transport, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", answer)
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", aanswer)
    return seen


async def test_proxied_requests_are_signed_and_retried(
    make: Callable[..., Driver], routed: _Seen, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    """Through an HTTPS_PROXY mount: login, the bearer call and a 503 retried, all proxied."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    drv = make(transport=None)
    await drv.login()
    drv.server.script("me", 503)
    await drv.me()
    assert [kind for kind, _ in routed] == ["HTTPProxy"] * 4
    assert [c.token for c in drv.server.calls] == [None, "access-1", "access-1", "access-1"]
    assert sleeps == [0.125]


async def test_no_proxy_host_goes_direct(
    make: Callable[..., Driver], routed: _Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY naming the API's host sends directly, through the wrapped direct transport."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    drv = make(transport=None)
    await drv.login()
    assert [kind for kind, _ in routed] == ["ConnectionPool"] * 2


# --- error translation -----------------------------------------------------------------------

PROXY = f"http://user:{SECRET}@proxy.corp:3128"
ME = "GET https://api.example.com/api/auth/me"
REFRESH = "POST https://api.example.com/api/auth/refresh"


def _tls_error() -> httpx.ConnectError:
    # As httpx raises it: ConnectError from httpcore's, itself from the ssl error.
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    try:
        try:
            raise cause
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        return exc


async def _signed_in(make: Callable[..., Driver], **kwargs: Any) -> Driver:
    drv = make(transport=None, **kwargs)
    await drv.login()
    drv.server.calls.clear()
    return drv


async def test_proxy_407_is_a_proxy_error_not_retried(
    make: Callable[..., Driver], routed: _Seen, sleeps: list[float]
) -> None:
    """A 407 to CONNECT: nsdk.ProxyError(407), one attempt, the proxy named without credentials."""
    drv = await _signed_in(make, proxy=PROXY)
    routed.script.append(httpx.ProxyError("407 Proxy Authentication Required"))
    with pytest.raises(nsdk.ProxyError) as info:
        await drv.me()
    assert str(info.value) == (
        "me: the proxy http://proxy.corp:3128 refused the tunnel (407 Proxy Authentication "
        f"Required) for {ME} after 1 attempt in 0 s; put credentials in the proxy URL "
        "(http://user:password@host:port), or check them; not retried"
    )
    assert (info.value.status_code, info.value.proxy, info.value.attempts) == (
        407,
        "http://proxy.corp:3128",
        1,
    )
    assert not isinstance(info.value, nsdk.RetryableError)
    assert sleeps == []


async def test_proxy_403_is_a_proxy_error_not_retried(
    make: Callable[..., Driver], routed: _Seen, sleeps: list[float]
) -> None:
    """A 403 to CONNECT: the proxy's policy; ProxyError(403), one attempt."""
    drv = await _signed_in(make, proxy=PROXY)
    routed.script.append(httpx.ProxyError("403 Forbidden"))
    with pytest.raises(nsdk.ProxyError) as info:
        await drv.me()
    assert str(info.value) == (
        f"me: the proxy http://proxy.corp:3128 refused the tunnel (403 Forbidden) for {ME} after "
        "1 attempt in 0 s; its policy does not let this client reach the API: ask its "
        "administrators, or bypass it with NO_PROXY; not retried"
    )
    assert info.value.status_code == 403 and sleeps == []


@pytest.mark.parametrize("status", ["502 Bad Gateway", "503 Service Unavailable", "504 Timeout"])
async def test_proxy_that_cannot_reach_the_api_is_retried_even_for_refresh(
    make: Callable[..., Driver], routed: _Seen, sleeps: list[float], status: str
) -> None:
    """502/503/504 to CONNECT never reached the API: refresh (not resend-safe) is retried too."""
    drv = await _signed_in(make, proxy=PROXY)
    routed.script.extend(httpx.ProxyError(status) for _ in range(4))
    with pytest.raises(nsdk.APIConnectionError) as info:
        await drv.refresh()
    assert str(info.value) == (
        f"refresh: the proxy http://proxy.corp:3128 could not reach the API ({status}) for "
        f"{REFRESH} after 4 attempts in 0.875 s; the request never reached the API; retry later, "
        "and check that the API's host is reachable from the proxy"
    )
    assert info.value.proxy_status == int(status[:3])
    assert info.value.proxy == "http://proxy.corp:3128"
    assert info.value.attempts == 4 and sleeps == [0.125, 0.25, 0.5]


async def test_proxy_503_then_tunnel_opens(
    make: Callable[..., Driver], routed: _Seen, sleeps: list[float]
) -> None:
    """A proxy that could not reach the API once: the refresh is resent and succeeds."""
    drv = await _signed_in(make, proxy=PROXY)
    routed.script.append(httpx.ProxyError("503 Service Unavailable"))
    tokens = await drv.refresh()
    assert tokens.refresh_token.endswith("refresh-2")
    assert sleeps == [0.125]


async def test_tls_verification_failure_is_typed_and_not_retried(
    make: Callable[..., Driver], routed: _Seen, sleeps: list[float]
) -> None:
    """A certificate not trusted: TLSVerificationError, one attempt, no fallback, what to do."""
    drv = make(transport=None)
    routed.script.append(_tls_error())
    with pytest.raises(nsdk.TLSVerificationError) as info:
        await drv.login()
    assert str(info.value) == (
        "login: the server's certificate of POST https://api.example.com/api/auth/login is not "
        "trusted after 1 attempt in 0 s (unable to get local issuer certificate); for a private "
        "CA pass verify=<CA bundle path> or an ssl.SSLContext, or set SSL_CERT_FILE; nsdk never "
        "falls back to an unverified connection; not retried"
    )
    assert info.value.attempts == 1 and sleeps == [] and len(routed) == 1
    assert not isinstance(info.value, nsdk.RetryableError)


async def test_plain_http_407_from_a_forwarding_proxy_is_a_proxy_error(
    make: Callable[..., Driver], routed: _Seen
) -> None:
    """An http:// request forwarded by a proxy that answers 407: the same ProxyError."""
    drv = make(
        transport=None, base_url="http://127.0.0.1:8000", proxy=PROXY, allow_insecure_http=True
    )
    routed.script.append(httpx.Response(407, headers={"Proxy-Authenticate": "Basic"}))
    with pytest.raises(nsdk.ProxyError) as info:
        await drv.login()
    assert info.value.status_code == 407
    assert str(info.value).startswith(
        "login: the proxy http://proxy.corp:3128 refused the tunnel (407 Proxy Authentication "
        "Required) for POST http://127.0.0.1:8000/api/auth/login after 1 attempt"
    )


async def test_proxy_error_through_a_users_transport_names_no_proxy(
    make: Callable[..., Driver], server: FakeServer
) -> None:
    """With transport= of one's own, the proxy is unknown: the message says so."""
    server.script("login", *[httpx.ProxyError] * 4)
    drv = make()
    with pytest.raises(nsdk.APIConnectionError) as info:
        await drv.login()
    assert str(info.value).startswith(
        "login: the proxy (of the transport) could not open a tunnel to the API (simulated "
        "ProxyError) for POST https://api.example.com/api/auth/login after 4 attempts"
    )
    assert info.value.proxy is None and info.value.proxy_status is None


def test_decisions_and_classes_agree() -> None:
    """The statuses the retry policy never retries are the ones that raise ProxyError."""
    from nsdk import _errors, _retry

    for status in range(400, 600):
        error = httpx.ProxyError(f"{status} Reason")
        translated = _errors.from_transport(error, "me")
        refused = status in _retry.PROXY_REFUSALS
        assert isinstance(translated, nsdk.ProxyError) is refused
        assert any(final(error) for final in _retry.FINAL_ERRORS) is refused
    assert _retry.proxy_status(httpx.ProxyError("Proxy Server could not connect: TTL.")) is None


# --- validation ----------------------------------------------------------------------------------

NETWORK_ACCEPTS = (
    "proxy, verify, cert, limits and http2 configure the transport nsdk builds; with transport= "
    "configure that transport instead (e.g. httpx.HTTPTransport(verify=..., proxy=...)), got "
    "transport= with "
)
BAD_NETWORK: list[tuple[dict[str, Any], str]] = [
    (
        {"proxy": 3128},
        "proxy must be a URL such as 'http://proxy.example.com:3128' (a str or httpx.URL), an "
        "httpx.Proxy, or None (then HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY apply unless "
        "trust_env=False), got int",
    ),
    (
        {"proxy": f"ftp://u:{SECRET}@proxy:21"},
        "proxy=: the proxy URL is not usable (unknown scheme); it must look like http://host:port, "
        "https://, socks5:// or socks5h://, with any credentials as user:password@host",
    ),
    (
        {"verify": 1},
        "verify must be True (the default CAs, or SSL_CERT_FILE / SSL_CERT_DIR), the path of a CA "
        "bundle (PEM) or directory, an ssl.SSLContext, or False (no certificate checks), got 1",
    ),
    (
        {"cert": ("a.pem", "a.key", SECRET, "extra")},
        "cert must be the path of a PEM file with the client certificate and its key, a tuple "
        "(certificate path, key path) or (certificate path, key path, key password), or None, "
        "got a tuple",
    ),
    (
        {"limits": 10},
        "limits must be an httpx.Limits (e.g. httpx.Limits(max_connections=50)), or None for "
        "httpx's default, got 10",
    ),
    ({"trust_env": "no"}, "trust_env must be True or False, got 'no'"),
    ({"http2": 1}, "http2 must be True or False, got 1"),
    (
        {"verify": "/nonexistent/ca.pem"},
        "verify='/nonexistent/ca.pem': cannot load CA certificates (No such file or directory); "
        "give a PEM file of CA certificates, or a directory prepared with `openssl rehash`",
    ),
    (
        {"cert": ("/nonexistent/c.pem", "/nonexistent/c.key", SECRET)},
        "cert: cannot load the client certificate from '/nonexistent/c.pem' and "
        "'/nonexistent/c.key' (No such file or directory); give PEM files of the certificate and "
        "its key (and the key's password)",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_NETWORK)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_bad_network_arguments_are_refused(kind: str, kwargs: dict[str, Any], message: str) -> None:
    """Each wrong network argument: ConfigurationError naming it and what it accepts."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        _build(kind, **kwargs)
    assert str(info.value) == message
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_transport_with_network_settings_is_refused(kind: str) -> None:
    """transport= plus proxy=/verify=...: refused, they would configure nothing."""
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    with pytest.raises(nsdk.ConfigurationError) as info:
        _build(kind, transport=transport, proxy="http://p:1", http2=True)
    assert str(info.value) == NETWORK_ACCEPTS + "proxy=, http2="


def test_verify_false_needs_the_insecure_opt_in() -> None:
    """verify=False is refused like http:// unless allow_insecure_http=True."""
    with pytest.raises(nsdk.InsecureTransportError, match=r"^refusing verify=False: without"):
        nsdk.Client(BASE_URL, verify=False)
    nsdk.Client(BASE_URL, verify=False, allow_insecure_http=True).close()


def test_http2_without_h2_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """http2=True without the h2 package: ConfigurationError naming the pip command."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "h2" else real(name, *a)
    )
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.Client(BASE_URL, http2=True)
    assert str(info.value) == (
        "http2=True needs the h2 package: pip install 'nsdk[http2]' (or 'httpx[http2]')"
    )


def test_bad_proxy_variable_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unusable proxy variable is named as the environment's, its credentials not echoed."""
    monkeypatch.setenv("HTTPS_PROXY", f"ftp://u:{SECRET}@proxy:21")
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.Client(BASE_URL)
    assert str(info.value).startswith("the proxy environment variables: the proxy URL is not")
    assert SECRET not in str(info.value)
    nsdk.Client(BASE_URL, trust_env=False).close()


# --- a real TLS server with a throwaway CA -------------------------------------------------------


class _Api(BaseHTTPRequestHandler):
    """Answers login and me with canned JSON; enough for ``Client.login``."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._json({"accessToken": "a-1", "refreshToken": "r-1", "userId": "1", "tenantId": "2"})

    def do_GET(self) -> None:
        self._json({"userId": "1", "tenantId": "2", "email": "user@example.com"})

    def _json(self, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback with a trustme CA's certificate: (base URL, CA bundle path)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", bundle
    httpd.shutdown()
    httpd.server_close()


async def _login(kind: str, base_url: str, **kwargs: Any) -> nsdk.Session:
    if kind == "sync":
        with nsdk.Client(base_url, **kwargs) as client:
            return client.login(email="user@example.com", password="pw")
    async with nsdk.AsyncClient(base_url, **kwargs) as aclient:
        return await aclient.login(email="user@example.com", password="pw")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_real_untrusted_certificate_is_a_tls_verification_error(
    kind: str, tls_server: tuple[str, Path]
) -> None:
    """A server whose CA the client does not trust: TLSVerificationError after one attempt."""
    url, _ = tls_server
    with pytest.raises(nsdk.TLSVerificationError) as info:
        await _login(kind, url)
    assert f"the server's certificate of POST {url}/api/auth/login is not trusted" in str(
        info.value
    )
    assert "(unable to get local issuer certificate)" in str(info.value)
    assert info.value.attempts == 1
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("how", ["bundle path", "ssl context", "SSL_CERT_FILE"])
async def test_real_private_ca_is_trusted_when_given(
    kind: str, how: str, tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same CA through verify=<path>, verify=<SSLContext> or SSL_CERT_FILE: login works."""
    url, bundle = tls_server
    kwargs: dict[str, Any] = {}
    if how == "bundle path":
        kwargs["verify"] = str(bundle)
    elif how == "ssl context":
        kwargs["verify"] = ssl.create_default_context(cafile=str(bundle))
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    session = await _login(kind, url, **kwargs)
    assert (session.user_id, session.tenant_id) == ("1", "2")


async def test_ssl_cert_file_ignored_without_trust_env(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """trust_env=False: SSL_CERT_FILE is not read, as in httpx, so the CA is not trusted."""
    url, bundle = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with pytest.raises(nsdk.TLSVerificationError):
        await _login("sync", url, trust_env=False)
