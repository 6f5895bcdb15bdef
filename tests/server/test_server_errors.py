"""Request ids on every answer, error bodies everywhere, a safe 500 path and clean logs."""

from __future__ import annotations

import time

import httpx
import pytest


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/auth/unknown"),
        ("GET", "/api/auth/login"),
        ("PUT", "/api/auth/me"),
        ("DELETE", "/api/auth/logout"),
        ("POST", "/api/auth/login?x=1"),
        ("GET", "/api/auth/me"),
    ],
)
def test_every_error_has_request_id_and_body(api, client, method: str, path: str) -> None:
    """404, 405, 400 and 401 answers all carry X-Request-ID and a matching error body."""
    response = client.request(method, path)
    assert response.status_code in (400, 401, 404, 405)
    api.assert_error(response, response.status_code)
    if response.status_code == 405:
        assert response.headers["allow"]


def test_success_has_request_id_and_ids_are_unique(api) -> None:
    """Successful answers carry a fresh request id each time, whatever the client sent."""
    seen = set()
    for _ in range(3):
        response = api.client.post(
            "/api/auth/login",
            json={"email": "user@example.com", "password": "demo-password"},
            headers={"X-Request-ID": "client-chosen"},
        )
        assert response.status_code == 200
        seen.add(response.headers["x-request-id"])
    assert len(seen) == 3
    assert all(rid.startswith("req_") for rid in seen)


@pytest.mark.parametrize("op", ["login", "refresh", "me", "logout"])
def test_unexpected_exception_is_a_clean_500(api, client, server, op: str) -> None:
    """An exception inside a request becomes a 500 error body, logged with its id, no traceback."""
    server.faults.add(op, exception=True)
    method = "GET" if op == "me" else "POST"
    response = client.request(method, f"/api/auth/{op}", json={})
    body = api.assert_error(response, 500)
    assert body["detail"] == "Internal server error"
    assert "Traceback" not in response.text and "Error" not in response.text
    assert server.stats()["server_errors"] == 1
    deadline = time.monotonic() + 2
    while body["request_id"] not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = server.logs()
    assert body["request_id"] in logs
    assert "FaultInjectedError" in logs


def test_exception_inside_endpoint_is_a_clean_500() -> None:
    """An exception raised by an endpoint (not the fault layer) still gives the error body."""
    import asyncio

    from nsdk_server.app import create_app
    from nsdk_server.config import ServerConfig

    server_app = create_app(ServerConfig(secret=b"k" * 32, scrypt_n=2))

    def broken(*args: object) -> None:
        raise RuntimeError("database on fire")

    server_app.store.access_allowed = broken  # type: ignore[method-assign]
    server_app.store.create_session = broken  # type: ignore[method-assign]

    async def call() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=server_app.asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            login = await c.post(
                "/api/auth/login", json={"email": "user@example.com", "password": "demo-password"}
            )
            me = await c.get("/api/auth/me", headers={"Authorization": "Bearer a.b.c"})
            return [login, me]

    login, me = asyncio.run(call())
    assert login.status_code == 500
    assert login.json() == {
        "detail": "Internal server error",
        "request_id": login.headers["x-request-id"],
    }
    assert "database on fire" not in login.text
    assert me.status_code == 401  # a malformed token never reaches the store


def test_logs_never_contain_secrets(api, server) -> None:
    """After logins, refreshes, replays, logouts and faults, no token or password is in the logs."""
    tokens = api.tokens()
    rotated = api.refresh(tokens["refreshToken"]).json()
    api.refresh(tokens["refreshToken"])  # replay: logged as a warning
    api.login(password="wrong-password-in-log?")
    server.faults.add("me", exception=True)
    api.me(rotated["accessToken"])
    api.logout(rotated["accessToken"])
    time.sleep(0.2)
    logs = server.logs()
    assert "replay" in logs
    for secret in (
        "demo-password",
        "wrong-password-in-log?",
        tokens["refreshToken"],
        rotated["refreshToken"],
        tokens["accessToken"],
        rotated["accessToken"],
    ):
        assert secret not in logs
    assert "returned without" not in logs  # drops and truncations close connections cleanly
