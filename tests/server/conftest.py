"""Fixtures for the reference-server tests: raw httpx clients over loopback, never the SDK.

The servers come from the `nsdk_server` pytest plugin (`nsdk_server`, `nsdk_server_clean`,
`nsdk_server_factory`), which `pip install ./server` registers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

EMAIL = "user@example.com"
PASSWORD = "demo-password"  # the documented demo user
REQUEST_ID = re.compile(r"^req_[0-9a-f]{8,}$")


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert `response` is the documented error answer with this status; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "request_id"}
    assert isinstance(body["detail"], str) and body["detail"]
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


@dataclass
class Api:
    """Thin helpers around an httpx client for the four operations."""

    client: httpx.Client

    assert_error = staticmethod(assert_error)

    def login(self, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
        return self.client.post("/api/auth/login", json={"email": email, "password": password})

    def tokens(self, email: str = EMAIL, password: str = PASSWORD) -> dict[str, str]:
        response = self.login(email, password)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.client.post("/api/auth/refresh", json={"refreshToken": refresh_token})

    def me(self, access_token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}"} if access_token is not None else {}
        return self.client.get("/api/auth/me", headers=headers)

    def logout(self, access_token: str) -> httpx.Response:
        return self.client.post(
            "/api/auth/logout", headers={"Authorization": f"Bearer {access_token}"}
        )


def make_client(base_url: str) -> httpx.Client:
    """An httpx client for a loopback server (no proxies from the environment)."""
    return httpx.Client(base_url=base_url, trust_env=False, timeout=10.0)


@pytest.fixture
def server(nsdk_server_clean: Any) -> Any:
    """The shared session server, with faults cleared and counters reset."""
    return nsdk_server_clean


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    """An httpx client for the shared server."""
    with make_client(server.base_url) as c:
        yield c


@pytest.fixture
def api(client: httpx.Client) -> Api:
    """Operation helpers for the shared server."""
    return Api(client)


@pytest.fixture
def api_for() -> Iterator[Callable[[Any], Api]]:
    """A factory of `Api` helpers for other servers (e.g. from `nsdk_server_factory`)."""
    clients: list[httpx.Client] = []

    def make(handle: Any) -> Api:
        clients.append(make_client(handle.base_url))
        return Api(clients[-1])

    yield make
    for c in clients:
        c.close()
