"""Load and races: 1,000 concurrent requests, and concurrent use of one refresh token."""

from __future__ import annotations

import asyncio
import time

import httpx


async def _gather(base_url: str, count: int, pools: int, make_request) -> list[object]:
    """Run `count` requests at once, spread over `pools` clients with one connection each.

    Several small httpx pools, because one httpx pool slows down quadratically with the
    number of queued requests (a client-side cost that would hide the server's speed).
    """
    per_pool = count // pools
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    clients = [
        httpx.AsyncClient(base_url=base_url, limits=limits, trust_env=False, timeout=60.0)
        for _ in range(pools)
    ]
    try:
        return await asyncio.gather(
            *(make_request(c) for c in clients for _ in range(per_pool)), return_exceptions=True
        )
    finally:
        for c in clients:
            await c.aclose()


def test_thousand_concurrent_me_requests(api, server) -> None:
    """1,000 concurrent me requests, each on its own connection, all answer 200."""
    token = api.tokens()["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}

    async def me(client: httpx.AsyncClient) -> int:
        return (await client.get("/api/auth/me", headers=headers)).status_code

    start = time.monotonic()
    results = asyncio.run(_gather(server.base_url, 1000, 50, me))
    elapsed = time.monotonic() - start
    failures = [r for r in results if r != 200]
    assert not failures, failures[:5]
    assert server.stats()["requests"]["me"] == 1000
    assert elapsed < 60  # generous: a loaded 2-core CI machine; typically 2-8 s


def test_concurrent_refresh_with_one_token(api, server) -> None:
    """Of 20 concurrent refreshes with one token exactly one rotates; the rest are 401 (replay)."""
    token = api.tokens()["refreshToken"]

    async def refresh(client: httpx.AsyncClient) -> int:
        response = await client.post("/api/auth/refresh", json={"refreshToken": token})
        return response.status_code

    results = asyncio.run(_gather(server.base_url, 20, 1, refresh))
    assert sorted(results) == [200] + [401] * 19
    stats = server.stats()
    assert stats["refresh_ok"] == 1
    assert stats["replays"] >= 1 and stats["families_revoked"] == 1


def test_two_concurrent_refreshes(api, server) -> None:
    """Two refreshes racing with the same token: exactly one 200, repeated over several logins."""
    for _ in range(5):
        token = api.tokens()["refreshToken"]

        async def refresh(client: httpx.AsyncClient, token: str = token) -> int:
            response = await client.post("/api/auth/refresh", json={"refreshToken": token})
            return response.status_code

        assert sorted(asyncio.run(_gather(server.base_url, 2, 1, refresh))) == [200, 401]
