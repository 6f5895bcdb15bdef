"""HTTPS in the reference server: a throwaway CA, mutual TLS, the CLI's files, the control API.

Real handshakes over loopback with plain httpx; clients trust the server's CA through an
`ssl.SSLContext` (`ServerHandle.ssl_context()`), as httpx 0.28 recommends.
"""

from __future__ import annotations

import signal
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from nsdk_server.testing import ServerHandle, run_server, run_server_in_thread, server_args

from .conftest import EMAIL, PASSWORD, Api

OPTIONS: dict[str, Any] = {"faults": True, "scrypt_n": 2**12}


@pytest.fixture(scope="module")
def tls_server() -> Iterator[ServerHandle]:
    """One HTTPS server (throwaway CA, faults on) for this module."""
    with run_server(tls=True, **OPTIONS) as handle:
        yield handle


@pytest.fixture(scope="module")
def mtls_server() -> Iterator[ServerHandle]:
    """One HTTPS server that requires a client certificate from its throwaway CA."""
    with run_server(client_cert=True, **OPTIONS) as handle:
        yield handle


def https_client(handle: ServerHandle, verify: ssl.SSLContext | bool) -> httpx.Client:
    """A plain httpx client for an HTTPS server (no proxies from the environment)."""
    return httpx.Client(base_url=handle.base_url, verify=verify, trust_env=False, timeout=10.0)


def tls_version(response: httpx.Response) -> str | None:
    """The TLS version the response came over (None: not over TLS)."""
    ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
    return None if ssl_object is None else str(ssl_object.version())


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """An exception and its causes and contexts, outermost first."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def assert_flow(api: Api) -> None:
    """login -> me -> refresh -> me -> logout, each answered as documented."""
    tokens = api.tokens()
    assert api.me(tokens["accessToken"]).json()["email"] == EMAIL
    rotated = api.refresh(tokens["refreshToken"])
    assert rotated.status_code == 200, rotated.text
    access = rotated.json()["accessToken"]
    assert api.me(access).status_code == 200
    assert api.logout(access).status_code == 204
    assert api.me(access).status_code == 401


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m nsdk_server`` with ``args`` that make it exit at once."""
    return subprocess.run(
        [sys.executable, "-m", "nsdk_server", "--port", "0", "--scrypt-n", "4", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[Any]:
    """Start ``python -m nsdk_server --port 0 ARGS...``; return (URL line, stderr lines, proc)."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[str, list[str], subprocess.Popen[str]]:
        err = (tmp_path / f"stderr-{len(procs)}.txt").open("w+", encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "nsdk_server", "--port", "0", "--scrypt-n", "4", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        err.seek(0)
        # Everything meant for clients is on stderr before the URL is on stdout.
        return url, err.read().splitlines(), proc

    yield start
    for proc in procs:
        proc.terminate()
        assert proc.wait(10) in (0, -signal.SIGTERM)
        assert proc.stdout is not None
        assert proc.stdout.read() == "", "nothing but the URL goes to stdout"
        proc.stdout.close()


def noted(lines: list[str], label: str) -> Path:
    """The path on the stderr line ``nsdk_server: <label>: PATH``."""
    prefix = f"nsdk_server: {label}: "
    found = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
    assert len(found) == 1, lines
    return Path(found[0])


def test_flow_over_https_with_the_ca(tls_server: ServerHandle) -> None:
    """Trusting the throwaway CA, login -> me -> refresh -> logout runs over a real TLS stream."""
    assert tls_server.base_url.startswith("https://127.0.0.1:")
    assert tls_server.ca_path is not None and tls_server.client_cert_path is None
    with https_client(tls_server, tls_server.ssl_context()) as client:
        response = client.get("/api/auth/me")
        assert response.status_code == 401
        assert tls_version(response) in {"TLSv1.2", "TLSv1.3"}
        assert_flow(Api(client))


def test_certificate_names_localhost(tls_server: ServerHandle) -> None:
    """The server certificate is valid for localhost too, not only 127.0.0.1."""
    url = tls_server.base_url.replace("127.0.0.1", "localhost")
    response = httpx.get(f"{url}/api/auth/me", verify=tls_server.ssl_context(), trust_env=False)
    assert response.status_code == 401


def test_client_without_the_ca_fails_verification(tls_server: ServerHandle) -> None:
    """A client trusting only the system CAs fails certificate verification and sends nothing."""
    tls_server.reset()
    with (
        https_client(tls_server, True) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught,
    ):
        client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert any(isinstance(exc, ssl.SSLCertVerificationError) for exc in chain(caught.value))
    assert tls_server.stats()["requests"] == {"login": 0, "refresh": 0, "me": 0, "logout": 0}


def test_plain_http_to_the_https_port_gets_no_answer(tls_server: ServerHandle) -> None:
    """Clear-text HTTP to the TLS port is never answered (the handshake fails, the peer closes)."""
    tls_server.reset()
    url = tls_server.base_url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/api/auth/me", trust_env=False, timeout=10.0)
    assert tls_server.stats()["requests"]["me"] == 0


def test_mtls_refuses_a_client_without_certificate(mtls_server: ServerHandle) -> None:
    """With a client certificate required, a client that presents none gets no answer at all."""
    mtls_server.reset()
    context = mtls_server.ssl_context(client_cert=False)
    # TLS 1.3 finishes the client's side of the handshake before the server checks the
    # certificate, so the refusal surfaces on the first request: the server closes without a word.
    with https_client(mtls_server, context) as client, pytest.raises(httpx.TransportError):
        client.get("/api/auth/me")
    assert mtls_server.stats()["requests"]["me"] == 0


def test_mtls_refuses_a_certificate_from_another_ca(mtls_server: ServerHandle) -> None:
    """A client certificate issued by an unrelated CA is refused like none at all."""
    context = mtls_server.ssl_context(client_cert=False)
    stranger = trustme.CA().issue_cert("stranger.localhost")
    stranger.configure_cert(context)
    with https_client(mtls_server, context) as client, pytest.raises(httpx.TransportError):
        client.get("/api/auth/me")


def test_mtls_with_the_client_certificate(mtls_server: ServerHandle) -> None:
    """Presenting the issued client certificate, the whole flow works over mutual TLS."""
    assert mtls_server.base_url.startswith("https://")
    path = mtls_server.client_cert_path
    assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes() and b"CERTIFICATE" in path.read_bytes()
    with https_client(mtls_server, mtls_server.ssl_context()) as client:
        assert_flow(Api(client))


@pytest.mark.parametrize("which", ["tls", "mtls"])
def test_control_api_over_tls(which: str, request: pytest.FixtureRequest) -> None:
    """handle.faults and handle.stats() work over HTTPS, with the client certificate under mTLS."""
    handle: ServerHandle = request.getfixturevalue(f"{which}_server")
    handle.reset()
    handle.faults.add("me", status=503)
    assert [entry["op"] for entry in handle.faults.pending()] == ["me"]
    with https_client(handle, handle.ssl_context()) as client:
        assert client.get("/api/auth/me").status_code == 503
        assert client.get("/api/auth/me").status_code == 401
    stats = handle.stats()
    assert stats["requests"]["me"] == 2 and stats["faults_applied"] == 1


def test_drop_fault_over_tls(tls_server: ServerHandle) -> None:
    """A drop fault resets the TLS connection: the client sees a transport error, not a 500."""
    tls_server.reset()
    tls_server.faults.add("me", drop="before")
    with https_client(tls_server, tls_server.ssl_context()) as client:
        with pytest.raises(httpx.TransportError):
            client.get("/api/auth/me")
        assert client.get("/api/auth/me").status_code == 401


def test_in_thread_runner_over_mtls() -> None:
    """run_server_in_thread(client_cert=True) serves HTTPS with mTLS; its files go on exit."""
    with run_server_in_thread(client_cert=True, **OPTIONS) as handle:
        assert handle.base_url.startswith("https://127.0.0.1:")
        assert handle.ca_path is not None and handle.client_cert_path is not None
        with https_client(handle, handle.ssl_context()) as client:
            assert Api(client).login().status_code == 200
        assert handle.stats()["requests"]["login"] == 1
        ca_path = handle.ca_path
    assert not ca_path.exists()


def test_plain_handle_has_no_ssl_context(nsdk_server: ServerHandle) -> None:
    """A plain-HTTP handle has no CA: asking it for an SSL context says so."""
    assert nsdk_server.ca_path is None and nsdk_server.client_cert_path is None
    with pytest.raises(ValueError, match="tls=True"):
        nsdk_server.ssl_context()


def test_server_args_for_tls() -> None:
    """tls and client_cert map to --tls and --require-client-cert."""
    assert server_args(tls=True, client_cert=True) == ["--tls", "--require-client-cert"]
    assert server_args(tls=False, client_cert=False) == []


def test_cli_prints_https_url_and_the_ca_path(cli_server: Any, tmp_path: Path) -> None:
    """--tls: stdout's first line is the https URL, stderr names the CA bundle, which verifies."""
    ca_out = tmp_path / "out" / "ca.pem"
    url, err, _ = cli_server("--tls", "--tls-ca-out", str(ca_out))
    assert url.startswith("https://127.0.0.1:")
    assert noted(err, "TLS CA bundle") == ca_out
    assert not any("client certificate" in line for line in err)
    context = ssl.create_default_context(cafile=str(ca_out))
    assert httpx.get(f"{url}/api/auth/me", verify=context, trust_env=False).status_code == 401


def test_cli_default_ca_path_is_a_private_temp_dir(cli_server: Any) -> None:
    """Without --tls-ca-out the CA bundle goes to a new directory only this user can read."""
    url, err, _ = cli_server("--tls")
    ca_path = noted(err, "TLS CA bundle")
    try:
        assert stat.S_IMODE(ca_path.parent.stat().st_mode) == 0o700
        # Only the CA certificate is left on disk: the server key was deleted once loaded.
        assert [p.name for p in ca_path.parent.iterdir()] == ["ca.pem"]
        context = ssl.create_default_context(cafile=str(ca_path))
        assert httpx.get(f"{url}/api/auth/me", verify=context, trust_env=False).status_code == 401
    finally:
        ca_path.unlink()
        ca_path.parent.rmdir()


def test_cli_require_client_cert(cli_server: Any, tmp_path: Path) -> None:
    """--require-client-cert writes a client certificate (0600) that the server then accepts."""
    ca_out, cert_out = tmp_path / "ca.pem", tmp_path / "me.pem"
    url, err, _ = cli_server(
        "--tls",
        "--tls-ca-out",
        str(ca_out),
        "--require-client-cert",
        "--tls-client-cert-out",
        str(cert_out),
    )
    assert noted(err, "TLS client certificate and key") == cert_out
    assert noted(err, "TLS client certificate required, from CA") == ca_out
    assert stat.S_IMODE(cert_out.stat().st_mode) == 0o600
    context = ssl.create_default_context(cafile=str(ca_out))
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/api/auth/me", verify=context, trust_env=False)
    context.load_cert_chain(str(cert_out))
    assert httpx.get(f"{url}/api/auth/me", verify=context, trust_env=False).status_code == 401


def test_cli_given_certificate_and_client_ca(cli_server: Any, tmp_path: Path) -> None:
    """--tls-cert/--tls-key serve a given certificate; --tls-client-ca requires clients of a CA."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server_cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    clients_ca = trustme.CA()
    clients_ca.cert_pem.write_to_path(str(tmp_path / "clients-ca.pem"))
    url, err, _ = cli_server(
        "--tls-cert",
        str(tmp_path / "server.pem"),
        "--tls-key",
        str(tmp_path / "server.key"),
        "--tls-client-ca",
        str(tmp_path / "clients-ca.pem"),
    )
    assert url.startswith("https://")
    assert not any("CA bundle" in line for line in err)  # the CA is the user's own
    context = ssl.create_default_context()
    ca.configure_trust(context)
    clients_ca.issue_cert("client.localhost").configure_cert(context)
    assert httpx.get(f"{url}/api/auth/me", verify=context, trust_env=False).status_code == 401
    assert (tmp_path / "server.key").exists()  # a given key is never deleted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--require-client-cert"], "--require-client-cert needs HTTPS: add --tls"),
        (["--tls-ca-out", "x.pem"], "--tls-ca-out needs HTTPS"),
        (["--tls-cert", "a.pem"], "--tls-cert and --tls-key go together"),
        (["--tls", "--tls-cert", "a.pem", "--tls-key", "b.pem"], "pick one"),
        (["--tls", "--tls-client-cert-out", "c.pem"], "needs --require-client-cert"),
        (["--tls", "--tls-client-ca", "/nonexistent/ca.pem"], "no such file"),
        (["--tls-cert", "/nonexistent/a.pem", "--tls-key", "/nonexistent/b.pem"], "no such file"),
    ],
)
def test_cli_rejects_inconsistent_tls_options(args: list[str], message: str) -> None:
    """Inconsistent or missing TLS inputs: exit 2, one stderr line saying why, nothing on stdout."""
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_rejects_a_key_that_does_not_match(tmp_path: Path) -> None:
    """A certificate with another certificate's key fails before the URL, with exit 2."""
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(tmp_path / "a.pem"))
    ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(tmp_path / "b.key"))
    result = run_cli("--tls-cert", str(tmp_path / "a.pem"), "--tls-key", str(tmp_path / "b.key"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "nsdk_server: cannot serve HTTPS:" in result.stderr
