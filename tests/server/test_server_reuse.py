"""The refresh-token reuse interval and the presentation counters that prove tokens are sent once.

With `--refresh-reuse-interval SECONDS`, the parent of a family's current refresh token presented
again within SECONDS of its rotation is answered with the same child (derived from the parent with
HMAC-SHA256 under the server secret); anything else already used is replay, as without it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from nsdk_server.app import create_app
from nsdk_server.cli import build_config, parser
from nsdk_server.config import ServerConfig
from nsdk_server.pytest_plugin import SESSION_SERVER_OPTIONS
from nsdk_server.testing import ServerHandle, run_server, server_args

SECRET = "reuse-interval-test-secret-32-by"
INTERVAL = 30.0

# Every presentation counter, so each test states all of them.
PRESENTATION_KEYS = (
    "refresh_ok",
    "refresh_failed",
    "refresh_reused",
    "replays",
    "families_revoked",
    "refresh_presented_max",
    "refresh_represented",
    "refresh_represented_outside_reuse",
)


def counters(stats: dict[str, Any]) -> dict[str, int]:
    """The presentation counters of a stats snapshot."""
    return {key: stats[key] for key in PRESENTATION_KEYS}


def expected(**values: int) -> dict[str, int]:
    """The presentation counters, zero unless given."""
    return {key: values.get(key, 0) for key in PRESENTATION_KEYS}


def successor(parent: str) -> str:
    """The child refresh token the server derives from `parent` (its documented formula)."""
    digest = hmac.new(
        SECRET.encode(), b"nsdk-refresh-successor:" + parent.encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def reuse_server_module() -> Iterator[ServerHandle]:
    """One subprocess server for this module, started with a 30 s reuse interval."""
    with run_server(
        **SESSION_SERVER_OPTIONS, secret=SECRET, refresh_reuse_interval=INTERVAL
    ) as handle:
        yield handle


@pytest.fixture
def reuse_server(reuse_server_module: ServerHandle) -> ServerHandle:
    """The reuse-interval server with no queued faults and zeroed counters."""
    reuse_server_module.reset()
    return reuse_server_module


@pytest.fixture
def reuse_api(reuse_server: ServerHandle, api_for: Any) -> Any:
    """Operation helpers for the reuse-interval server."""
    return api_for(reuse_server)


def test_parent_within_interval_gets_the_same_child(reuse_api, reuse_server) -> None:
    """A repeated parent within the interval gets 200, the same child and a working access token."""
    login = reuse_api.tokens()
    first = reuse_api.refresh(login["refreshToken"]).json()
    again = reuse_api.refresh(login["refreshToken"])
    assert again.status_code == 200
    assert again.headers["cache-control"] == "no-store"
    repeat = again.json()
    assert repeat["refreshToken"] == first["refreshToken"] == successor(login["refreshToken"])
    assert len(repeat["refreshToken"]) == 43
    assert repeat["accessToken"] != first["accessToken"]  # a fresh JWT, same family
    assert reuse_api.me(repeat["accessToken"]).status_code == 200
    assert reuse_api.me(first["accessToken"]).status_code == 200
    third = reuse_api.refresh(login["refreshToken"]).json()  # idempotent
    assert third["refreshToken"] == first["refreshToken"]
    following = reuse_api.refresh(first["refreshToken"])  # the child is still unused
    assert following.status_code == 200
    assert following.json()["refreshToken"] == successor(first["refreshToken"])
    assert counters(reuse_server.stats()) == expected(
        refresh_ok=2, refresh_reused=2, refresh_presented_max=3, refresh_represented=1
    )


def test_grandparent_within_interval_is_replay(reuse_api, reuse_server) -> None:
    """A token whose child was itself rotated is replay within the interval: the family dies."""
    login = reuse_api.tokens()
    first = reuse_api.refresh(login["refreshToken"]).json()
    second = reuse_api.refresh(first["refreshToken"]).json()
    reuse_api.assert_error(reuse_api.refresh(login["refreshToken"]), 401)  # replay
    reuse_api.assert_error(reuse_api.refresh(second["refreshToken"]), 401)  # family revoked
    reuse_api.assert_error(reuse_api.me(second["accessToken"]), 401)
    # The current token's parent no longer qualifies either: the family is revoked.
    reuse_api.assert_error(reuse_api.refresh(first["refreshToken"]), 401)
    assert counters(reuse_server.stats()) == expected(
        refresh_ok=2,
        refresh_failed=3,
        replays=1,
        families_revoked=1,
        refresh_presented_max=2,
        refresh_represented=2,  # login's and first's tokens
        refresh_represented_outside_reuse=2,  # the replay, and first's token to a revoked family
    )


def test_parent_at_and_after_the_interval() -> None:
    """With an injected clock: the parent is reused at exactly the interval, replay just after."""
    now = [time.time() - 120.0]  # behind the real clock, so PyJWT never sees a future "iat"
    config = ServerConfig(secret=SECRET.encode(), refresh_reuse_interval=10.0, scrypt_n=2**12)
    server_app = create_app(config, clock=lambda: now[0])
    transport = httpx.ASGITransport(app=server_app.asgi)

    async def scenario(client: httpx.AsyncClient) -> None:
        async def refresh(token: str) -> httpx.Response:
            return await client.post("/api/auth/refresh", json={"refreshToken": token})

        async def me(access: str) -> int:
            headers = {"Authorization": f"Bearer {access}"}
            return (await client.get("/api/auth/me", headers=headers)).status_code

        credentials = {"email": "user@example.com", "password": "demo-password"}
        login = (await client.post("/api/auth/login", json=credentials)).json()
        first = (await refresh(login["refreshToken"])).json()
        now[0] += 10.0
        at_limit = await refresh(login["refreshToken"])
        assert at_limit.status_code == 200
        assert at_limit.json()["refreshToken"] == first["refreshToken"]
        assert await me(at_limit.json()["accessToken"]) == 200
        now[0] += 0.5
        assert (await refresh(login["refreshToken"])).status_code == 401  # replay
        assert (await refresh(first["refreshToken"])).status_code == 401  # family revoked
        assert await me(first["accessToken"]) == 401

    async def run() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://nsdk.test") as client:
            await scenario(client)

    try:
        asyncio.run(run())
    finally:
        server_app.store.close()
    assert counters(server_app.stats.snapshot()) == expected(
        refresh_ok=1,
        refresh_reused=1,
        refresh_failed=2,
        replays=1,
        families_revoked=1,
        refresh_presented_max=3,
        refresh_represented=1,
        refresh_represented_outside_reuse=1,
    )


def test_interval_zero_keeps_strict_rotation(api, server) -> None:
    """Without the option (0), the parent presented again at once is replay and counted as such."""
    login = api.tokens()
    first = api.refresh(login["refreshToken"]).json()
    api.assert_error(api.refresh(login["refreshToken"]), 401)
    api.assert_error(api.refresh(first["refreshToken"]), 401)
    assert counters(server.stats()) == expected(
        refresh_ok=1,
        refresh_failed=2,
        replays=1,
        families_revoked=1,
        refresh_presented_max=2,
        refresh_represented=1,
        refresh_represented_outside_reuse=1,
    )


def test_logout_then_parent_within_interval_is_refused(reuse_api, reuse_server) -> None:
    """After logout the parent is 401 even within the interval, and it is not counted as reuse."""
    login = reuse_api.tokens()
    first = reuse_api.refresh(login["refreshToken"]).json()
    assert reuse_api.logout(first["accessToken"]).status_code == 204
    reuse_api.assert_error(reuse_api.refresh(login["refreshToken"]), 401)
    reuse_api.assert_error(reuse_api.refresh(first["refreshToken"]), 401)
    stats = reuse_server.stats()
    assert stats["logouts"] == 1
    assert counters(stats) == expected(
        refresh_ok=1,
        refresh_failed=2,
        refresh_presented_max=2,
        refresh_represented=1,
        refresh_represented_outside_reuse=1,  # the parent again, to a revoked family
    )


@pytest.mark.parametrize(
    "fault",
    [{"drop": "after"}, {"status": 503, "perform": True}],
    ids=["drop-after", "perform-503"],
)
def test_lost_answer_then_resend_within_interval_gets_the_same_pair(
    reuse_api, reuse_server, fault: dict[str, Any]
) -> None:
    """A rotation whose answer was lost counts as a presentation; the resend gets its child."""
    login = reuse_api.tokens()
    reuse_server.faults.add("refresh", **fault)
    if "drop" in fault:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            reuse_api.refresh(login["refreshToken"])
    else:
        reuse_api.assert_error(reuse_api.refresh(login["refreshToken"]), 503)
    resend = reuse_api.refresh(login["refreshToken"])
    assert resend.status_code == 200
    pair = resend.json()
    assert pair["refreshToken"] == successor(login["refreshToken"])  # what the lost answer held
    assert reuse_api.me(pair["accessToken"]).status_code == 200
    assert reuse_api.refresh(pair["refreshToken"]).status_code == 200
    stats = reuse_server.stats()
    assert stats["faults_applied"] == 1
    assert counters(stats) == expected(
        refresh_ok=2, refresh_reused=1, refresh_presented_max=2, refresh_represented=1
    )


def test_lost_answer_then_resend_without_interval_is_replay(api, server) -> None:
    """Without the interval, a resend after drop=after is a replay outside reuse."""
    login = api.tokens()
    server.faults.add("refresh", drop="after")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.refresh(login["refreshToken"])
    api.assert_error(api.refresh(login["refreshToken"]), 401)
    assert counters(server.stats()) == expected(
        refresh_ok=1,
        refresh_failed=1,
        replays=1,
        families_revoked=1,
        refresh_presented_max=2,
        refresh_represented=1,
        refresh_represented_outside_reuse=1,
    )


def test_single_presentations_count_once_and_reset_forgets_them(api, server) -> None:
    """Each token presented once gives max 1 and no repeats; a stats reset forgets presentations."""
    login = api.tokens()
    first = api.refresh(login["refreshToken"]).json()
    api.refresh(first["refreshToken"])
    assert counters(server.stats()) == expected(refresh_ok=2, refresh_presented_max=1)
    api.assert_error(api.refresh("never-issued"), 401)
    server.reset_stats()
    api.assert_error(api.refresh("never-issued"), 401)  # first presentation since the reset
    assert counters(server.stats()) == expected(refresh_failed=1, refresh_presented_max=1)


def test_reuse_interval_option() -> None:
    """refresh_reuse_interval= maps to --refresh-reuse-interval and the config; bad values fail."""
    args = server_args(refresh_reuse_interval=2.5)
    assert args == ["--refresh-reuse-interval", "2.5"]
    assert build_config(parser().parse_args(args)).refresh_reuse_interval == 2.5
    assert build_config(parser().parse_args([])).refresh_reuse_interval == 0.0
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(ValueError, match="--refresh-reuse-interval"):
            build_config(parser().parse_args(["--refresh-reuse-interval", bad]))
