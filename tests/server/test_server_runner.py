"""The runners, the CLI options and the pytest plugin that the SDK's tests rely on."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import jwt
import pytest
from nsdk_server.config import parse_rate, parse_user
from nsdk_server.testing import run_server, run_server_in_thread, server_args


def test_cli_prints_url_first_and_binds_port_zero() -> None:
    """`python -m nsdk_server --port 0` prints its real URL as the first stdout line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsdk_server", "--port", "0", "--scrypt-n", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert httpx.get(url + "/api/auth/me", trust_env=False).status_code == 401
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
        assert proc.wait(10) in (0, -signal.SIGTERM)


def test_cli_rejects_bad_options() -> None:
    """Invalid option values exit with status 2 and a message, before binding anything."""
    result = subprocess.run(
        [sys.executable, "-m", "nsdk_server", "--port", "0", "--global-rate", "ten"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "N/SECONDS" in result.stderr
    assert result.stdout == ""


def test_seeded_users_and_secret_from_env(tmp_path, monkeypatch) -> None:
    """--users FILE, --user and NSDK_SERVER_SECRET configure accounts and the signing key."""
    users = tmp_path / "users.json"
    users.write_text(
        json.dumps([{"email": "f@example.com", "password": "pf", "userId": "7", "tenantId": "9"}])
    )
    monkeypatch.setenv("NSDK_SERVER_SECRET", "env-secret-of-at-least-32-bytes!")
    with (
        run_server(
            users=str(users), user=["u@example.com:pu:8:9"], no_default_user=True, scrypt_n=4
        ) as handle,
        httpx.Client(base_url=handle.base_url, trust_env=False) as c,
    ):

        def login(email: str, password: str) -> httpx.Response:
            return c.post("/api/auth/login", json={"email": email, "password": password})

        token = login("f@example.com", "pf").json()["accessToken"]
        assert login("u@example.com", "pu").json()["userId"] == "8"
        assert login("user@example.com", "demo-password").status_code == 401
    claims = jwt.decode(
        token,
        "env-secret-of-at-least-32-bytes!",
        algorithms=["HS256"],
        options={"verify_exp": False},
    )
    assert (claims["sub"], claims["tid"]) == ("7", "9")


def test_in_thread_runner() -> None:
    """run_server_in_thread serves the same app inside this process, faults included."""
    with run_server_in_thread(faults=True, scrypt_n=4) as handle:
        handle.faults.add("login", status=503)
        with httpx.Client(base_url=handle.base_url, trust_env=False) as c:
            body = {"email": "user@example.com", "password": "demo-password"}
            assert c.post("/api/auth/login", json=body).status_code == 503
            assert c.post("/api/auth/login", json=body).status_code == 200
        assert handle.stats()["requests"]["login"] == 2


def test_session_fixture_is_shared(nsdk_server, server) -> None:
    """The `nsdk_server` fixture is one faults-enabled server for the session."""
    assert nsdk_server is server
    assert nsdk_server.base_url.startswith("http://127.0.0.1:")
    assert nsdk_server.faults.pending() == []


def test_factory_fixture_passes_options(nsdk_server_factory) -> None:
    """`nsdk_server_factory(**options)` starts private servers with those options."""
    a = nsdk_server_factory(access_ttl=7)
    b = nsdk_server_factory()
    assert a.base_url != b.base_url
    token = httpx.post(
        a.base_url + "/api/auth/login",
        trust_env=False,
        json={"email": "user@example.com", "password": "demo-password"},
    )
    claims = jwt.decode(token.json()["accessToken"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] in (7, 8)


def test_server_args_translation() -> None:
    """Keyword options map to CLI flags; rates accept strings, tuples and None."""
    args = server_args(
        access_ttl=1, faults=True, global_rate=(5, 60), login_account_rate=None, user="a@b.c:pw"
    )
    assert args == [
        "--access-ttl",
        "1",
        "--faults",
        "--global-rate",
        "5/60",
        "--login-account-rate",
        "off",
        "--user",
        "a@b.c:pw",
    ]
    with pytest.raises(TypeError):
        server_args(acess_ttl=1)


@pytest.mark.parametrize(("text", "expected"), [("100/60", (100, 60.0)), ("3/0.5", (3, 0.5))])
def test_parse_rate(text: str, expected: tuple[int, float]) -> None:
    """Rates parse as N/SECONDS."""
    spec = parse_rate(text)
    assert spec is not None and (spec.limit, spec.window) == expected


@pytest.mark.parametrize("text", ["off", "0", "none"])
def test_parse_rate_off(text: str) -> None:
    """off, 0 and none disable a limit."""
    assert parse_rate(text) is None


@pytest.mark.parametrize("text", ["10", "x/60", "0/60", "5/0", "5/-1"])
def test_parse_rate_rejects(text: str) -> None:
    """Malformed rates are refused."""
    with pytest.raises(ValueError):
        parse_rate(text)


def test_parse_user_defaults() -> None:
    """--user fills in ids when only email and password are given; the repr hides the password."""
    seed = parse_user("a@b.c:secret-pw", 3)
    assert (seed.user_id, seed.tenant_id) == ("2003", "2001")
    assert "secret-pw" not in repr(seed)
