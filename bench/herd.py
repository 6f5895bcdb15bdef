"""Figure 3: refresh herds. Many callers hold an expired access token at the same moment.

Against the reference server on loopback, one client shared by 1,000 asyncio tasks (``AsyncClient``)
or by 64 threads (``Client``), all calling ``me()`` at once. Two ways to hold an expired token:

* proactive: the client can see the JWT's ``exp`` has passed. Its clock runs an hour ahead until
  the token store receives the rotated pair, which is exactly what the client sees an hour after
  login, without waiting an hour. Every caller must wait for one refresh, then send.
* reactive: the client cannot see the expiry (its clock is pinned to 1970, as with an opaque
  token) and the server really expired it, so every caller sends it, gets 401, and must join one
  refresh, then resend once. The expired pair comes from a second server process sharing the
  first one's secret and database but issuing 1-second access tokens (the client's transport
  sends its login there): it expires in 2 seconds, while the pair the refresh brings lasts long
  enough for 2,000 requests.

The count is the server's ``refresh_requests`` (target: exactly 1 per herd); the cost is the burst's
wall time against the same burst with a fresh token on the same client, same connections.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import nsdk
from common import EMAIL, PASSWORD, Row, Stat, ratios, server

TASKS = 1000
THREADS = 64
SHORT_TTL = 1  # access-token TTL of the server that hands out the soon-expired pairs


class SkewClock:
    """A clock that runs ``skew`` seconds ahead until the client stores a rotated token pair."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


class ResettingStore(nsdk.MemoryTokenStore):
    """A memory store that sets the clock right when a rotated pair is stored.

    It hooks ``compare_and_set``, the write every stored pair goes through (a 0.1-style ``save``
    is never called on a ``TokenStore``), so the clock is right before any caller can read the
    new pair.
    """

    def __init__(self, clock: SkewClock) -> None:
        super().__init__()
        self._clock = clock

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> bool:
        before = self.tokens
        if new.tokens is not None and new.tokens is not before:
            self._clock.skew = 0.0  # before the write: no reader sees the pair with the skew
        return super().compare_and_set(expected, new, lease)


def _clock_1970() -> float:
    return 0.0


class Burst:
    """Outcome of one burst: wall time, per-call latencies, errors, server counters."""

    def __init__(self, wall: float, latencies: list[float], errors: list[BaseException]) -> None:
        self.wall = wall
        self.latencies = latencies
        self.errors = errors
        self.stats: dict[str, Any] = {}

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "wall_ms": self.wall * 1000,
            "p50_ms": statistics.median(lat) * 1000 if lat else None,
            "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000 if lat else None,
            "errors": [repr(e) for e in self.errors[:5]],
            "error_count": len(self.errors),
            "refresh_requests": self.stats.get("refresh_requests"),
            "me_requests": self.stats.get("requests", {}).get("me"),
            "families_revoked": self.stats.get("families_revoked"),
        }


async def async_burst(client: nsdk.AsyncClient, n: int) -> Burst:
    latencies: list[float] = []

    async def one() -> None:
        t0 = time.perf_counter()
        await client.me()
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    wall = time.perf_counter() - start
    return Burst(wall, latencies, [r for r in results if isinstance(r, BaseException)])


def thread_burst(client: nsdk.Client, n: int) -> Burst:
    barrier = threading.Barrier(n + 1)
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        t0 = time.perf_counter()
        try:
            client.me()
        except Exception as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                latencies.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(one) for _ in range(n)]
        barrier.wait()
        start = time.perf_counter()
        for f in futures:
            f.result()
        wall = time.perf_counter() - start
    return Burst(wall, latencies, errors)


def counted(handle: Any, run: Callable[[], Burst]) -> Burst:
    """Run a burst between a reset and a read of the server's counters."""
    handle.reset_stats()
    burst = run()
    burst.stats = handle.stats()
    return burst


def _rows(label: str, pairs: list[tuple[Burst, Burst]]) -> list[Row]:
    """Two rows: refresh requests per herd (target 1), and the herd's cost vs a fresh token."""
    herds = [h for _, h in pairs]
    counts = [float(h.stats.get("refresh_requests", -1)) for h in herds]
    errors = sum(len(h.errors) + len(f.errors) for f, h in pairs)
    revoked = sum(int(h.stats.get("families_revoked", 0)) for h in herds)
    count_row = Row(
        figure=f"3 herd {label}: refresh requests per herd",
        unit="req",
        nsdk=Stat.of(counts),
        target="== 1 each",
        extra={"bursts": [{"fresh": f.summary(), "herd": h.summary()} for f, h in pairs]},
    ).judge(all(c == 1 for c in counts) and errors == 0 and revoked == 0)
    count_row.note = f"{len(pairs)} herd(s); errors: {errors}; families revoked: {revoked}"
    herd_ms = [h.wall * 1000 for h in herds]
    fresh_ms = [f.wall * 1000 for f, _ in pairs]
    cost_row = Row(
        figure=f"3 herd {label}: burst time vs fresh token",
        unit="ms",
        nsdk=Stat.of(herd_ms),
        baseline=Stat.of(fresh_ms),
        baseline_name="fresh token",
        ratio=Stat.of(ratios(herd_ms, fresh_ms)),
    )
    p50 = [h.summary()["p50_ms"] for h in herds]
    cost_row.note = "per-call p50 in the herd: " + ", ".join(
        f"{x:.1f} ms" for x in p50 if x is not None
    )
    return [count_row, cost_row]


class LoginRouter:
    """Sends login requests to ``login_url``'s host and port when set (everything else as is)."""

    def __init__(self) -> None:
        self.login_url: httpx.URL | None = None

    def route(self, request: httpx.Request) -> None:
        if self.login_url is not None and request.url.path.endswith("/api/auth/login"):
            request.url = request.url.copy_with(host=self.login_url.host, port=self.login_url.port)


class AsyncRoutingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, router: LoginRouter) -> None:
        super().__init__()
        self.router = router

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.router.route(request)
        return await super().handle_async_request(request)


class RoutingTransport(httpx.HTTPTransport):
    def __init__(self, router: LoginRouter) -> None:
        super().__init__()
        self.router = router

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.router.route(request)
        return super().handle_request(request)


def _wait_until_expired(signed_in: float) -> None:
    # The short-lived server issues tokens valid 1 s at least, less than 2 s (whole-second exp).
    time.sleep(max(0.0, signed_in + SHORT_TTL + 1.1 - time.monotonic()))


async def _async_rounds(steady: Any, short: Any, rounds: int) -> dict[str, list[Any]]:
    clock = SkewClock()
    out: dict[str, list[Any]] = {"proactive": [], "reactive": []}
    async with nsdk.AsyncClient(
        steady.base_url, clock=clock, token_store=ResettingStore(clock)
    ) as client:
        await client.login(email=EMAIL, password=PASSWORD)
        await async_burst(client, TASKS)  # warm-up: connections, caches
        for r in range(rounds):
            fresh = await async_burst(client, TASKS) if r % 2 == 0 else None
            clock.skew = 3600.0
            steady.reset_stats()
            herd = await async_burst(client, TASKS)
            herd.stats = steady.stats()
            if fresh is None:
                fresh = await async_burst(client, TASKS)
            out["proactive"].append((fresh, herd))

    router = LoginRouter()
    async with nsdk.AsyncClient(
        steady.base_url, clock=_clock_1970, transport=AsyncRoutingTransport(router)
    ) as client:
        await client.login(email=EMAIL, password=PASSWORD)
        await async_burst(client, TASKS)  # warm-up
        for _ in range(rounds):
            router.login_url = None
            await client.login(email=EMAIL, password=PASSWORD)
            fresh = await async_burst(client, TASKS)
            router.login_url = httpx.URL(short.base_url)
            await client.login(email=EMAIL, password=PASSWORD)
            _wait_until_expired(time.monotonic())
            steady.reset_stats()
            herd = await async_burst(client, TASKS)
            herd.stats = steady.stats()
            out["reactive"].append((fresh, herd))
    return out


def _thread_rounds(steady: Any, short: Any, rounds: int) -> dict[str, list[Any]]:
    clock = SkewClock()
    out: dict[str, list[Any]] = {"proactive": [], "reactive": []}
    with nsdk.Client(steady.base_url, clock=clock, token_store=ResettingStore(clock)) as client:
        client.login(email=EMAIL, password=PASSWORD)
        thread_burst(client, THREADS)  # warm-up
        for r in range(rounds):
            fresh = thread_burst(client, THREADS) if r % 2 == 0 else None
            clock.skew = 3600.0
            herd = counted(steady, lambda c=client: thread_burst(c, THREADS))
            if fresh is None:
                fresh = thread_burst(client, THREADS)
            out["proactive"].append((fresh, herd))

    router = LoginRouter()
    with nsdk.Client(
        steady.base_url, clock=_clock_1970, transport=RoutingTransport(router)
    ) as client:
        client.login(email=EMAIL, password=PASSWORD)
        thread_burst(client, THREADS)  # warm-up
        for _ in range(rounds):
            router.login_url = None
            client.login(email=EMAIL, password=PASSWORD)
            fresh = thread_burst(client, THREADS)
            router.login_url = httpx.URL(short.base_url)
            client.login(email=EMAIL, password=PASSWORD)
            _wait_until_expired(time.monotonic())
            herd = counted(steady, lambda c=client: thread_burst(c, THREADS))
            out["reactive"].append((fresh, herd))
    return out


def run(quick: bool = False, **_: Any) -> list[Row]:
    """Figure 3: proactive and reactive herds, async tasks then threads."""
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="nsdk-bench-herd-") as tmp:
        shared = {"db": str(Path(tmp) / "herd.sqlite3"), "secret": secrets.token_hex(32)}
        with server(**shared) as steady, server(access_ttl=SHORT_TTL, **shared) as short:
            tasks = asyncio.run(_async_rounds(steady, short, rounds))
            threads = _thread_rounds(steady, short, rounds)
    rows = _rows(f"async {TASKS} tasks, exp seen (proactive)", tasks["proactive"])
    rows += _rows(f"threads {THREADS}, exp seen (proactive)", threads["proactive"])
    rows += _rows(f"async {TASKS} tasks, server 401 (reactive)", tasks["reactive"])
    rows += _rows(f"threads {THREADS}, server 401 (reactive)", threads["reactive"])
    return rows
