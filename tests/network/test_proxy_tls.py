"""nsdk over a real forward proxy (Debian's tinyproxy) and real TLS, against the reference server.

Everything runs on loopback: the reference server over HTTPS with its throwaway CA (and mutual TLS
where asked), tinyproxy as the forward proxy. Outcomes are counted where they happen: the
server's per-operation request counters, the proxy's log of ``CONNECT`` tunnels, the attempts the
errors report and the waits the injected ``sleep`` recorded.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import nsdk
import pytest
from _secret_scan import LEDGER
from nsdk_server.testing import ServerHandle, run_server

from .conftest import Tinyproxy, free_port

EMAIL, PASSWORD = "user@example.com", "demo-password"
OPTIONS: dict[str, Any] = {"faults": True, "scrypt_n": 2**12}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
CERT_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
#: Three attempts, no jitter: the waits between them are known exactly.
RETRY = nsdk.RetryPolicy(max_attempts=3, initial_backoff=0.25, multiplier=2.0, jitter=0.0)


@pytest.fixture(scope="module")
def tls_server() -> Iterator[ServerHandle]:
    """One HTTPS reference server (throwaway CA, faults on) for this module."""
    with run_server(tls=True, **OPTIONS) as handle:
        yield handle


@pytest.fixture(scope="module")
def mtls_server() -> Iterator[ServerHandle]:
    """One HTTPS reference server requiring a client certificate from its CA."""
    with run_server(tls=True, client_cert=True, **OPTIONS) as handle:
        yield handle


@pytest.fixture
def server(tls_server: ServerHandle) -> ServerHandle:
    """The module's HTTPS server, its counters and faults reset."""
    tls_server.reset()
    return tls_server


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA variable from the machine: each test sets what it means."""
    for name in PROXY_VARIABLES + CERT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def requests(handle: ServerHandle) -> dict[str, int]:
    """The server's request counters per operation."""
    counts: dict[str, int] = handle.stats()["requests"]
    return counts


def host_port(handle: ServerHandle) -> str:
    """``127.0.0.1:PORT`` of the server, as a ``CONNECT`` line names it."""
    return handle.base_url.removeprefix("https://")


class Sleeps:
    """Records the waits the retry policy asked for instead of sleeping (sync and async)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


class ScriptedProxy:
    """A fake forward proxy on loopback: answers every connection with ``answer`` and closes.

    ``answer=b""`` accepts, reads the ``CONNECT`` and closes without a word (a dropped tunnel).
    ``connections`` counts the connections accepted (one per attempt).
    """

    def __init__(self, answer: bytes) -> None:
        """Listen on a free loopback port and serve in a daemon thread."""
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.settimeout(5.0)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                if self.answer:
                    conn.sendall(self.answer)

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._stop.set()
        self._thread.join(5.0)
        self._sock.close()


@pytest.fixture
def scripted_proxy() -> Iterator[Callable[[bytes], ScriptedProxy]]:
    """Start scripted proxies; all closed at teardown."""
    started: list[ScriptedProxy] = []

    def start(answer: bytes) -> ScriptedProxy:
        proxy = ScriptedProxy(answer)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.close()


# --- 1. the whole flow through the proxy -------------------------------------------------------

#: login (and the me() that login makes to check the session), me, me -> 401 -> refresh -> me,
#: me -> 429 -> me, logout.
EXPECTED_FLOW = {"login": 1, "me": 6, "refresh": 1, "logout": 1}


def assert_nothing_in_clear(proxy: Tinyproxy, secrets: list[str]) -> None:
    """The proxy's log names no API path and no token: it only saw tunnels."""
    log = proxy.log()
    LEDGER.text("tinyproxy log", log)
    assert "/api/" not in log
    assert "Authorization" not in log and "Bearer" not in log
    for secret in secrets:
        assert secret not in log
    assert PASSWORD not in log


def test_flow_through_proxy_sync(server: ServerHandle, tinyproxy: Tinyproxy) -> None:
    """Client via tinyproxy over TLS: login, me, 401->refresh->resend, 429 honoured, logout."""
    store = nsdk.MemoryTokenStore()
    seen: list[nsdk.Tokens] = []
    sleeps = Sleeps()
    with nsdk.Client(
        server.base_url,
        proxy=tinyproxy.url,
        verify=str(server.ca_path),
        token_store=store,
        on_tokens_refreshed=seen.append,
        sleep=sleeps,
    ) as client:
        client.login(email=EMAIL, password=PASSWORD)
        assert store.tokens is not None
        seen.insert(0, store.tokens)
        assert client.me().email == EMAIL
        server.faults.add("me", status=401)
        assert client.me().email == EMAIL  # 401 -> refresh -> resend
        assert len(seen) == 2
        server.faults.add("me", status=429, retry_after=1)
        assert client.me().email == EMAIL  # 429 -> wait Retry-After -> resend
        assert sleeps.waits == [1.0]
        assert client.logout() is True
    assert requests(server) == EXPECTED_FLOW
    assert server.stats()["refresh_ok"] == 1
    assert len(tinyproxy.connects(host_port(server))) == 1  # one kept-alive tunnel
    assert len(tinyproxy.connects()) == 1
    assert_nothing_in_clear(
        tinyproxy, [t.access_token for t in seen] + [t.refresh_token for t in seen]
    )


async def test_flow_through_proxy_async(server: ServerHandle, tinyproxy: Tinyproxy) -> None:
    """AsyncClient via tinyproxy over TLS: the same flow, the same counts."""
    store = nsdk.MemoryTokenStore()
    seen: list[nsdk.Tokens] = []
    sleeps = Sleeps()
    async with nsdk.AsyncClient(
        server.base_url,
        proxy=tinyproxy.url,
        verify=str(server.ca_path),
        token_store=store,
        on_tokens_refreshed=seen.append,
        sleep=sleeps.asleep,
    ) as client:
        await client.login(email=EMAIL, password=PASSWORD)
        assert store.tokens is not None
        seen.insert(0, store.tokens)
        assert (await client.me()).email == EMAIL
        server.faults.add("me", status=401)
        assert (await client.me()).email == EMAIL
        assert len(seen) == 2
        server.faults.add("me", status=429, retry_after=1)
        assert (await client.me()).email == EMAIL
        assert sleeps.waits == [1.0]
        assert await client.logout() is True
    assert requests(server) == EXPECTED_FLOW
    assert len(tinyproxy.connects(host_port(server))) == 1
    assert len(tinyproxy.connects()) == 1
    assert_nothing_in_clear(
        tinyproxy, [t.access_token for t in seen] + [t.refresh_token for t in seen]
    )


# --- 2. the proxy from the environment ---------------------------------------------------------


def test_proxy_from_environment(
    server: ServerHandle, tinyproxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY alone routes through the proxy; NO_PROXY bypasses it; proxy= overrides it."""
    verify = str(server.ca_path)
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url)
    with nsdk.Client(server.base_url, verify=verify) as client:
        client.login(email=EMAIL, password=PASSWORD)
        assert client.logout() is True
    assert len(tinyproxy.connects(host_port(server))) == 1

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with nsdk.Client(server.base_url, verify=verify) as client:
        client.login(email=EMAIL, password=PASSWORD)
        assert client.logout() is True
    assert len(tinyproxy.connects()) == 1  # no new tunnel: it went direct
    assert requests(server)["login"] == 2

    monkeypatch.delenv("NO_PROXY")
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTPS_PROXY", dead)
    with nsdk.Client(server.base_url, verify=verify, proxy=tinyproxy.url) as client:
        client.login(email=EMAIL, password=PASSWORD)
        assert client.logout() is True
    assert len(tinyproxy.connects(host_port(server))) == 2
    assert requests(server) == {"login": 3, "me": 3, "refresh": 0, "logout": 3}


# --- 3. server certificates --------------------------------------------------------------------


def test_unknown_ca_is_final(server: ServerHandle, tinyproxy: Tinyproxy) -> None:
    """An unknown CA: TLSVerificationError after one attempt, nothing reached the server."""
    sleeps = Sleeps()
    client = nsdk.Client(server.base_url, proxy=tinyproxy.url, sleep=sleeps)
    with client, pytest.raises(nsdk.TLSVerificationError) as info:
        client.login(email=EMAIL, password=PASSWORD)
    LEDGER.exception(info.value)
    assert info.value.attempts == 1
    assert info.value.proxy == tinyproxy.bare_url
    assert str(info.value)
    assert sleeps.waits == []
    assert len(tinyproxy.connects(host_port(server))) == 1  # one tunnel, no retry storm
    assert requests(server) == {"login": 0, "me": 0, "refresh": 0, "logout": 0}
    assert_nothing_in_clear(tinyproxy, [])


def test_ca_from_verify_and_ssl_cert_file(
    server: ServerHandle, tinyproxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's CA given as verify=<path>, then through SSL_CERT_FILE: both work."""
    with nsdk.Client(server.base_url, proxy=tinyproxy.url, verify=str(server.ca_path)) as client:
        client.login(email=EMAIL, password=PASSWORD)
        assert client.logout() is True
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
    with nsdk.Client(server.base_url, proxy=tinyproxy.url) as client:
        client.login(email=EMAIL, password=PASSWORD)
        assert client.logout() is True
    assert requests(server) == {"login": 2, "me": 2, "refresh": 0, "logout": 2}
    assert len(tinyproxy.connects(host_port(server))) == 2


# --- 4. mutual TLS -----------------------------------------------------------------------------


def test_mutual_tls(mtls_server: ServerHandle, tinyproxy: Tinyproxy) -> None:
    """cert= makes mutual TLS work; without a certificate a typed, bounded nsdk error."""
    mtls_server.reset()
    verify = str(mtls_server.ca_path)
    cert = str(mtls_server.client_cert_path)
    with nsdk.Client(mtls_server.base_url, proxy=tinyproxy.url, verify=verify, cert=cert) as c:
        c.login(email=EMAIL, password=PASSWORD)
        assert c.me().email == EMAIL
        assert c.logout() is True
    assert requests(mtls_server) == {"login": 1, "me": 2, "refresh": 0, "logout": 1}

    sleeps = Sleeps()
    with (
        nsdk.Client(
            mtls_server.base_url, proxy=tinyproxy.url, verify=verify, retry=RETRY, sleep=sleeps
        ) as client,
        pytest.raises(nsdk.NsdkError) as info,
    ):
        client.login(email=EMAIL, password=PASSWORD)
    LEDGER.exception(info.value)
    error = info.value
    # TLS 1.3: the server refuses the missing certificate after the handshake, so the client
    # sees the connection dropped at its first request; login is resend-safe, so the policy's
    # attempts are made, each through its own tunnel, and no more.
    assert isinstance(error, nsdk.APIConnectionError), repr(error)
    assert "login" in str(error) and "RemoteProtocolError" in str(error)
    assert error.attempts == RETRY.max_attempts
    assert sleeps.waits == [0.25, 0.5]
    assert error.proxy == tinyproxy.bare_url and error.proxy_status is None
    assert len(tinyproxy.connects(host_port(mtls_server))) == 1 + RETRY.max_attempts
    assert requests(mtls_server)["login"] == 1  # the certificate-less handshakes reached nothing


# --- 5. proxy faults ---------------------------------------------------------------------------

PROXY_USER, PROXY_PASSWORD = "nsdkproxy", "pr0xy-S3cret-passw0rd"


def test_proxy_requires_credentials(server: ServerHandle, tinyproxy_factory: Any) -> None:
    """BasicAuth: 407 without credentials (ProxyError, one attempt); with them in the URL: works."""
    LEDGER.secret(PROXY_PASSWORD)
    proxy: Tinyproxy = tinyproxy_factory(auth=(PROXY_USER, PROXY_PASSWORD))
    sleeps = Sleeps()
    with (
        nsdk.Client(
            server.base_url, proxy=proxy.bare_url, verify=str(server.ca_path), sleep=sleeps
        ) as client,
        pytest.raises(nsdk.ProxyError) as info,
    ):
        client.login(email=EMAIL, password=PASSWORD)
    LEDGER.exception(info.value)
    assert info.value.status_code == 407
    assert info.value.attempts == 1
    assert info.value.proxy == proxy.bare_url
    assert sleeps.waits == []
    assert requests(server)["login"] == 0

    with nsdk.Client(
        server.base_url, proxy=proxy.url, verify=str(server.ca_path), sleep=sleeps
    ) as client:
        LEDGER.text("client repr", repr(client))
        client.login(email=EMAIL, password=PASSWORD)
        assert client.me().email == EMAIL
        assert client.logout() is True
        # A failure through the credentialed proxy: its message names the proxy, never the password.
        with nsdk.Client(
            f"https://127.0.0.1:{free_port()}", proxy=proxy.url, retry=RETRY, sleep=sleeps
        ) as unreachable:
            with pytest.raises(nsdk.APIConnectionError) as failed:
                unreachable.login(email=EMAIL, password=PASSWORD)
            LEDGER.text("client repr", repr(unreachable))
    LEDGER.exception(failed.value)
    assert failed.value.proxy == proxy.bare_url
    assert requests(server) == {"login": 1, "me": 2, "refresh": 0, "logout": 1}
    log = proxy.log()
    LEDGER.text("tinyproxy log", log)
    assert PROXY_PASSWORD not in log
    for text in (str(info.value), repr(info.value), str(failed.value), repr(failed.value)):
        assert PROXY_PASSWORD not in text


def test_proxy_stopped_mid_session(server: ServerHandle, tinyproxy: Tinyproxy) -> None:
    """The proxy dies mid-session: APIConnectionError after every attempt the policy allows."""
    sleeps = Sleeps()
    with nsdk.Client(
        server.base_url,
        proxy=tinyproxy.url,
        verify=str(server.ca_path),
        retry=RETRY,
        sleep=sleeps,
    ) as client:
        client.login(email=EMAIL, password=PASSWORD)
        tinyproxy.stop()
        with pytest.raises(nsdk.APIConnectionError) as info:
            client.me()
    LEDGER.exception(info.value)
    assert info.value.attempts == RETRY.max_attempts
    assert sleeps.waits == [0.25, 0.5]
    assert info.value.proxy == tinyproxy.bare_url
    assert info.value.proxy_status is None
    assert requests(server)["me"] == 1  # the one login made; none after the proxy died


def test_proxy_drops_tunnel(
    server: ServerHandle, scripted_proxy: Callable[[bytes], ScriptedProxy]
) -> None:
    """A proxy that closes the connection at CONNECT: APIConnectionError, attempts counted."""
    proxy = scripted_proxy(b"")
    sleeps = Sleeps()
    with (
        nsdk.Client(
            server.base_url, proxy=proxy.url, verify=str(server.ca_path), retry=RETRY, sleep=sleeps
        ) as client,
        pytest.raises(nsdk.APIConnectionError) as info,
    ):
        client.login(email=EMAIL, password=PASSWORD)
    LEDGER.exception(info.value)
    error = info.value
    assert error.proxy == proxy.url and error.proxy_status is None
    assert error.attempts == proxy.connections == RETRY.max_attempts  # login is resend-safe
    assert sleeps.waits == [0.25, 0.5]
    assert all(request.startswith(b"CONNECT ") for request in proxy.requests)
    assert requests(server)["login"] == 0


def test_proxy_answers_503(
    server: ServerHandle, scripted_proxy: Callable[[bytes], ScriptedProxy]
) -> None:
    """A proxy answering 503 to CONNECT: retried, then APIConnectionError with proxy_status."""
    proxy = scripted_proxy(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    sleeps = Sleeps()
    with (
        nsdk.Client(
            server.base_url, proxy=proxy.url, verify=str(server.ca_path), retry=RETRY, sleep=sleeps
        ) as client,
        pytest.raises(nsdk.APIConnectionError) as info,
    ):
        client.login(email=EMAIL, password=PASSWORD)
    LEDGER.exception(info.value)
    assert info.value.proxy_status == 503
    assert info.value.attempts == RETRY.max_attempts == proxy.connections
    assert sleeps.waits == [0.25, 0.5]
    assert requests(server)["login"] == 0


def test_tinyproxy_cannot_reach_upstream(server: ServerHandle, tinyproxy: Tinyproxy) -> None:
    """tinyproxy cannot reach the API (closed port): its error status, every attempt retried."""
    closed = free_port()
    sleeps = Sleeps()
    with (
        nsdk.Client(
            f"https://127.0.0.1:{closed}",
            proxy=tinyproxy.url,
            verify=str(server.ca_path),
            retry=RETRY,
            sleep=sleeps,
        ) as client,
        pytest.raises(nsdk.APIConnectionError) as info,
    ):
        client.login(email=EMAIL, password=PASSWORD)
    LEDGER.exception(info.value)
    assert info.value.proxy_status == 500  # tinyproxy 1.11 answers "500 Unable to connect"
    assert info.value.attempts == RETRY.max_attempts
    assert sleeps.waits == [0.25, 0.5]
    assert len(tinyproxy.connects(f"127.0.0.1:{closed}")) == RETRY.max_attempts
