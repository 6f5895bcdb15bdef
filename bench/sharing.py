"""Figure 7: one session shared by many processes through a ``FileTokenStore``.

7a. Refreshes per expiry. 8 processes, 8 threads each, share one session through one
``FileTokenStore`` file (one ``nsdk.Client`` per process, ``refresh_leeway=0``) and call ``me()``
in a loop for about 10 seconds against the reference server on loopback, whose access tokens live
1-2 seconds (``access_ttl=1``: ``exp`` is ``ceil(issued + 1)``, a whole second). Counted per round:

* refresh requests: the server's ``refresh_requests`` between a reset just before the round and
  a read after every process reported (nothing else talks to that server meanwhile);
* expiries: how often the session's access token ran out during the round. Counted from the
  client side, independently of any refresh counter: every process records each distinct bearer
  token its ``me()`` requests carried (by its ``jti``, with its ``iat`` and ``exp``). Those tokens,
  ordered by issue, are the session's chain; an expiry is a token of the chain whose ``exp``
  fell inside the round and whose successor was issued no earlier than that ``exp`` (a
  successor issued before its predecessor expired is an early refresh: it is counted, as
  ``early``, and is not an expiry). The round ends half-way between two whole seconds and
  starts with a stored token that has at least 0.5 s to live, so no ``exp`` straddles an edge;
  the count is exact, not +-1.

  Target: refresh requests / expiries == 1 in every round, with 0 replays, 0 refused refreshes,
  every token of the chain from one token family, and no failed call. Uncoordinated refreshes
  show in one of two ways: a request over the count plus a replay (the rotated refresh token
  presented again, which revokes the session), or, when the store's in-flight record stops the
  second presentation, a session failed closed (failed calls): with the refresh lock replaced by
  a no-op, both rows of 7a report MISS.

  Also measured, for information: ``me()`` calls per second of the 64 callers, against the same
  processes and threads each using its own session in a ``MemoryTokenStore`` (each process signed
  in by itself: what one does without a shared store), windows alternating in order per round.

7b. Per-call overhead of ``me()`` with a ``FileTokenStore`` against the ``MemoryTokenStore``,
measured as figure 1 does (``overhead.py``): in-process on the canned transport (this thread's
CPU time; target at most 1.05x), sync and async, and on loopback against the server (wall time,
information). Each round runs both back to back, alternating which goes first; the figure is the
median of the per-round ratios. The file store is a subclass that counts its ``read``,
``compare_and_set`` and ``refresh_lock`` calls: the hot path must make none (it does no I/O).

Run alone: ``python bench/run.py --only sharing``. This file is also the child process of 7a
(``python bench/sharing.py --child PATH URL THREADS``), driven by JSON lines on stdin/stdout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import nsdk
from common import (
    BASE_URL,
    EMAIL,
    PASSWORD,
    AsyncCannedTransport,
    CannedTransport,
    Row,
    Stat,
    per_call_us,
    per_call_us_async,
    ratios,
    rotate,
    server,
)

PROCESSES = 8
THREADS = 8
ACCESS_TTL = 1  # seconds: tokens live 1-2 s (exp is a whole second, rounded up)
MIN_LEFT = 0.5  # a round starts with a stored token that has at least this long to live
WARM_UP = 0.5  # seconds of calls per client and process before it reports ready
READY_TIMEOUT = 120.0  # 8 interpreters importing nsdk on a loaded 2-core machine
OVERHEAD_TARGET = 1.05


@dataclass(frozen=True)
class Shared:
    """What figures 7 and 8 vary: the store one session is shared through, and the fleet.

    ``name`` keys its windows and samples (the baseline is always ``"memory"``); ``open(part)``
    returns a new store of that kind that counts its primitives (``Counting``), one session per
    part ("sync", "async", "loopback", "fleet"); ``child(part, url)`` is the command of one fleet
    process sharing ``open(part)``'s session with the server at ``url``.
    """

    figure: str
    name: str
    title: str
    processes: int
    threads: int
    open: Callable[[str], Any]
    child: Callable[[str, str], list[str]]

    @property
    def stores(self) -> tuple[str, str]:
        return (self.name, "memory")

    @property
    def label(self) -> str:
        fleet = f"{self.processes} processes x {self.threads} threads"
        return f"{self.figure} shared {self.title}, {fleet}"


# --- 7a, child side: one process, THREADS callers on one Client -------------------------------


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


class Recorder(httpx.HTTPTransport):
    """The real transport, noting each distinct bearer token sent, 401s and refresh requests."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.first_sent: dict[str, float] = {}
        self.unauthorized = 0
        self.refreshes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/refresh"):
            with self._lock:
                self.refreshes += 1
        else:
            bearer = request.headers.get("authorization", "")
            if bearer and bearer not in self.first_sent:
                self.first_sent.setdefault(bearer, time.time())
        response = super().handle_request(request)
        if response.status_code == 401:
            with self._lock:
                self.unauthorized += 1
        return response

    def tokens(self) -> dict[str, list[Any]]:
        """jti -> [iat, exp, fam, first sent] (never the token itself)."""
        out: dict[str, list[Any]] = {}
        for bearer, first in self.first_sent.items():
            claims = _claims(bearer.removeprefix("Bearer "))
            out[claims["jti"]] = [claims["iat"], claims["exp"], claims["fam"], first]
        return out


def _window(client: nsdk.Client, recorder: Recorder, end: float, threads: int) -> dict[str, Any]:
    """Call ``me()`` from ``threads`` threads until ``end`` (Unix time); what was seen."""
    recorder.reset()
    calls = [0] * threads
    errors: list[str] = []

    def worker(i: int) -> None:
        n = 0
        while time.time() < end:
            try:
                client.me()
            except nsdk.NsdkError as exc:  # messages never carry tokens
                errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.01)  # a dead session fails fast: do not spin
            else:
                n += 1
        calls[i] = n

    cpu = time.process_time()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {
        "calls": sum(calls),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "unauthorized": recorder.unauthorized,
        "refreshes_sent": recorder.refreshes,
        "cpu_s": time.process_time() - cpu,
        "tokens": recorder.tokens(),
    }


def serve(url: str, threads: int, name: str, shared: Callable[[], Any]) -> None:
    """A fleet process: a client on ``shared()`` (windows ``name``) and an own-session client
    (windows "memory"); runs the windows the parent orders on stdin, answers on stdout."""
    clients: dict[str, tuple[nsdk.Client, Recorder]] = {}
    for store in (name, "memory"):
        recorder = Recorder()
        token_store = shared() if store == name else nsdk.MemoryTokenStore()
        client = nsdk.Client(url, token_store=token_store, refresh_leeway=0, transport=recorder)
        if store == "memory":
            client.login(email=EMAIL, password=PASSWORD)  # this process's own session
        # Warm-up, before any counter is reset: every thread's connection, caches (may refresh).
        _window(client, recorder, time.time() + WARM_UP, threads)
        clients[store] = (client, recorder)
    print("ready", flush=True)
    for line in sys.stdin:
        order = json.loads(line)
        if order.get("stop"):
            break
        client, recorder = clients[order["store"]]
        print(json.dumps(_window(client, recorder, order["end"], threads)), flush=True)
    for client, _ in clients.values():
        client.close()


def child(path: str, url: str, threads: int) -> None:
    """A 7a process: ``serve`` with a ``FileTokenStore`` at ``path``."""
    serve(url, threads, "file", lambda: nsdk.FileTokenStore(path))


# --- 7a, parent side --------------------------------------------------------------------------


def _readline(stream: IO[str], timeout: float) -> str:
    """One line from a child's stdout, or RuntimeError after ``timeout`` seconds."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        raise RuntimeError("a child process did not answer in time (or died); see its stderr")
    return box[0]


def _fresh(url: str, store: Any) -> bool:
    """Make sure the stored token has MIN_LEFT to live: else wait it out and refresh it.

    Returns False when the store holds no session (an earlier window or the warm-up lost it):
    the parent signs in again, and the children, whose clients saw the session end, fail the
    round's calls, which the figure reports.
    """
    tokens = store.read().tokens
    if tokens is None or tokens.expires_at is None:
        with nsdk.Client(url, token_store=store) as client:
            client.login(email=EMAIL, password=PASSWORD)
        return False
    left = tokens.expires_at - time.time()
    if left < MIN_LEFT:
        time.sleep(max(0.0, left) + 0.02)
        with nsdk.Client(url, token_store=store, refresh_leeway=0) as client:
            client.me()  # a proactive refresh, stored; the children adopt it
    return True


def expiries(tokens: dict[str, list[Any]], start: float, end: float) -> dict[str, int]:
    """The chain of the session's access tokens carried in a round: expiries, early refreshes."""
    chain = sorted(tokens.values(), key=lambda t: (t[0], t[3]))  # by iat, then first sent
    count = early = 0
    for i, (_iat, exp, _fam, _first) in enumerate(chain):
        successor = chain[i + 1] if i + 1 < len(chain) else None
        if successor is not None and successor[0] < exp:
            early += 1
        elif start < exp <= end:
            count += 1
    return {
        "expiries": count,
        "early": early,
        "tokens": len(chain),
        "families": len({t[2] for t in chain}),
        "before_start": sum(1 for t in chain if t[1] <= start),
    }


def _merge(results: list[dict[str, Any]]) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for result in results:
        for jti, (iat, exp, fam, first) in result["tokens"].items():
            if jti in merged:
                merged[jti][3] = min(merged[jti][3], first)
            else:
                merged[jti] = [iat, exp, fam, first]
    return merged


def _shared_rounds(
    handle: Any, rounds: int, durations: dict[str, float], shared: Shared
) -> list[dict[str, Any]]:
    """Run the fleet processes; one record per window (store, counts, rates, server counters)."""
    out: list[dict[str, Any]] = []
    store = shared.open("fleet")
    with nsdk.Client(handle.base_url, token_store=store) as client:
        client.login(email=EMAIL, password=PASSWORD)
    cmd = shared.child("fleet", handle.base_url)
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(shared.processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if _readline(proc.stdout, READY_TIMEOUT).strip() != "ready":
                raise RuntimeError("a child process did not start")
        for r in range(rounds):
            for name in rotate(shared.stores, r):
                fresh = name == shared.name
                out.append(_one_window(handle, procs, store if fresh else None, name, durations))
    finally:
        for proc in procs:
            if proc.poll() is None:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"stop": True}) + "\n")
                proc.stdin.flush()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return out


def _one_window(
    handle: Any,
    procs: list[subprocess.Popen[str]],
    shared: Any,
    store: str,
    durations: dict[str, float],
) -> dict[str, Any]:
    """One window of ``store``'s clients; ``shared`` is the shared store (None: own sessions)."""
    duration = durations[store]
    alive = _fresh(handle.base_url, shared) if shared is not None else True
    handle.reset_stats()
    start = time.time()
    end = math.floor(start + duration) + 0.5  # half-way between two whole-second exps
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"store": store, "end": end}) + "\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        assert proc.stdout is not None
        results.append(json.loads(_readline(proc.stdout, duration + 60)))
    stats = handle.stats()
    record: dict[str, Any] = {
        "store": store,
        "seconds": end - start,
        "session_alive_at_start": alive,
        "calls": sum(x["calls"] for x in results),
        "errors": sum(x["errors"] for x in results),
        "error_samples": sorted({e for x in results for e in x["error_samples"]})[:3],
        "unauthorized": sum(x["unauthorized"] for x in results),
        "refreshes_sent": [x["refreshes_sent"] for x in results],
        "cpu_s": sum(x["cpu_s"] for x in results),
        "server": {k: v for k, v in stats.items() if k != "requests"},
        "server_requests": stats.get("requests", {}),
    }
    record["calls_per_s"] = record["calls"] / record["seconds"]
    if shared is not None:
        record.update(expiries(_merge(results), start, end))
    return record


def _shared_rows(windows: list[dict[str, Any]], shared: Shared) -> list[Row]:
    label = shared.label
    files = [w for w in windows if w["store"] == shared.name]
    mems = [w for w in windows if w["store"] == "memory"]
    per = [
        w["server"]["refresh_requests"] / w["expiries"] if w["expiries"] else math.inf
        for w in files
    ]
    clean = all(
        w["server"]["refresh_requests"] == w["server"]["refresh_ok"]
        and w["server"]["replays"] == 0
        and w["server"]["refresh_presented_max"] <= 1
        and w["errors"] == 0
        and w["early"] == 0
        and w["families"] == 1
        and w["session_alive_at_start"]
        for w in files
    )
    count_row = Row(
        figure=f"{label}: refresh requests per expiry",
        unit="req",
        nsdk=Stat.of(per),
        target="== 1 each",
        extra={"windows": windows},
    ).judge(all(p == 1 for p in per) and clean)
    count_row.note = (
        f"{len(files)} rounds of {files[0]['seconds']:.1f}-{files[-1]['seconds']:.1f} s; "
        "expiries (session tokens whose exp passed in the round) per round: "
        + ", ".join(str(w["expiries"]) for w in files)
        + "; refresh requests: "
        + ", ".join(str(w["server"]["refresh_requests"]) for w in files)
        + f"; rotated: {sum(w['server']['refresh_ok'] for w in files)}"
        f"; early refreshes: {sum(w['early'] for w in files)}"
        f"; token families: {max(w['families'] for w in files)}"
        f"; 401s answered by adopting or refreshing: {sum(w['unauthorized'] for w in files)}"
    )
    bad = [
        float(w["server"]["replays"] + w["server"]["refresh_failed"] + w["errors"]) for w in files
    ]
    replay_row = Row(
        figure=f"{label}: replays + refused refreshes + failed calls",
        unit="events",
        nsdk=Stat.of(bad),
        target="0 each",
    ).judge(all(b == 0 for b in bad))
    replay_row.note = (
        f"replays {sum(w['server']['replays'] for w in files)}, refused refreshes "
        f"{sum(w['server']['refresh_failed'] for w in files)}, failed calls "
        f"{sum(w['errors'] for w in files)}, most presentations of one refresh token "
        f"{max(w['server']['refresh_presented_max'] for w in files)}, rounds that began "
        f"with the session lost: {sum(not w['session_alive_at_start'] for w in files)}"
        + (f"; e.g. {files[0]['error_samples']}" if any(w["errors"] for w in files) else "")
    )
    rate_file = [w["calls_per_s"] for w in files]
    rate_mem = [w["calls_per_s"] for w in mems]
    rate_row = Row.versus(
        f"{label}: me() calls/s vs a MemoryTokenStore session per process",
        "calls/s",
        rate_file,
        rate_mem,
        "own sessions",
    )
    mem_refreshes = [w["server"]["refresh_requests"] for w in mems]
    rate_row.note = (
        f"own-session windows of {mems[0]['seconds']:.1f}-{mems[-1]['seconds']:.1f} s sent "
        f"{', '.join(str(x) for x in mem_refreshes)} refresh requests ({shared.processes} "
        "sessions), "
        f"had {sum(w['unauthorized'] for w in mems)} 401s and "
        f"{sum(w['errors'] for w in mems)} failed calls"
    )
    return [count_row, replay_row, rate_row]


# --- 7b: per-call overhead, FileTokenStore vs MemoryTokenStore ---------------------------------


class Counting:
    """Counts every call of the store primitives; put it before a store class in the bases."""

    calls = 0
    counted = "read, compare_and_set, refresh_lock"

    def read(self) -> Any:
        self.calls += 1
        return super().read()

    def compare_and_set(self, expected: int, new: Any, lease: object | None = None) -> bool:
        self.calls += 1
        return bool(super().compare_and_set(expected, new, lease))

    def refresh_lock(self) -> Any:
        self.calls += 1
        return super().refresh_lock()


class CountingFileStore(Counting, nsdk.FileTokenStore):
    """A FileTokenStore that counts every call of the three store primitives."""


Samples = dict[str, dict[str, list[float]]]  # "wall" / "cpu" -> store -> us per call
# samples, store calls during the measured calls, measured calls, which primitives were counted
Measured = tuple[Samples, int, int, str]


def _empty(stores: tuple[str, ...]) -> Samples:
    return {"wall": {k: [] for k in stores}, "cpu": {k: [] for k in stores}}


def _sync(url: str, canned: bool, shared: Shared, part: str, rounds: int, n: int) -> Measured:
    """Sync ``me()`` with ``shared.open(part)`` and with a memory store, rounds alternating."""
    counted = shared.open(part)
    stores = {shared.name: counted, "memory": nsdk.MemoryTokenStore()}
    clients = {
        k: nsdk.Client(url, token_store=s, transport=CannedTransport() if canned else None)
        for k, s in stores.items()
    }
    samples = _empty(shared.stores)
    try:
        for client in clients.values():
            client.login(email=EMAIL, password=PASSWORD)
            per_call_us(client.me, max(10, n // 10))  # warm-up
        counted.calls = 0
        for r in range(rounds):
            for name in rotate(shared.stores, r):
                wall, cpu = per_call_us(clients[name].me, n)
                samples["wall"][name].append(wall)
                samples["cpu"][name].append(cpu)
    finally:
        for client in clients.values():
            client.close()
    return samples, counted.calls, rounds * n, counted.counted


async def _async(shared: Shared, rounds: int, n: int) -> Measured:
    """Async ``me()`` on the canned transport with each store (as ``_sync``)."""
    counted = shared.open("async")
    stores = {shared.name: counted, "memory": nsdk.MemoryTokenStore()}
    clients = {
        k: nsdk.AsyncClient(BASE_URL, token_store=s, transport=AsyncCannedTransport())
        for k, s in stores.items()
    }
    samples = _empty(shared.stores)
    fns: dict[str, Callable[[], Awaitable[object]]] = {k: c.me for k, c in clients.items()}
    try:
        for name, client in clients.items():
            await client.login(email=EMAIL, password=PASSWORD)
            await per_call_us_async(fns[name], max(10, n // 10))
        counted.calls = 0
        for r in range(rounds):
            for name in rotate(shared.stores, r):
                wall, cpu = await per_call_us_async(fns[name], n)
                samples["wall"][name].append(wall)
                samples["cpu"][name].append(cpu)
    finally:
        for client in clients.values():
            await client.aclose()
    return samples, counted.calls, rounds * n, counted.counted


def _overhead_row(
    setting: str,
    measured: Measured,
    clock: str,
    target: float | None,
    shared: Shared,
) -> Row:
    samples, store_calls, calls, counted = measured
    main, other = samples[clock], samples["cpu" if clock == "wall" else "wall"]
    row = Row.versus(
        f"{shared.figure} {setting}: me() with {shared.title} vs MemoryTokenStore ({clock})",
        "us/call",
        main[shared.name],
        main["memory"],
        "memory store",
        extra={"samples_us": samples, "store_calls": store_calls, "calls": calls},
    )
    other_ratio = Stat.of(ratios(other[shared.name], other["memory"])).median
    row.note = (
        f"store calls ({counted}) during the "
        f"{calls:,} measured me() calls on the {shared.title}: {store_calls}; "
        f"the {'wall' if clock == 'cpu' else 'CPU'}-time ratio is {other_ratio:.3f}x"
    )
    if target is not None:
        row.target = f"<= {target:.2f}x"
        assert row.ratio is not None
        row.judge(row.ratio.median <= target and store_calls == 0)
    return row


def overhead_rows(shared: Shared, quick: bool) -> list[Row]:
    """7b: per-call overhead of ``me()`` with ``shared``'s store vs the memory store."""
    rounds, n = (5, 300) if quick else (21, 1000)
    lb_rounds, lb_n = (3, 100) if quick else (9, 300)
    in_sync = _sync(BASE_URL, True, shared, "sync", rounds, n)
    rows = [_overhead_row("in-process sync", in_sync, "cpu", OVERHEAD_TARGET, shared)]
    in_async = asyncio.run(_async(shared, rounds, n))
    rows.append(_overhead_row("in-process async", in_async, "cpu", OVERHEAD_TARGET, shared))
    with server() as handle:
        lb = _sync(handle.base_url, False, shared, "loopback", lb_rounds, lb_n)
        rows.append(_overhead_row("loopback sync", lb, "wall", None, shared))
    return rows


def fleet_rows(shared: Shared, quick: bool) -> list[Row]:
    """7a: refresh requests per expiry of ``shared``'s fleet on one session, and its call rate."""
    rounds = 1 if quick else 3
    durations = {shared.name: 4.0 if quick else 10.0, "memory": 3.0 if quick else 5.0}
    with server(access_ttl=ACCESS_TTL) as handle:
        windows = _shared_rounds(handle, rounds, durations, shared)
    return _shared_rows(windows, shared)


def run(quick: bool = False, **_: Any) -> list[Row]:
    """Figure 7: 7b (per-call overhead), then 7a (8 processes x 8 threads, one session)."""
    with tempfile.TemporaryDirectory(prefix="nsdk-bench-sharing-") as name:
        tmp = Path(name)

        def command(part: str, url: str) -> list[str]:
            path = str(tmp / part / "session.json")
            return [sys.executable, __file__, "--child", path, url, str(THREADS)]

        shared = Shared(
            figure="7",
            name="file",
            title="FileTokenStore",
            processes=PROCESSES,
            threads=THREADS,
            open=lambda part: CountingFileStore(tmp / part / "session.json"),
            child=command,
        )
        rows = overhead_rows(shared, quick)
        return fleet_rows(shared, quick) + rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        print("usage: python bench/run.py --only sharing", file=sys.stderr)
        raise SystemExit(2)
