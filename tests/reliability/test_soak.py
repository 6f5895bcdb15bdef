"""Soak: threads and tasks share two clients against 1 s tokens and a tight rate limit.

One ``nsdk.Client`` shared by the threads and one ``nsdk.AsyncClient`` shared by the tasks (in
its own thread and event loop) call ``me()`` until the time is up, each worker pausing a random
think time between calls so the offered load sits above the server's global rate limit. The
server's access TTL is 1 second, so both sessions rotate their tokens about twice a second while
429s come and go. Afterwards:

* no call raised (every 429 and every expiry was absorbed by the policy and the refresh flow);
* no token family was revoked by replay detection (no refresh token was ever presented twice);
* every 429 was honoured: the resend of the same request went out no sooner than Retry-After;
* the limits did bite (some 429s) and the tokens did rotate (many refreshes).

The long run is marked ``slow`` (``NSDK_SOAK_SECONDS``, default 60; 32 threads, 200 tasks); a short
run (5 seconds, 8 threads, 50 tasks) is part of the default suite.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import nsdk
import pytest
from nsdk_server.testing import run_server

EMAIL = "user@example.com"
PASSWORD = "demo-password"  # the reference server's documented demo user
POLICY = nsdk.RetryPolicy(max_attempts=10, initial_backoff=0.2, max_backoff=2.0, max_retry_after=5)
EARLY = 0.05  # clock slack allowed when checking a resend against Retry-After


@dataclass(frozen=True)
class Soak:
    """One soak configuration."""

    seconds: float
    threads: int
    tasks: int
    rate: str  # the server's global rate limit, N/SECONDS per client address
    think: float  # mean pause of a worker between two calls, seconds


@dataclass
class Attempt:
    """One attempt as the wire saw it (below the retry transport)."""

    key: int  # the same for every attempt of one logical request
    sent: float
    answered: float
    status: int | None
    retry_after: str | None


class AttemptLog:
    """Attempts of every request, recorded by the inner transports (thread-safe)."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._keys = itertools.count()

    def key(self, request: httpx.Request) -> int:
        # The retry transport and the auth flow resend the same Request object: tag it once.
        if "soak_key" not in request.extensions:
            request.extensions["soak_key"] = next(self._keys)
        return int(request.extensions["soak_key"])

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def unhonoured_429s(self) -> tuple[int, list[str]]:
        """(429s followed by a resend, descriptions of resends sent before Retry-After)."""
        by_key: dict[int, list[Attempt]] = {}
        for a in self.attempts:
            by_key.setdefault(a.key, []).append(a)
        resent, early = 0, []
        for attempts in by_key.values():
            attempts.sort(key=lambda a: a.sent)
            for first, then in itertools.pairwise(attempts):
                if first.status != 429:
                    continue
                resent += 1
                wait = nsdk.parse_retry_after(first.retry_after, time.time())
                gap = then.sent - first.answered
                if wait is not None and gap < wait - EARLY:
                    early.append(f"Retry-After {first.retry_after!r} but resent after {gap:.3f}s")
        return resent, early


def _answer(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, response.headers.get("retry-after")


class RecordingTransport(httpx.HTTPTransport):
    def __init__(self, log: AttemptLog) -> None:
        super().__init__()
        self.log = log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key, sent = self.log.key(request), time.monotonic()
        try:
            response = super().handle_request(request)
        except Exception:
            self.log.add(Attempt(key, sent, time.monotonic(), None, None))
            raise
        self.log.add(Attempt(key, sent, time.monotonic(), *_answer(response)))
        return response


class AsyncRecordingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, log: AttemptLog) -> None:
        super().__init__()
        self.log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key, sent = self.log.key(request), time.monotonic()
        try:
            response = await super().handle_async_request(request)
        except Exception:
            self.log.add(Attempt(key, sent, time.monotonic(), None, None))
            raise
        self.log.add(Attempt(key, sent, time.monotonic(), *_answer(response)))
        return response


def run_soak(config: Soak, ledger: Any, recording_store: Any) -> dict[str, Any]:
    """Run one soak; return the calls made, the errors, the attempt log and the server counters."""
    log = AttemptLog()
    errors: list[BaseException] = []
    calls = {"sync": 0, "async": 0}
    lock = threading.Lock()
    server_options = {
        "access_ttl": 1,
        "faults": True,
        "scrypt_n": 2**12,
        "global_rate": config.rate,
        "login_account_rate": None,
        "login_address_rate": None,
    }
    with run_server(**server_options) as server:
        deadline = time.monotonic() + config.seconds
        options = {"retry": POLICY, "timeout": 30.0}

        def failed(exc: BaseException) -> None:
            ledger.exception(exc)
            with lock:
                errors.append(exc)

        def thread_worker(client: nsdk.Client, rng: random.Random) -> None:
            while time.monotonic() < deadline:
                try:
                    client.me()
                except Exception as exc:
                    failed(exc)
                else:
                    with lock:
                        calls["sync"] += 1
                time.sleep(rng.uniform(0, 2 * config.think))

        async def async_main() -> None:
            async with nsdk.AsyncClient(
                server.base_url,
                transport=AsyncRecordingTransport(log),
                token_store=recording_store(),
                **options,
            ) as client:
                await client.login(email=EMAIL, password=PASSWORD)

                async def task(rng: random.Random) -> None:
                    while time.monotonic() < deadline:
                        try:
                            await client.me()
                        except Exception as exc:
                            failed(exc)
                        else:
                            calls["async"] += 1
                        await asyncio.sleep(rng.uniform(0, 2 * config.think))

                await asyncio.gather(*(task(random.Random(i)) for i in range(config.tasks)))

        with nsdk.Client(
            server.base_url,
            transport=RecordingTransport(log),
            token_store=recording_store(),
            **options,
        ) as client:
            client.login(email=EMAIL, password=PASSWORD)
            workers = [
                threading.Thread(target=thread_worker, args=(client, random.Random(-i)))
                for i in range(1, config.threads + 1)
            ]
            workers.append(threading.Thread(target=lambda: asyncio.run(async_main())))
            for w in workers:
                w.start()
            for w in workers:
                w.join(config.seconds + 120)
            assert not any(w.is_alive() for w in workers), "a soak worker did not finish"
        stats = server.stats()
        ledger.text("server log (soak)", server.logs())
    return {"calls": calls, "errors": errors, "log": log, "stats": stats}


def check_soak(result: dict[str, Any], config: Soak) -> None:
    """Assert the soak's outcome (see the module docstring)."""
    errors, stats, log = result["errors"], result["stats"], result["log"]
    summary = {k: stats[k] for k in ("refresh_ok", "rate_limited", "replays", "families_revoked")}
    assert not errors, f"{len(errors)} unexpected errors, e.g. {errors[:3]!r}; {summary}"
    assert stats["families_revoked"] == 0 and stats["replays"] == 0, summary
    resent, early = log.unhonoured_429s()
    assert not early, f"{len(early)} of {resent} 429s not honoured, e.g. {early[:3]}"
    assert stats["rate_limited"] > 0 and resent > 0, f"the rate limit never bit: {summary}"
    # Both sessions rotate about twice a second when free; 429s on refresh slow that down.
    assert stats["refresh_ok"] >= config.seconds / 2, f"tokens did not rotate: {summary}"
    assert result["calls"]["sync"] > 0 and result["calls"]["async"] > 0, result["calls"]


SHORT = Soak(seconds=5, threads=8, tasks=50, rate="30/1", think=1.5)


def test_soak_short(ledger: Any, recording_store: Any) -> None:
    """5 s, 8 threads + 50 tasks, 1 s tokens, tight limits: no error, no replay, 429s honoured."""
    check_soak(run_soak(SHORT, ledger, recording_store), SHORT)


@pytest.mark.slow
def test_soak(ledger: Any, recording_store: Any) -> None:
    """NSDK_SOAK_SECONDS (60), 32 threads + 200 tasks: no error, no replay, every 429 honoured."""
    config = Soak(
        seconds=float(os.environ.get("NSDK_SOAK_SECONDS", "60")),
        threads=32,
        tasks=200,
        rate="120/2",
        think=3.0,
    )
    check_soak(run_soak(config, ledger, recording_store), config)
