"""`--cors-origin`: exact origins may call the API from a browser; nothing else gets CORS headers.

Raw httpx requests that carry the headers a browser sends (``Origin``, the preflight's
``Access-Control-Request-*``); tests/browser checks the same against a real Chromium.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from nsdk_server.config import parse_cors_origin
from nsdk_server.testing import run_server_in_thread

SITE = "http://127.0.0.1:8001"
OTHER_SITE = "http://localhost:8001"  # the same port on another host name: another origin
EMAIL = "user@example.com"
PASSWORD = "demo-password"  # the documented demo user


@pytest.fixture(scope="module")
def cors_server() -> Iterator[str]:
    """A server that lets pages from SITE only call it."""
    with run_server_in_thread(cors_origin=[SITE], scrypt_n=4) as server:
        yield server.base_url


def preflight(base_url: str, origin: str, method: str, headers: str) -> httpx.Response:
    """The OPTIONS request a browser sends before a cross-origin call with these headers."""
    return httpx.options(
        base_url + "/api/auth/me",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        trust_env=False,
    )


def test_preflight_from_the_allowed_origin_allows_authorization(cors_server: str) -> None:
    """The preflight for `GET me` with a bearer header is allowed for exactly that origin."""
    response = preflight(cors_server, SITE, "GET", "authorization")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SITE
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST"}
    assert "access-control-allow-credentials" not in response.headers  # a bearer header needs none


def test_preflight_from_another_origin_is_refused(cors_server: str) -> None:
    """`localhost` is not `127.0.0.1`: its preflight gets no allow-origin, so the browser stops."""
    for origin in (OTHER_SITE, "http://127.0.0.1:8002", "https://example.org"):
        response = preflight(cors_server, origin, "GET", "authorization")
        assert response.status_code == 400, origin
        assert "access-control-allow-origin" not in response.headers, origin


def test_calls_from_the_allowed_origin_carry_the_cors_headers(cors_server: str) -> None:
    """login then me with an Origin header: 200 answers the page may read, request id exposed."""
    with httpx.Client(base_url=cors_server, trust_env=False, headers={"Origin": SITE}) as client:
        login = client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
        assert login.status_code == 200
        assert login.headers["access-control-allow-origin"] == SITE
        token = login.json()["accessToken"]
        me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json() == {"userId": "1005", "tenantId": "2001", "email": EMAIL}
        assert me.headers["access-control-allow-origin"] == SITE
        exposed = {
            h.strip().lower() for h in me.headers["access-control-expose-headers"].split(",")
        }
        assert exposed == {"x-request-id", "retry-after", "www-authenticate"}
        # Errors too: the page sees the 401 and its request id rather than "Failed to fetch".
        denied = client.get("/api/auth/me")
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == SITE
        assert denied.headers["x-request-id"].startswith("req_")


def test_without_the_option_no_cors_headers() -> None:
    """The default server sends no CORS header, not even to a would-be origin."""
    with run_server_in_thread(scrypt_n=4) as server:
        response = preflight(server.base_url, SITE, "GET", "authorization")
        assert "access-control-allow-origin" not in response.headers
        assert response.status_code == 405  # no OPTIONS route: the browser's preflight fails
        call = httpx.get(
            server.base_url + "/api/auth/me", headers={"Origin": SITE}, trust_env=False
        )
        assert call.status_code == 401
        assert not [name for name in call.headers if name.lower().startswith("access-control-")]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("https://docs.example.com", "https://docs.example.com"),
        ("http://[::1]:8001", "http://[::1]:8001"),
    ],
)
def test_origin_spellings_accepted(given: str, expected: str) -> None:
    """An origin spelled as a browser sends it is kept as it is."""
    assert parse_cors_origin(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("*", "wildcards are not allowed"),
        ("http://*.example.com", "wildcards are not allowed"),
        ("127.0.0.1:8001", "must be an origin like"),
        ("ftp://127.0.0.1", "must be an origin like"),
        ("http://127.0.0.1:8001/", "use 'http://127.0.0.1:8001'"),
        ("http://127.0.0.1:8001/docs", "use 'http://127.0.0.1:8001'"),
        ("http://LOCALHOST:8001", "use 'http://localhost:8001'"),
        ("http://localhost:80", "use 'http://localhost'"),
        ("https://example.com:443", "use 'https://example.com'"),
        ("http://localhost:99999", "invalid port"),
    ],
)
def test_origin_spellings_refused(given: str, message: str) -> None:
    """Anything a browser would never send as Origin is refused with the spelling to use."""
    with pytest.raises(ValueError, match="--cors-origin") as info:
        parse_cors_origin(given)
    assert message in str(info.value)


def test_cli_refuses_a_wildcard_origin() -> None:
    """`--cors-origin '*'` exits with status 2 and says why, before binding anything."""
    result = subprocess.run(
        [sys.executable, "-m", "nsdk_server", "--port", "0", "--cors-origin", "*"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "wildcards are not allowed" in result.stderr
    assert result.stdout == ""
