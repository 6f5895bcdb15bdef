"""Figure 8: one session shared by a fleet through a ``RedisTokenStore``.

The bench starts its own Redis: Debian's ``redis-server`` (``apt-get install redis-server``) on a
free loopback port, without persistence, in a temporary directory, stopped at the end. Without
``redis-server`` on PATH the figure is reported as skipped. Every store below is a
``nsdk.RedisTokenStore(url, key=..., lease_ttl=20, lock_timeout=30)`` on that server.

8a. Refreshes per expiry: figure 7a (``sharing.py``) with 4 processes of 16 threads each sharing
one ``RedisTokenStore`` key (one ``nsdk.Client`` per process, ``refresh_leeway=0``), calling
``me()`` for 3 rounds of 10 s against the reference server with ``access_ttl=1``. Refresh
requests are the server's counter; expiries are counted from the client side from the bearer
tokens the processes carried, exactly as 7a counts them (same code). Target: refresh requests /
expiries == 1 in every round, with 0 replays, 0 refused refreshes, 0 failed calls, no refresh
token presented twice and one token family. Also, for information, calls per second against the
same processes each with its own ``MemoryTokenStore`` session.

8b. The refresh critical section's latency, for information (no target). Timed (wall clock,
``perf_counter``), per refresh: the store's part of a rotation as the client runs it
(``refresh_steps``), without the HTTP POST: enter ``refresh_lock()`` (Redis: ``SET NX PX`` and
the lease keeper thread started), ``now()`` (Redis ``TIME``; the memory store keeps no clock),
``read()``, ``compare_and_set`` of the in-flight record, ``compare_and_set`` of the new pair,
exit (keeper stopped, lease released by script). ``RedisTokenStore`` against
``MemoryTokenStore``, rounds alternating which goes first; p50 and p99 per round, the figure is
the median over the rounds with min and max; the ratio is the per-round ratio of p50s (p99s).
Also the whole ``client.refresh()`` in-process on the canned transport (the store's part plus
nsdk's refresh logic and a canned answer, no socket to the server).

8c. Per-call overhead of ``me()`` with a ``RedisTokenStore`` against the memory store, measured
by figure 7b's code: in-process on the canned transport (this thread's CPU time, target at most
1.05x), sync and async, and on loopback against the server (wall, information); the Redis store
counts its ``read``, ``compare_and_set``, ``refresh_lock`` and ``now`` calls during the measured
calls: the hot path must make none.

Run alone: ``python bench/run.py --only redis_fleet``. This file is also the child process of 8a
(``python bench/redis_fleet.py --child REDIS_URL KEY URL THREADS``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nsdk
from common import BASE_URL, EMAIL, PASSWORD, CannedTransport, Row, fake_jwt, rotate
from sharing import Counting, Shared, fleet_rows, overhead_rows, serve

PROCESSES = 4
THREADS = 16
LEASE_TTL = 20.0  # seconds (the store's default): longer than a refresh can take
LOCK_TIMEOUT = 30.0  # seconds a client waits for another host's refresh
HOST = "127.0.0.1"
PORT_ATTEMPTS = 5  # a free port can be taken between the probe and redis-server's bind
READY_TIMEOUT = 10.0  # seconds for redis-server to answer PING
SKIPPED = "skipped: redis-server not on PATH (apt-get install redis-server)"


# --- a redis-server of the bench's own --------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def redis_server(binary: str) -> Iterator[str]:
    """``binary`` on a free loopback port, no persistence, in a temp dir: yields its URL."""
    with tempfile.TemporaryDirectory(prefix="nsdk-bench-redis-") as tmp:
        log = Path(tmp) / "redis-server.log"
        for _ in range(PORT_ATTEMPTS):
            port = _free_port()
            process = subprocess.Popen(
                [
                    binary,
                    *("--bind", HOST, "--port", str(port), "--dir", tmp),
                    *("--save", "", "--appendonly", "no"),  # no persistence
                    *("--daemonize", "no", "--logfile", str(log)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + READY_TIMEOUT
            while process.poll() is None and time.monotonic() < deadline:
                if _answers_ping(port):
                    break
                time.sleep(0.02)
            if process.poll() is None and _answers_ping(port):
                break
            _stop(process)  # exited (the port was taken meanwhile?) or silent: try another
        else:
            tail = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
            raise RuntimeError(f"redis-server did not start; its log ends: {tail}")
        try:
            yield f"redis://{HOST}:{port}/0"
        finally:
            _stop(process)


# --- the stores -------------------------------------------------------------------------------


def _store(url: str, key: str) -> nsdk.RedisTokenStore:
    return nsdk.RedisTokenStore(url, key=key, lease_ttl=LEASE_TTL, lock_timeout=LOCK_TIMEOUT)


class CountingRedisStore(Counting, nsdk.RedisTokenStore):
    """A RedisTokenStore that counts every call of its primitives, its clock included."""

    counted = "read, compare_and_set, refresh_lock, now"

    def now(self) -> float:
        self.calls += 1
        return super().now()


def child(redis_url: str, key: str, url: str, threads: int) -> None:
    """An 8a process: ``sharing.serve`` with a ``RedisTokenStore`` on ``key``."""
    serve(url, threads, "redis", lambda: _store(redis_url, key))


def _shared(redis_url: str) -> Shared:
    def command(part: str, url: str) -> list[str]:
        key = f"nsdk-bench:{part}"
        return [sys.executable, __file__, "--child", redis_url, key, url, str(THREADS)]

    return Shared(
        figure="8",
        name="redis",
        title="RedisTokenStore",
        processes=PROCESSES,
        threads=THREADS,
        open=lambda part: CountingRedisStore(
            redis_url, key=f"nsdk-bench:{part}", lease_ttl=LEASE_TTL, lock_timeout=LOCK_TIMEOUT
        ),
        child=command,
    )


# --- 8b: the refresh critical section ---------------------------------------------------------


def _section_ns(store: Any, tokens: nsdk.Tokens) -> int:
    """One rotation's store steps, as ``refresh_steps`` makes them, minus the POST: ns (wall)."""
    clock: Callable[[], float] | None = getattr(store, "now", None)
    start = time.perf_counter_ns()
    with store.refresh_lock() as lease:
        now = clock() if clock is not None else time.time()
        stored = store.read()
        record = nsdk.RefreshInFlight(started_at=now, deadline=now + LEASE_TTL)
        marked = stored.successor(stored.tokens, refreshing=record)
        if not store.compare_and_set(stored.generation, marked, lease):
            raise RuntimeError("the in-flight record was not written")
        # (the client POSTs the refresh here)
        if not store.compare_and_set(marked.generation, marked.successor(tokens), lease):
            raise RuntimeError("the new pair was not written")
    return time.perf_counter_ns() - start


def _client_refresh_ns(client: nsdk.Client) -> int:
    start = time.perf_counter_ns()
    client.refresh()
    return time.perf_counter_ns() - start


def _pair(n: int) -> nsdk.Tokens:
    return nsdk.Tokens(access_token=fake_jwt(), refresh_token=f"bench-refresh-{n}")


def _latencies(
    timers: dict[str, Callable[[int], int]], rounds: int, n: int
) -> dict[str, list[list[float]]]:
    """Per store, per round: n timed calls of its timer (us), rounds alternating the order."""
    for timer in timers.values():  # warm-up: connections, scripts loaded, caches
        for i in range(max(10, n // 5)):
            timer(i)
    out: dict[str, list[list[float]]] = {name: [] for name in timers}
    for r in range(rounds):
        for name in rotate(list(timers), r):
            out[name].append([ns / 1000 for ns in map(timers[name], range(n))])
    return out


def _pct(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100)[p - 1]


def _latency_rows(
    what: str, samples: dict[str, list[list[float]]], timed: str, percentiles: tuple[int, ...]
) -> list[Row]:
    redis, memory = samples["redis"], samples["memory"]
    pooled = {k: [x for r in v for x in r] for k, v in samples.items()}
    overall = "; ".join(
        f"p{p} {_pct(pooled['redis'], p):.1f} us vs {_pct(pooled['memory'], p):.1f} us"
        for p in (50, 99)
    )
    rows = []
    for p in percentiles:
        row = Row.versus(
            f"8 {what}: RedisTokenStore vs MemoryTokenStore, p{p} (wall)",
            "us",
            [_pct(r, p) for r in redis],
            [_pct(r, p) for r in memory],
            "memory store",
            extra={"samples_us": samples},
        )
        row.note = (
            f"p{p} of each round of {len(redis[0])} (median over {len(redis)} rounds); over all "
            f"{len(pooled['redis'])} per store: {overall}; timed: {timed}"
        )
        rows.append(row)
    return rows


def latency_rows(redis_url: str, quick: bool) -> list[Row]:
    """8b: the refresh critical section (store part), and the whole in-process refresh."""
    rounds, n = (3, 50) if quick else (5, 100)
    stores = {"redis": _store(redis_url, "nsdk-bench:section"), "memory": nsdk.MemoryTokenStore()}
    for store in stores.values():
        store.compare_and_set(0, nsdk.StoredSession(1, _pair(0)))
    sections = _latencies(
        {k: (lambda i, s=s: _section_ns(s, _pair(i))) for k, s in stores.items()}, rounds, n
    )
    rows = _latency_rows(
        "refresh critical section, store part",
        sections,
        "refresh_lock() entered, now() (Redis only), read(), compare_and_set() of the in-flight "
        "record and of the new pair, refresh_lock() left; no HTTP (building the pair not timed)",
        (50, 99),
    )
    clients = {
        "redis": nsdk.Client(
            BASE_URL,
            token_store=_store(redis_url, "nsdk-bench:refresh"),
            transport=CannedTransport(),
        ),
        "memory": nsdk.Client(BASE_URL, transport=CannedTransport()),
    }
    try:
        for client in clients.values():
            client.login(email=EMAIL, password=PASSWORD)
        whole = _latencies(
            {k: (lambda _i, c=c: _client_refresh_ns(c)) for k, c in clients.items()}, rounds, n
        )
    finally:
        for client in clients.values():
            client.close()
    refresh = _latency_rows(
        "client.refresh() in-process",
        whole,
        "the whole Client.refresh(): the store part above, nsdk's refresh logic and the canned "
        "transport's answer to POST refresh (no socket to a server)",
        (50,),  # its p99 is in the note
    )
    return rows + refresh


def run(quick: bool = False, **_: Any) -> list[Row]:
    """Figure 8: 8c (per-call overhead), 8b (critical section), 8a (4 x 16 on one Redis key)."""
    binary = shutil.which("redis-server")
    if binary is None:
        return [Row(figure=f"8 shared RedisTokenStore: {SKIPPED}", met="not measured")]
    with redis_server(binary) as redis_url:
        shared = _shared(redis_url)
        overhead = overhead_rows(shared, quick)
        latency = latency_rows(redis_url, quick)
        return fleet_rows(shared, quick) + latency + overhead


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        print("usage: python bench/run.py --only redis_fleet", file=sys.stderr)
        raise SystemExit(2)
