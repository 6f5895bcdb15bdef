"""Tokens that expire while a request waits: the case the soak found, made deterministic.

Against a reference server issuing 1-second access tokens, ``me()`` meets a 429 asking for 2
seconds, twice (the client really sleeps): each wait outlives the token the request carries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import nsdk
import pytest
from nsdk_server.testing import ServerHandle, run_server

MODES = ("sync", "async")


@pytest.fixture(scope="module")
def short_ttl_server(ledger: Any) -> Iterator[ServerHandle]:
    """A server whose access tokens live 1 second (faults on)."""
    with run_server(access_ttl=1, faults=True, scrypt_n=2**12) as handle:
        yield handle
        ledger.text("server log (short_ttl_server)", handle.logs())


@pytest.mark.parametrize("mode", MODES)
def test_token_expiring_during_two_429_waits(
    mode: str, short_ttl_server: ServerHandle, make_driver: Any
) -> None:
    """Two Retry-After waits that each outlive the token end in success, not a 401 error."""
    server = short_ttl_server
    sleep: Any = time.sleep if mode == "sync" else asyncio.sleep
    # No early refresh: the token is refreshed only once it has expired, so the sequence is exact.
    driver = make_driver(mode, server.base_url, sleep=sleep, refresh_leeway=0)
    driver.login()
    server.reset()
    server.faults.add("me", status=429, retry_after="2")  # 1st send; the resend's token expired
    server.faults.add("me", delay=0.01)  # that resend reaches the real endpoint: 401
    server.faults.add("me", status=429, retry_after="2")  # the send after the refresh, again

    me = driver.call("me")

    assert me.user_id == "1005"
    stats = server.stats()
    # 429, 401 (expired), refresh, 429, 401 (expired again), refresh, 200.
    assert stats["requests"]["me"] == 5 and stats["refresh_ok"] == 2
    assert stats["replays"] == 0 and stats["families_revoked"] == 0
    assert driver.state is nsdk.SessionState.ACTIVE
