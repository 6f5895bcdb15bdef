"""Fault injection: each scripted mode reaches the client as a real HTTP client would see it."""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import pytest


def test_status_with_retry_after_verbatim(api, server) -> None:
    """A scripted 503 carries Retry-After verbatim and the error body; the next call is normal."""
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.faults.add("login", status=503, retry_after=date)
    response = api.login()
    api.assert_error(response, 503)
    assert response.headers["retry-after"] == date
    assert api.login().status_code == 200
    assert server.stats()["faults_applied"] == 1


def test_scripted_429_with_seconds(api, server) -> None:
    """A scripted 429 answers with the given delta-seconds."""
    server.faults.add("me", status=429, retry_after=2)
    response = api.me("whatever")
    api.assert_error(response, 429)
    assert response.headers["retry-after"] == "2"


def test_scripted_204_without_performing(api, server) -> None:
    """A scripted 204 on logout answers like a logout but revokes nothing."""
    tokens = api.tokens()
    server.faults.add("logout", status=204)
    response = api.logout(tokens["accessToken"])
    assert response.status_code == 204 and response.content == b""
    assert api.me(tokens["accessToken"]).status_code == 200


def test_times_repeats_then_passes_through(api, server) -> None:
    """An entry with times=N applies to the next N requests, then requests pass through."""
    server.faults.add("login", status=500, times=2)
    assert [api.login().status_code for _ in range(3)] == [500, 500, 200]


def test_faults_queue_in_order_per_operation(api, server) -> None:
    """Entries of one operation apply in order; other operations are unaffected."""
    server.faults.add("login", status=502)
    server.faults.add("login", status=504)
    tokens = None
    assert api.client.get("/api/auth/me").status_code == 401
    assert api.login().status_code == 502
    assert api.login().status_code == 504
    tokens = api.tokens()
    assert tokens["userId"] == "1005"


def test_faults_can_be_listed_and_cleared(server) -> None:
    """Queued faults are listed with remaining counts and cleared by DELETE."""
    queued = server.faults.add("refresh", status=500, times=3)
    assert queued[0]["op"] == "refresh" and queued[0]["remaining"] == 3
    assert server.faults.clear() == 1
    assert server.faults.pending() == []


def _raises_value_error(parse) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse()


@pytest.mark.parametrize(
    ("mode", "content_type", "check"),
    [
        ("malformed", "application/json", lambda r: _raises_value_error(r.json)),
        ("empty", "application/json", lambda r: r.content == b"" or pytest.fail("not empty")),
        ("html", "text/html", lambda r: r.text.startswith("<!DOCTYPE html>") or pytest.fail()),
        ("wrong_shape", "application/json", lambda r: r.json() == {"foo": 1} or pytest.fail()),
    ],
)
def test_body_modes(api, server, mode: str, content_type: str, check) -> None:
    """Body modes send the announced kind of broken body with the scripted status."""
    server.faults.add("login", status=200 if mode != "html" else 502, body=mode)
    response = api.login()
    assert response.status_code == (200 if mode != "html" else 502)
    assert response.headers["content-type"].startswith(content_type)
    assert response.headers["x-request-id"].startswith("req_")
    check(response)


def test_huge_body(api, server) -> None:
    """The huge mode sends about 5 MiB of valid JSON."""
    server.faults.add("me", status=500, body="huge")
    response = api.me("x")
    assert response.status_code == 500
    assert len(response.content) > 5 * 1024 * 1024
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_truncated_body(api, server) -> None:
    """Truncated announces more bytes than it sends and closes: the client sees a protocol error."""
    server.faults.add("login", status=200, body="truncated")
    with pytest.raises(httpx.RemoteProtocolError):
        api.login()
    assert api.login().status_code == 200


def test_truncated_body_waits_for_a_late_request_body(server) -> None:
    """A request body that arrives after the cut-short answer began still ends in an orderly close.

    The server reads the body before it closes; closing with the body unread would make the
    kernel answer it with a reset, and a client would see "connection reset", not a short body.
    """
    server.faults.add("login", status=200, body="truncated")
    body = json.dumps({"email": "user@example.com", "password": "demo-password"}).encode()
    host, port = httpx.URL(server.base_url).host, httpx.URL(server.base_url).port
    head = (
        f"POST /api/auth/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=10.0) as sock:
        sock.sendall(head)
        received = b""
        while b"\r\n\r\n" not in received:  # the answer starts before the body is sent
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        sock.sendall(body)
        while chunk := sock.recv(65536):  # ConnectionResetError here is the failure
            received += chunk
    headers, _, sent = received.partition(b"\r\n\r\n")
    declared = int(re.search(rb"(?im)^content-length: *(\d+)", headers).group(1))
    assert headers.startswith(b"HTTP/1.1 200 ") and 0 < len(sent) < declared


def test_drop_before_does_not_perform(api, server) -> None:
    """drop=before resets the connection and does not rotate the refresh token."""
    tokens = api.tokens()
    server.faults.add("refresh", drop="before")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.refresh(tokens["refreshToken"])
    assert api.refresh(tokens["refreshToken"]).status_code == 200
    stats = server.stats()
    assert stats["refresh_requests"] == 2 and stats["refresh_ok"] == 1
    assert stats["server_errors"] == 0


def test_drop_after_performs_then_drops(api, server) -> None:
    """drop=after rotates the refresh token, then resets the connection: a resend is replay."""
    tokens = api.tokens()
    server.faults.add("refresh", drop="after")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.refresh(tokens["refreshToken"])
    api.assert_error(api.refresh(tokens["refreshToken"]), 401)
    stats = server.stats()
    assert (stats["refresh_ok"], stats["replays"], stats["families_revoked"]) == (1, 1, 1)


def test_perform_then_answer_with_status(api, server) -> None:
    """perform=true runs the operation, then answers with the scripted status instead."""
    tokens = api.tokens()
    server.faults.add("logout", status=500, perform=True)
    api.assert_error(api.logout(tokens["accessToken"]), 500)
    api.assert_error(api.me(tokens["accessToken"]), 401)


def test_delay_then_normal_answer(api, server) -> None:
    """A delay-only fault slows the answer down and then answers normally."""
    server.faults.add("login", delay=0.3)
    start = time.monotonic()
    assert api.login().status_code == 200
    assert time.monotonic() - start >= 0.3


def test_delay_triggers_client_timeout(api, server) -> None:
    """A delay longer than the client's timeout surfaces as a read timeout."""
    server.faults.add("me", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        api.client.get("/api/auth/me", timeout=0.2)


@pytest.mark.parametrize(
    "entry",
    [
        {"op": "nope", "status": 500},
        {"op": "login", "status": 99},
        {"op": "login", "status": "500"},
        {"op": "login", "body": "weird"},
        {"op": "login", "drop": "middle"},
        {"op": "login", "drop": "before", "status": 500},
        {"op": "login", "times": 0},
        {"op": "login", "retry_after": 5},
        {"op": "login", "perform": True},
        {"op": "login", "unknown": 1},
        {"op": "logout", "status": 204, "body": "html"},
        "not-an-object",
    ],
)
def test_control_api_rejects_bad_entries(client, entry) -> None:
    """Invalid fault entries are refused with 400 and nothing is queued."""
    response = client.post("/_nsdk/faults", content=json.dumps(entry))
    assert response.status_code == 400
    assert client.get("/_nsdk/faults").json()["faults"] == []


def test_control_api_absent_without_faults_flag(nsdk_server_factory, api_for) -> None:
    """Without --faults, /_nsdk does not exist (404 with the error body)."""
    api = api_for(nsdk_server_factory(faults=False))
    api.assert_error(api.client.post("/_nsdk/faults", json={"op": "login"}), 404)


def test_control_api_refuses_non_loopback_clients() -> None:
    """The control API answers 403 to a client that is not on loopback."""
    import asyncio

    from nsdk_server.app import create_app
    from nsdk_server.config import ServerConfig

    app = create_app(ServerConfig(secret=b"k" * 32, faults=True, scrypt_n=2)).asgi

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.get("/_nsdk/stats")

    response = asyncio.run(call())
    assert response.status_code == 403
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_stats_reset(api, server) -> None:
    """Stats count requests per operation and reset to zero."""
    api.login()
    api.me(None)
    stats = server.stats()
    assert stats["requests"] == {"login": 1, "refresh": 0, "me": 1, "logout": 0}
    assert stats["login_ok"] == 1
    server.reset_stats()
    assert server.stats()["requests"]["login"] == 0


def test_drops_leave_no_server_error_logs(api, server) -> None:
    """Drops and truncations close connections without uvicorn complaining about the app."""
    tokens = api.tokens()
    server.faults.add_entries(
        [
            {"op": "me", "drop": "before"},
            {"op": "me", "drop": "after"},
            {"op": "me", "body": "truncated", "status": 401},
        ]
    )
    for _ in range(3):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            api.me(tokens["accessToken"])
    assert api.me(tokens["accessToken"]).status_code == 200
    time.sleep(0.1)
    logs = server.logs()
    assert "returned without" not in logs
    assert "Exception in ASGI application" not in logs
