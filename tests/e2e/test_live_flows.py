"""The guide's flows through nsdk against the reference server over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import nsdk
import pytest

EMAIL, PASSWORD = "user@example.com", "demo-password"


def _wait_past_expiry(client: nsdk.Client | nsdk.AsyncClient, store: nsdk.MemoryTokenStore) -> None:
    """Sleep until the current access token's exp has passed (real time: the server checks it)."""
    tokens = store.tokens
    assert tokens is not None and tokens.expires_at is not None
    time.sleep(max(0.0, tokens.expires_at - time.time()) + 0.05)


def test_guide_flow_sync(nsdk_server_factory: Callable[..., Any]) -> None:
    """Login, me, expiry -> refresh -> resend, logout, then fail closed, with real JWTs."""
    server = nsdk_server_factory(access_ttl=1)
    store = nsdk.MemoryTokenStore()
    rotated: list[nsdk.Tokens] = []
    with nsdk.Client(
        server.base_url, token_store=store, on_tokens_refreshed=rotated.append, refresh_leeway=0
    ) as client:
        session = client.login(email=EMAIL, password=PASSWORD, expected_tenant_id="2001")
        assert (session.user_id, session.tenant_id) == ("1005", "2001")
        assert client.me().email == EMAIL
        first = store.tokens
        _wait_past_expiry(client, store)
        assert client.me().tenant_id == "2001"  # 401 -> refresh -> resend
        assert len(rotated) == 1 and store.tokens != first
        assert client.logout() is True
        assert client.state is nsdk.SessionState.SIGNED_OUT and store.tokens is None
        before = server.stats()["requests"]
        with pytest.raises(nsdk.NotAuthenticatedError):
            client.me()
        assert server.stats()["requests"] == before  # nothing was sent
    stats = server.stats()
    assert stats["refresh_ok"] == 1 and stats["families_revoked"] == 0
    # The revoked tokens really are dead on the server.
    assert first is not None
    r = httpx.post(
        f"{server.base_url}/api/auth/refresh", json={"refreshToken": rotated[0].refresh_token}
    )
    assert r.status_code == 401


async def test_guide_flow_async(nsdk_server_factory: Callable[..., Any]) -> None:
    """The same flow with AsyncClient."""
    server = nsdk_server_factory(access_ttl=1)
    store = nsdk.MemoryTokenStore()
    async with nsdk.AsyncClient(server.base_url, token_store=store, refresh_leeway=0) as client:
        await client.login(email=EMAIL, password=PASSWORD)
        assert (await client.me()).user_id == "1005"
        await asyncio.to_thread(_wait_past_expiry, client, store)
        assert (await client.me()).user_id == "1005"
        assert await client.logout() is True
        with pytest.raises(nsdk.NotAuthenticatedError):
            await client.me()
    stats = server.stats()
    assert stats["requests"]["refresh"] == 1 and stats["families_revoked"] == 0


def test_replayed_family_fails_closed(nsdk_server_factory: Callable[..., Any]) -> None:
    """When the server revokes the family (someone replayed), the client fails closed."""
    server = nsdk_server_factory(access_ttl=1)
    store = nsdk.MemoryTokenStore()
    expired: list[nsdk.SessionExpiredError] = []
    with nsdk.Client(
        server.base_url, token_store=store, on_session_expired=expired.append, refresh_leeway=0
    ) as client:
        client.login(email=EMAIL, password=PASSWORD)
        stolen = store.tokens
        assert stolen is not None
        # An attacker uses the refresh token first; the client's own refresh is then a replay.
        r = httpx.post(
            f"{server.base_url}/api/auth/refresh", json={"refreshToken": stolen.refresh_token}
        )
        assert r.status_code == 200
        _wait_past_expiry(client, store)
        with pytest.raises(nsdk.SessionExpiredError):
            client.me()
        assert len(expired) == 1 and store.tokens is None
        assert client.state is nsdk.SessionState.EXPIRED
        with pytest.raises(nsdk.NotAuthenticatedError):
            client.me()
    assert server.stats()["families_revoked"] == 1


def test_wrong_password_and_bad_payload(nsdk_server_factory: Callable[..., Any]) -> None:
    """Wrong credentials raise AuthenticationError; an empty email raises BadRequestError."""
    server = nsdk_server_factory()
    with nsdk.Client(server.base_url) as client:
        with pytest.raises(nsdk.AuthenticationError) as info:
            client.login(email=EMAIL, password="wrong")
        assert info.value.request_id and info.value.request_id.startswith("req_")
        with pytest.raises(nsdk.BadRequestError):
            client.login(email="", password="x")
        assert client.state is nsdk.SessionState.SIGNED_OUT
    assert server.stats()["requests"]["login"] == 2  # neither was retried


def test_resume_from_store(nsdk_server_factory: Callable[..., Any]) -> None:
    """A second client given the first one's store resumes the session without login."""
    server = nsdk_server_factory()
    store = nsdk.MemoryTokenStore()
    with nsdk.Client(server.base_url, token_store=store) as first:
        first.login(email=EMAIL, password=PASSWORD)
    with nsdk.Client(server.base_url, token_store=store) as second:
        assert second.state is nsdk.SessionState.ACTIVE
        assert second.me().user_id == "1005"


def test_32_threads_cross_expiries(nsdk_server_factory: Callable[..., Any]) -> None:
    """32 threads hitting an expired token, three expiries in a row: one refresh each, no replay."""
    server = nsdk_server_factory(access_ttl=1)
    store = nsdk.MemoryTokenStore()
    with nsdk.Client(server.base_url, token_store=store, refresh_leeway=0) as client:
        client.login(email=EMAIL, password=PASSWORD)
        barrier = threading.Barrier(32)

        def call(_: int) -> str:
            barrier.wait()
            return client.me().user_id

        with ThreadPoolExecutor(32) as pool:
            for _ in range(3):
                _wait_past_expiry(client, store)
                assert list(pool.map(call, range(32))) == ["1005"] * 32
    stats = server.stats()
    assert stats["requests"]["refresh"] == 3
    assert stats["replays"] == 0 and stats["families_revoked"] == 0


async def test_100_tasks_cross_expiries(nsdk_server_factory: Callable[..., Any]) -> None:
    """100 tasks hitting an expired token, three expiries: one refresh each, zero failures."""
    server = nsdk_server_factory(access_ttl=1)
    store = nsdk.MemoryTokenStore()
    async with nsdk.AsyncClient(server.base_url, token_store=store, refresh_leeway=0) as client:
        await client.login(email=EMAIL, password=PASSWORD)
        for _ in range(3):
            await asyncio.to_thread(_wait_past_expiry, client, store)
            results = await asyncio.gather(*(client.me() for _ in range(100)))
            assert {m.user_id for m in results} == {"1005"}
    stats = server.stats()
    assert stats["requests"]["refresh"] == 3
    assert stats["replays"] == 0 and stats["families_revoked"] == 0


async def test_proactive_refresh_avoids_401(nsdk_server_factory: Callable[..., Any]) -> None:
    """With the default leeway, continuous calls across expiries never see a 401."""
    server = nsdk_server_factory(access_ttl=2)
    async with nsdk.AsyncClient(server.base_url) as client:
        await client.login(email=EMAIL, password=PASSWORD)
        server.reset_stats()
        deadline = time.monotonic() + 4.5
        calls = 0
        while time.monotonic() < deadline:
            await asyncio.gather(*(client.me() for _ in range(10)))
            calls += 10
            await asyncio.sleep(0.1)
    stats = server.stats()
    assert stats["requests"]["me"] == calls  # no resend: no 401 was ever answered
    assert stats["refresh_ok"] >= 2 and stats["families_revoked"] == 0
