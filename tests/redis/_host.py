"""A "host" of the fleet tests: one process of many sharing a session in one ``RedisTokenStore``.

Run by ``test_redis_fleet.Hosts`` as ``python _host.py MODE --redis-url URL --key KEY
--base-url URL ...``:

* ``threads``: one ``nsdk.Client``, ``--workers`` threads calling ``me()`` for ``--seconds``.
* ``tasks``: one ``nsdk.AsyncClient``, ``--workers`` asyncio tasks calling ``me()`` likewise.
  In both, ``--skew S`` gives the client a clock S seconds off (``clock=``), and ``--watch``
  adds the outage script: on the parent's ``DIR/down`` the host forces a ``refresh()`` (Redis
  is down), creates ``DIR/NAME.down``; on ``DIR/up`` it forces one again (Redis is back),
  creates ``DIR/NAME.up``; on ``DIR/end`` the workers stop. Calls are counted by phase (before,
  down, up: a call counts in a phase only if it started and ended in it).
* ``victim``: wait until the stored access token has expired, call ``me()`` (so this host takes
  the lease and refreshes) and SIGKILL itself at ``--kill-at``: ``before_send`` (the refresh
  request is about to leave), ``after_rotate`` (the server answered, nothing was stored) or
  ``after_store`` (the new pair is stored, the lease still held: it expires by Redis's TTL).
* ``steps``: the client calls of ``--steps`` (e.g. ``me,refresh,me``) in order, stopping at the
  first error, each timed. ``--no-extend`` turns off the lease's extension, which is how a host
  paused past its lease is simulated while it waits for a delayed refresh answer.

Every host's store is a ``HostStore``: it logs when each lease was asked for, taken and left,
and each compare-and-set (kind, generation, outcome), all as Unix times, so the parent can
measure takeovers across processes. Reports end with the client's final state: its state, the
store generation it holds and a SHA-256 prefix of its access token (never the token).

With ``--barrier DIR --name NAME`` a host starts (imports), creates ``DIR/NAME.started`` and waits
for ``DIR/open`` before it builds its client (which reads the store), then creates
``DIR/NAME.ready`` and waits for
``DIR/go-NAME`` before calling anything. Every mode but a killed victim prints one JSON report on
stdout. The suite's secret ledger (``tests/_secret_scan.py``) runs here too: the report's
``leaks`` lists the origin of every text of this process (log records, exception texts, the
report itself) that holds a token or the password; the tests require it empty.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the secret ledger

import _secret_scan
import httpx
import nsdk

KILL_POINTS = ("before_send", "after_rotate", "after_store")
BARRIER_TIMEOUT = 60.0
FLAG_POLL = 0.005  # seconds between looks for a flag file


def die() -> None:
    """End this process the hard way: no cleanup, no lease released, no output."""
    os.kill(os.getpid(), signal.SIGKILL)


def digest(tokens: nsdk.Tokens | None) -> str | None:
    """A SHA-256 prefix of an access token: enough to compare hosts, useless to an attacker."""
    if tokens is None:
        return None
    return hashlib.sha256(tokens.access_token.encode()).hexdigest()[:16]


class KillingTransport(httpx.BaseTransport):
    """Forwards to httpx's transport; dies around the refresh request (``before_send``...)."""

    def __init__(self, point: str) -> None:
        self._point = point
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        refresh = request.method == "POST" and request.url.path == "/api/auth/refresh"
        if refresh and self._point == "before_send":
            die()
        response = self._inner.handle_request(request)
        if refresh and self._point == "after_rotate":
            response.read()
            if response.status_code == 200:  # the server rotated: the answer dies with us
                die()
        return response

    def close(self) -> None:
        self._inner.close()


class HostStore(nsdk.RedisTokenStore):
    """A ``RedisTokenStore`` that logs its leases and writes; optionally paused or killed.

    ``extend=False``: the lease is never extended, so it expires ``lease_ttl`` after it was
    taken even though its holder is alive (what a process paused for longer than the lease
    would see). ``die_after_store``: SIGKILL right after storing a rotated pair, lease held.
    """

    def __init__(
        self, args: argparse.Namespace, *, extend: bool = True, die_after_store: bool = False
    ) -> None:
        super().__init__(
            args.redis_url,
            key=args.key,
            lock_timeout=args.lock_timeout,
            lease_ttl=args.lease_ttl,
            socket_timeout=args.socket_timeout,
        )
        self._extend_lease = extend
        self._die_after_store = die_after_store
        self._log = threading.Lock()
        self.leases: list[dict[str, float | None]] = []  # asked, got, left (Unix times)
        self.writes: list[dict[str, Any]] = []  # at, kind, expected, written, leased

    @contextlib.contextmanager
    def _timed_lease(self) -> Generator[object]:
        asked = time.time()
        with super().refresh_lock() as lease:
            entry: dict[str, float | None] = {"asked": asked, "got": time.time(), "left": None}
            with self._log:
                self.leases.append(entry)
            try:
                yield lease
            finally:
                entry["left"] = time.time()

    def refresh_lock(self) -> contextlib.AbstractContextManager[object]:
        """The lease, timed (see ``leases``)."""
        return self._timed_lease()

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> bool:
        """The store's compare-and-set, logged; with ``die_after_store``, dies after a rotation."""
        before = self.read().tokens if self._die_after_store else None
        written = super().compare_and_set(expected, new, lease)
        # "pair": a rotated pair (or, on a refresh that never left, the pair without its record).
        kind = "record" if new.refreshing else ("pair" if new.tokens is not None else "clear")
        with self._log:
            self.writes.append(
                {
                    "at": time.time(),
                    "kind": kind,
                    "expected": expected,
                    "written": written,
                    "leased": lease is not None,
                }
            )
        rotated = new.tokens is not None and new.tokens != before and new.refreshing is None
        if self._die_after_store and written and rotated:
            die()
        return written

    def _keep(self, owner: str, ttl_ms: int, stop: threading.Event) -> None:
        # The store's lease keeper (a thread while the lease is held): skipping it is the pause.
        if self._extend_lease:
            super()._keep(owner, ttl_ms, stop)  # pyright: ignore[reportPrivateUsage]


def wait_for(args: argparse.Namespace, flag: str, timeout: float = BARRIER_TIMEOUT) -> bool:
    """Wait until the parent creates ``DIR/flag``; False on timeout (True without a barrier)."""
    if args.barrier is None:
        return True
    deadline = time.monotonic() + timeout
    while not (Path(args.barrier) / flag).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(FLAG_POLL)
    return True


def must_wait_for(args: argparse.Namespace, flag: str) -> None:
    """``wait_for`` the barrier's flag, or exit saying which flag never came."""
    if not wait_for(args, flag):
        raise SystemExit(f"{args.name}: no {flag!r} within {BARRIER_TIMEOUT:g} s")


def ready_then_go(args: argparse.Namespace) -> None:
    """Say this host built its client, then wait for its go (no-op without ``--barrier``)."""
    if args.barrier is not None:
        (Path(args.barrier) / f"{args.name}.ready").touch()
        must_wait_for(args, f"go-{args.name}")


def flag(args: argparse.Namespace, what: str) -> None:
    """Create ``DIR/NAME.what``: tell the parent this host did ``what``."""
    if args.barrier is not None:
        (Path(args.barrier) / f"{args.name}.{what}").touch()


def client_options(
    args: argparse.Namespace, store: nsdk.RedisTokenStore, refreshes: list[list[float | None]]
) -> dict[str, Any]:
    """Options every client here shares: the store, reactive refresh at ``exp``, reuse, clock."""

    def refreshed(tokens: nsdk.Tokens) -> None:
        # The token's claims only (iat, exp): never the token.
        refreshes.append([tokens.issued_at, tokens.expires_at])

    skew = args.skew
    return {
        "token_store": store,
        "refresh_leeway": 0,
        "refresh_reuse_interval": args.reuse,
        "on_tokens_refreshed": refreshed,
        "clock": (lambda: time.time() + skew) if skew else None,
    }


def final_state(client: nsdk.Client | nsdk.AsyncClient) -> dict[str, Any]:
    """The client's state, the store generation it holds, a digest of its access token."""
    core = client._config.core  # pyright: ignore[reportPrivateUsage]
    try:
        tokens: nsdk.Tokens | None = core.current()
    except nsdk.NsdkError:
        tokens = None
    return {"state": client.state.value, "generation": core.generation, "digest": digest(tokens)}


def clock_error(client: nsdk.Client | nsdk.AsyncClient) -> float:
    """How far the client's idea of now (its clock, corrected by the store's) is from the truth."""
    return client._config.core.now() - time.time()  # pyright: ignore[reportPrivateUsage]


class Tally:
    """Calls and errors of the workers, by phase (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phase = "before"  # changed by the outage watcher only
        self.calls = 0
        self.by_phase: collections.Counter[str] = collections.Counter()
        self.slowest = 0.0  # the longest call (seconds): a machine too busy shows here first
        self.last_ended = 0.0  # when the last call ended (Unix time)
        self.loop_lag = 0.0  # the event loop's longest lateness (seconds; tasks mode only)
        self.errors: collections.Counter[str] = collections.Counter()
        self.messages: dict[str, str] = {}

    def ended(self, start: float, phase: str, exc: Exception | None = None) -> None:
        """Count a call that started at ``start`` (monotonic) in ``phase``, failed with ``exc``."""
        with self._lock:
            self.calls += 1
            self.by_phase[phase if phase == self.phase else "across"] += 1
            self.slowest = max(self.slowest, time.monotonic() - start)
            self.last_ended = max(self.last_ended, time.time())
            if exc is None:
                return
            name = type(exc).__name__
            self.errors[f"{name} ({phase})"] += 1
            if name not in self.messages:
                self.messages[name] = str(exc)
                _secret_scan.LEDGER.exception(exc)


def attempt(force: Callable[[], object], client: nsdk.Client | nsdk.AsyncClient) -> dict[str, Any]:
    """Call ``force`` (a client call); its outcome, duration and the client's state after it."""
    start = time.monotonic()
    error: Exception | None = None
    try:
        force()
    except Exception as exc:  # reported: the test says which are expected
        _secret_scan.LEDGER.exception(exc)
        error = exc
    return {
        "error": None if error is None else type(error).__name__,
        "message": None if error is None else str(error),
        "seconds": time.monotonic() - start,
        "state": client.state.value,
    }


def watch_outage(
    args: argparse.Namespace,
    tally: Tally,
    stop: threading.Event,
    force: Callable[[], object],
    client: nsdk.Client | nsdk.AsyncClient,
    forced: dict[str, dict[str, Any]],
) -> None:
    """The outage script (``--watch``): force a refresh at ``down`` and at ``up``, stop at ``end``.

    Runs in a thread of its own, beside the workers; every wait is bounded by ``--seconds``.
    """
    try:
        for phase in ("down", "up"):
            if not wait_for(args, phase, args.seconds):
                return
            tally.phase = phase
            forced[phase] = attempt(force, client)
            flag(args, phase)
        wait_for(args, "end", args.seconds)
    finally:
        stop.set()


def load_report(
    tally: Tally,
    refreshes: list[list[float | None]],
    started: float,
    store: HostStore,
    forced: dict[str, dict[str, Any]],
    final: dict[str, Any],
) -> dict[str, Any]:
    """What a load host reports: calls, errors, its rotations' (iat, exp), its window."""
    return {
        "calls": tally.calls,
        "by_phase": dict(tally.by_phase),
        "slowest": tally.slowest,
        "loop_lag": tally.loop_lag,
        "errors": dict(tally.errors),
        "messages": tally.messages,
        "refreshes": refreshes,
        "started": started,
        "ended": tally.last_ended,
        "forced": forced,
        "leases": store.leases,
        "final": final,
    }


def run_threads(args: argparse.Namespace) -> dict[str, Any]:
    """``--workers`` threads share one ``nsdk.Client``; each calls ``me()`` until the end."""
    refreshes: list[list[float | None]] = []
    forced: dict[str, dict[str, Any]] = {}
    tally = Tally()
    must_wait_for(args, "open")
    store = HostStore(args)
    client = nsdk.Client(args.base_url, **client_options(args, store, refreshes))
    ready_then_go(args)
    started = time.time()
    deadline = time.monotonic() + args.seconds
    stop = threading.Event()

    def work() -> None:
        rng = random.Random()
        time.sleep(rng.uniform(0, args.pause))  # the workers' calls out of step from the start
        while not stop.is_set() and (start := time.monotonic()) < deadline:
            phase = tally.phase
            try:
                client.me()
            except Exception as exc:  # counted: the tests require none
                tally.ended(start, phase, exc)
            else:
                tally.ended(start, phase)
            time.sleep(min(args.pause, max(0.0, deadline - time.monotonic())))

    threads = [threading.Thread(target=work) for _ in range(args.workers)]
    if args.watch:
        watcher = (args, tally, stop, client.refresh, client, forced)
        threads.append(threading.Thread(target=watch_outage, args=watcher))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = {**final_state(client), "clock_error": clock_error(client)}
    client.close()
    return load_report(tally, refreshes, started, store, forced, final)


def run_tasks(args: argparse.Namespace) -> dict[str, Any]:
    """``--workers`` asyncio tasks share one ``nsdk.AsyncClient``; each calls ``me()``."""
    refreshes: list[list[float | None]] = []
    forced: dict[str, dict[str, Any]] = {}
    tally = Tally()
    store: HostStore | None = None

    async def main() -> tuple[float, dict[str, Any]]:
        nonlocal store
        store = HostStore(args)
        client = nsdk.AsyncClient(args.base_url, **client_options(args, store, refreshes))
        await asyncio.to_thread(ready_then_go, args)
        started = time.time()
        deadline = time.monotonic() + args.seconds
        stop = threading.Event()
        loop = asyncio.get_running_loop()

        async def work() -> None:
            rng = random.Random()
            await asyncio.sleep(rng.uniform(0, args.pause))  # out of step from the start
            while not stop.is_set() and (start := time.monotonic()) < deadline:
                phase = tally.phase
                try:
                    await client.me()
                except Exception as exc:  # counted: the tests require none
                    tally.ended(start, phase, exc)
                else:
                    tally.ended(start, phase)
                await asyncio.sleep(min(args.pause, max(0.0, deadline - time.monotonic())))

        def force() -> object:
            # From the watcher's thread: the refresh runs on the loop, like any task's call.
            return asyncio.run_coroutine_threadsafe(client.refresh(), loop).result()

        async def lag() -> None:
            # How late the loop wakes a sleeper: above a second, the process was starved of CPU.
            while not stop.is_set() and time.monotonic() < deadline:
                start = time.monotonic()
                await asyncio.sleep(0.1)
                tally.loop_lag = max(tally.loop_lag, time.monotonic() - start - 0.1)

        lagging = asyncio.create_task(lag())
        # A thread of its own, not the loop's executor: the client's store calls need those.
        watcher = threading.Thread(
            target=watch_outage, args=(args, tally, stop, force, client, forced)
        )
        if args.watch:
            watcher.start()
        await asyncio.gather(*(work() for _ in range(args.workers)))
        if args.watch:
            await asyncio.to_thread(watcher.join)
        await lagging
        final = {**final_state(client), "clock_error": clock_error(client)}
        await client.aclose()
        return started, final

    must_wait_for(args, "open")
    started, final = asyncio.run(main())
    assert store is not None
    return load_report(tally, refreshes, started, store, forced, final)


def run_victim(args: argparse.Namespace) -> dict[str, Any]:
    """Refresh the stored pair once its access token expired, and die at ``--kill-at``."""
    refreshes: list[list[float | None]] = []
    store = HostStore(args, die_after_store=args.kill_at == "after_store")
    options = client_options(args, store, refreshes)
    if args.kill_at != "after_store":
        options["transport"] = KillingTransport(args.kill_at)
    stored = store.read().tokens
    if stored is None or stored.expires_at is None:
        raise SystemExit("victim: the store holds no JWT pair")
    while time.time() < stored.expires_at:  # reactive refresh, and the peers' token expired too
        time.sleep(0.01)
    with nsdk.Client(args.base_url, **options) as client:
        client.me()  # the proactive refresh of the expired token: dies inside it
    return {"survived": True, "refreshes": refreshes}  # the kill point was never reached


def run_steps(args: argparse.Namespace) -> dict[str, Any]:
    """The calls of ``--steps`` in order, up to the first error; each step with its outcome."""
    refreshes: list[list[float | None]] = []
    steps: list[dict[str, Any]] = []
    must_wait_for(args, "open")
    store = HostStore(args, extend=not args.no_extend)
    with nsdk.Client(args.base_url, **client_options(args, store, refreshes)) as client:
        ready_then_go(args)
        for name in args.steps.split(","):
            outcome = {
                "step": name,
                "started": time.time(),
                **attempt(getattr(client, name), client),
            }
            steps.append(outcome)
            if outcome["error"] is not None:
                break
        final = final_state(client)
    return {
        "steps": steps,
        "refreshes": refreshes,
        "leases": store.leases,
        "writes": store.writes,
        "final": final,
    }


def leaks(report: dict[str, Any]) -> list[str]:
    """Origins of this process's texts (the report's included) that hold a secret."""
    ledger = _secret_scan.LEDGER
    ledger.text("report", json.dumps(report))
    secrets = sorted(ledger.secrets)  # the workers have stopped: nothing changes any more
    texts = {text: origin for origin, text in ledger.texts}  # many log lines repeat
    return sorted({origin for text, origin in texts.items() if any(s in text for s in secrets)})


def parse(argv: Iterable[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("threads", "tasks", "victim", "steps"))
    parser.add_argument("--redis-url", required=True)  # the tests' servers have no password
    parser.add_argument("--key", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--pause", type=float, default=0.02)
    parser.add_argument("--reuse", type=float, default=0.0)
    parser.add_argument("--skew", type=float, default=0.0)
    parser.add_argument("--lock-timeout", type=float, default=30.0)
    parser.add_argument("--lease-ttl", type=float, default=20.0)
    parser.add_argument("--socket-timeout", type=float, default=2.0)
    parser.add_argument("--kill-at", choices=KILL_POINTS)
    parser.add_argument("--steps", default="me,refresh,me")
    parser.add_argument("--no-extend", action="store_true")
    parser.add_argument("--watch", action="store_true")
    parser.add_argument("--barrier")
    parser.add_argument("--name", default="host")
    return parser.parse_args(None if argv is None else list(argv))


def main() -> None:
    """Parse the arguments, run the mode, print the report."""
    args = parse()
    _secret_scan._install()  # the suite's hooks: every Tokens, log record and nsdk error
    flag(args, "started")  # imports done: from here on this host answers within milliseconds
    run = {"threads": run_threads, "tasks": run_tasks, "victim": run_victim, "steps": run_steps}
    report = run[args.mode](args)
    report["name"] = args.name
    report["leaks"] = leaks(report)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
