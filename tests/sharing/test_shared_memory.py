"""Two clients of one process, one MemoryTokenStore: one refresh per expiry, counted at the server.

A sync ``Client`` called from 64 threads and an ``AsyncClient`` called from 200 tasks (its own
event loop, in a thread) share one store. Each round waits until the access token has really
expired (the reference server's JWTs, access TTL 2 s), then releases all 264 callers at once.
A round normally sees one expiry; on a slow machine the fresh token can expire again before the
264th call, so the exact claim is: refresh requests == rotations, and every rotation came after
the previous token's ``exp`` (never early, never twice for one expiry).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator

import nsdk
import pytest
from nsdk_server.testing import ServerHandle, run_server

EMAIL, PASSWORD = "user@example.com", "demo-password"
THREADS, TASKS, ROUNDS = 64, 200, 3


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    """A reference server in its own process (264 callers would starve one in this process)."""
    with run_server(
        access_ttl=2,
        faults=True,
        scrypt_n=2**12,
        login_account_rate=None,
        login_address_rate=None,
    ) as handle:
        yield handle


def test_one_refresh_per_expiry_across_two_clients_64_threads_and_200_tasks(server: ServerHandle):
    """3 rounds of 264 callers: one refresh per expiry, 0 replays, 0 errors, every call served."""
    store = nsdk.MemoryTokenStore()
    rotations: list[nsdk.Tokens] = []
    sync = nsdk.Client(
        server.base_url, token_store=store, refresh_leeway=0, on_tokens_refreshed=rotations.append
    )
    sync.login(email=EMAIL, password=PASSWORD)
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    aclient = nsdk.AsyncClient(
        server.base_url, token_store=store, refresh_leeway=0, on_tokens_refreshed=rotations.append
    )
    errors: list[BaseException] = []
    served: list[str] = []

    def call_sync(go: threading.Event) -> None:
        go.wait()
        try:
            served.append(sync.me().email)
        except nsdk.NsdkError as exc:
            errors.append(exc)

    async def call_async(go: asyncio.Event) -> None:
        await go.wait()
        try:
            served.append((await aclient.me()).email)
        except nsdk.NsdkError as exc:
            errors.append(exc)

    async def herd(go: asyncio.Event) -> None:
        await asyncio.gather(*(call_async(go) for _ in range(TASKS)))

    try:
        for round_no in range(ROUNDS):
            tokens = store.tokens
            assert tokens is not None and tokens.expires_at is not None
            seen = len(rotations)
            time.sleep(max(0.0, tokens.expires_at - time.time()) + 0.05)  # really expired
            before = server.stats()
            go, ago = threading.Event(), asyncio.Event()
            threads = [threading.Thread(target=call_sync, args=(go,)) for _ in range(THREADS)]
            for t in threads:
                t.start()
            tasks = asyncio.run_coroutine_threadsafe(herd(ago), loop)
            time.sleep(0.2)  # every thread and task is waiting on its event
            go.set()
            loop.call_soon_threadsafe(ago.set)
            for t in threads:
                t.join(60)
            tasks.result(60)
            after = server.stats()
            assert errors == [], f"round {round_no}: {[type(e).__name__ for e in errors]}"
            new = rotations[seen:]
            assert after["refresh_requests"] - before["refresh_requests"] == len(new) >= 1
            chain = [tokens, *new]
            for old, fresh in itertools.pairwise(chain):
                assert fresh.issued_at is not None and old.expires_at is not None
                assert fresh.issued_at >= old.expires_at  # rotated only once it had expired
            assert after["replays"] == 0 and after["refresh_presented_max"] == 1
            print(f"round {round_no}: {len(new)} rotation(s)")
            assert len(served) == (THREADS + TASKS) * (round_no + 1)
            assert sync.state is aclient.state is nsdk.SessionState.ACTIVE
    finally:
        asyncio.run_coroutine_threadsafe(aclient.aclose(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(10)
        sync.close()
