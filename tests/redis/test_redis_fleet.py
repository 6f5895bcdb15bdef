"""A fleet of "hosts" (processes, see ``_host.py``) sharing one session in one ``RedisTokenStore``.

Everything is real and on loopback: a ``redis-server`` per test (``tests/redis/conftest.py``), the
reference server as a subprocess, and the hosts as processes that only share Redis (and the
system clock, which two of them are told is 5 minutes off). Four scenarios:

* Load: 3 hosts x 16 threads and 1 host x 100 asyncio tasks call ``me()`` for
  ``NSDK_FLEET_SECONDS`` (default 30) with access tokens that expire every 1-2 s. The chain of
  access tokens (the login's, then every rotation any host made) shows exactly one refresh per
  expiry, none early, and the server saw no refresh token twice.
* SIGKILL: the lease holder dies before its refresh leaves, after the server rotated, or after
  storing the new pair; its lease (1 s) outlives it and expires by Redis's TTL, then one of the
  peers waiting for it takes over. The reuse interval decides whether the session survives a
  lost pair (above 0) or fails closed (0); no refresh token is ever presented twice outside it.
* A refresh answer delayed (server fault) past the holder's lease, the holder alive but its lease
  not extended (a pause): a peer takes the lease over, the late write is fenced off, the server
  rotates once, and every host ends on the same generation.
* Redis stopped for 5 s under load and restarted (AOF): valid access tokens keep working, a
  forced refresh fails with ``TokenStoreUnavailableError`` without reaching the server, and
  afterwards the fleet carries on without a new login.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import nsdk
import pytest
from _secret_scan import LEDGER
from nsdk_server.testing import ServerHandle, run_server

RedisServer = Any  # the handle of tests/redis/conftest.py (a conftest is not importable)

EMAIL = "user@example.com"
PASSWORD = "demo-password"  # the reference server's documented demo user
HOST = Path(__file__).resolve().parent / "_host.py"
KEY = "fleet:session"

#: Every server here: tokens that expire within 1-2 s, faults and counters on, no login limits.
SERVER_DEFAULTS: dict[str, Any] = {
    "access_ttl": 1,
    "faults": True,
    "scrypt_n": 2**12,
    "login_account_rate": None,
    "login_address_rate": None,
}

#: How long hosts may take to start (import nsdk, build a client), and to finish their work.
START_TIMEOUT = 60.0
FINISH_TIMEOUT = 120.0

SECONDS = float(os.environ.get("NSDK_FLEET_SECONDS", "30"))
#: Each worker's pause between calls (seconds). As in tests/sharing/test_processes.py, the load
#: must stay below what two busy cores serve, or calls queue for longer than a token lives
#: (1-2 s) and fail whatever the SDK does; here the two shells also compete for the CPU in one
#: run, and the asyncio host loses: with 48 threads x 20 ms beside it, its calls took up to
#: 15 s and some failed with AuthenticationError after their resends, while the threads' stayed
#: under 1 s (a bare httpx.AsyncClient there is as slow: not nsdk's doing). 48 threads x 100 ms
#: and 100 tasks x 3 s offer ~500 calls/s and measured ~460/s with every call under 0.5 s on a
#: 2-core machine that other jobs kept at a load of 7. Every expiry still meets dozens of
#: callers on every host.
PAUSE = {"threads": 0.1, "tasks": 3.0}
#: (name, mode, workers, clock skew in seconds): two hosts 5 minutes off, one per shell.
FLEET = (
    ("threads-1", "threads", 16, 0.0),
    ("threads-ahead", "threads", 16, 300.0),
    ("threads-3", "threads", 16, 0.0),
    ("tasks-behind", "tasks", 100, -300.0),
)

#: How close every host's corrected clock must be to the true time (seconds): its offset is
#: measured over one Redis round trip.
CLOCK_AGREEMENT = 0.5

#: The lease of the SIGKILL and delayed-answer scenarios: short, so a takeover is quick.
LEASE_TTL = 1.0
#: How late a takeover may come after the lease expired: the waiter's backoff (at most 0.1 s)
#: plus scheduling on a busy machine.
TAKEOVER_SLACK = 0.5
#: Our Unix time against Redis's expiry of the lease (same clock, read a moment apart).
CLOCK_TOLERANCE = 0.05
KILL_POINTS = ("before_send", "after_rotate", "after_store")
PEERS = ("peer-1", "peer-2", "peer-3")
#: A peer's lease wait gives up (TokenStoreBusyError) after this; a dead holder must not cost it.
PEER_LOCK_TIMEOUT = 10.0
#: The stated bound on any peer call after the holder died, failing closed included (seconds).
STEP_BOUND = 5.0

#: The server holds the delayed refresh this long before rotating: past the paused lease.
ANSWER_DELAY = 2.5

#: The outage: load with Redis up, Redis down for OUTAGE, load with Redis back (seconds).
BEFORE_OUTAGE, OUTAGE, AFTER_OUTAGE = 2.0, 5.0, 1.0
#: (name, mode, workers, pause): tokens live 30 s here; the pace keeps calls in flight throughout.
OUTAGE_HOSTS = (
    ("threads-1", "threads", 16, 0.05),
    ("threads-2", "threads", 16, 0.05),
    ("tasks-1", "tasks", 50, 1.0),
)
#: A forced refresh with Redis down must fail at once (connection refused), not hang.
UNAVAILABLE_BOUND = 1.0


# -- fixtures ---------------------------------------------------------------------------------


class Servers:
    """The reference servers of this module, one per set of options."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._running: dict[tuple[tuple[str, Any], ...], ServerHandle] = {}
        self._logged: dict[ServerHandle, int] = {}

    def get(self, **options: Any) -> ServerHandle:
        """The server with SERVER_DEFAULTS and ``options``: no queued faults, counters zeroed."""
        merged = {**SERVER_DEFAULTS, **options}
        key = tuple(sorted(merged.items()))
        if key not in self._running:
            self._running[key] = self._stack.enter_context(run_server(**merged))
        handle = self._running[key]
        handle.reset()
        return handle

    def log_to_ledger(self) -> None:
        """Hand what the servers logged since the last call to the secret ledger."""
        for handle in self._running.values():
            text = handle.logs()
            LEDGER.text(f"server log {handle.base_url}", text[self._logged.get(handle, 0) :])
            self._logged[handle] = len(text)


@pytest.fixture(scope="module")
def _servers() -> Iterator[Servers]:
    with contextlib.ExitStack() as stack:
        yield Servers(stack)


@pytest.fixture
def api_server(_servers: Servers) -> Iterator[Callable[..., ServerHandle]]:
    """``(**options) -> ServerHandle``: a reference server of this module (see ``Servers.get``)."""
    yield _servers.get
    _servers.log_to_ledger()  # per test: the suite's scan runs before module teardown


class Hosts:
    """``_host.py`` processes of one test, a file barrier, and their reports."""

    def __init__(self, workdir: Path) -> None:
        self.barrier = workdir / "barrier"
        self.barrier.mkdir(mode=0o700)
        self.processes: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, mode: str, *args: str, barrier: bool = True) -> None:
        """Start ``_host.py MODE ARGS`` as ``name``; with ``barrier``, it waits for the parent.

        A host under the barrier reads nothing from the store before ``open()``, and calls
        nothing before ``release(name)`` (``go`` does both).
        """
        command = [sys.executable, str(HOST), mode, "--name", name, *args]
        if barrier:
            command += ["--barrier", str(self.barrier)]
        self.processes[name] = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def signal(self, flag: str) -> None:
        """Create ``DIR/flag`` (``open``, ``down``, ``up``, ``end``: see ``_host.py``)."""
        (self.barrier / flag).touch()

    def open(self) -> None:
        """Let the hosts read the store and build their clients."""
        self.signal("open")

    def wait_flags(self, names: tuple[str, ...] | list[str], what: str) -> None:
        """Wait until every host of ``names`` created ``DIR/NAME.what``."""
        deadline = time.monotonic() + START_TIMEOUT
        while not all((self.barrier / f"{name}.{what}").exists() for name in names):
            died = [n for n in names if self.processes[n].poll() is not None]
            assert not died, f"hosts exited before {what!r}: {died}"
            assert time.monotonic() < deadline, f"hosts not {what!r} in {START_TIMEOUT:g} s"
            time.sleep(0.005)

    def release(self, *names: str) -> None:
        """Let ``names`` (built, ready) start calling."""
        for name in names:
            self.signal(f"go-{name}")

    def go(self, *names: str) -> None:
        """Open, wait until ``names`` have built their clients, then release them all at once."""
        self.open()
        self.wait_flags(names, "ready")
        self.release(*names)

    def wait(self, name: str) -> tuple[int, dict[str, Any] | None]:
        """Wait for ``name`` to exit; return its exit code and its report (None if it printed none).

        Its output goes to the secret ledger; a report listing leaks fails the test.
        """
        process = self.processes[name]
        out, err = process.communicate(timeout=FINISH_TIMEOUT)
        LEDGER.text(f"host {name} stdout", out)
        LEDGER.text(f"host {name} stderr", err)
        lines = out.strip().splitlines()
        report: dict[str, Any] | None = json.loads(lines[-1]) if lines else None
        if report is not None:
            assert report["leaks"] == [], f"{name}: a secret in {report['leaks']}"
        elif process.returncode != -signal.SIGKILL:
            # No report and not killed on purpose: say why (stderr holds no secret: scanned).
            pytest.fail(f"host {name} exited {process.returncode} without a report:\n{err}")
        return process.returncode, report

    def report(self, name: str) -> dict[str, Any]:
        """Wait for ``name``, which must exit 0 with a report; return the report."""
        code, report = self.wait(name)
        assert code == 0 and report is not None, f"host {name} exited {code}"
        return report

    def kill_all(self) -> None:
        """Kill the hosts still running (a failed test must not leave them behind)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    """The ``_host.py`` processes of this test (see ``Hosts``)."""
    group = Hosts(tmp_path)
    try:
        yield group
    finally:
        group.kill_all()


# -- helpers ----------------------------------------------------------------------------------


def sign_in(base_url: str, redis_url: str) -> nsdk.RedisTokenStore:
    """Log in here once; the session is left in Redis at KEY. Returns a store on that key."""
    store = nsdk.RedisTokenStore(redis_url, key=KEY)
    with nsdk.Client(base_url, token_store=store, refresh_leeway=0) as client:
        client.login(email=EMAIL, password=PASSWORD)
    return store


def connection(redis_url: str, base_url: str, *options: str) -> tuple[str, ...]:
    """The arguments that point a host at the session and the server."""
    return ("--redis-url", redis_url, "--key", KEY, "--base-url", base_url, *options)


def claims(tokens: nsdk.Tokens | None) -> tuple[float, float]:
    """(iat, exp) of an access token: the only facts about a token a test shows."""
    assert tokens is not None and tokens.issued_at is not None and tokens.expires_at is not None
    return tokens.issued_at, tokens.expires_at


def digest(tokens: nsdk.Tokens | None) -> str | None:
    """A SHA-256 prefix of an access token, as the hosts report theirs (``_host.digest``)."""
    if tokens is None:
        return None
    return hashlib.sha256(tokens.access_token.encode()).hexdigest()[:16]


def check_nothing_replayed(stats: dict[str, Any]) -> None:
    """No refresh token was presented again outside the reuse interval; none refused."""
    assert stats["replays"] == 0
    assert stats["families_revoked"] == 0
    assert stats["refresh_represented_outside_reuse"] == 0
    assert stats["refresh_failed"] == 0


def check_same_generation(
    reports: list[dict[str, Any]], stored: nsdk.StoredSession
) -> dict[str, Any]:
    """Every host holds what the store holds: its generation, its pair (or none); return it."""
    expected = {
        "generation": stored.generation,
        "digest": digest(stored.tokens),
        "state": "active" if stored.tokens is not None else "expired",
    }
    held = {r["name"]: {k: r["final"][k] for k in expected} for r in reports}
    assert all(final == expected for final in held.values()), (expected, held)
    return expected


# -- load -------------------------------------------------------------------------------------


def test_fleet_refreshes_once_per_expiry(
    api_server: Callable[..., ServerHandle], redis_server: RedisServer, hosts: Hosts
) -> None:
    """4 hosts (3 x 16 threads, 1 x 100 tasks, two 5 min off) on one key: one refresh per expiry.

    The chain of access tokens (the login's, then each rotation's, by exp) proves it exactly:
    every pair a host rotated was issued at or after the previous token's exp (never early,
    which a host 5 minutes ahead would do by its own clock; never twice for one expiry), and the
    server rotated exactly the pairs the hosts stored. The count is also bounded by time, over
    the window W from the release of the hosts to the end of their last call: at most W + 1,
    at least (W - 3 - slowest) / 2 (see tests/sharing/test_processes.py for the reasoning).
    """
    server = api_server()
    login = claims(sign_in(server.base_url, redis_server.url).read().tokens)
    server.reset_stats()  # the login's own counters are not the load's
    for name, mode, workers, skew in FLEET:
        hosts.start(
            name,
            mode,
            *connection(redis_server.url, server.base_url),
            *("--workers", str(workers), "--seconds", str(SECONDS), "--pause", str(PAUSE[mode])),
            f"--skew={skew}",  # "=": a negative value is not an option
        )
    names = [name for name, *_ in FLEET]
    hosts.go(*names)
    reports = [hosts.report(name) for name in names]
    stats = server.stats()

    calls = sum(r["calls"] for r in reports)
    errors = sum((collections.Counter(r["errors"]) for r in reports), collections.Counter())
    messages = {k: v for r in reports for k, v in r["messages"].items()}  # scanned in the host
    slowest = max(r["slowest"] for r in reports)  # above 1 s: the machine was overloaded
    per_host = {
        r["name"]: (r["calls"], r["errors"], round(r["slowest"], 2), round(r["loop_lag"], 2))
        for r in reports
    }
    assert not errors, (
        f"failed calls: {per_host} (calls, errors, slowest call s, event loop lag s); "
        f"first: {messages}"
    )
    assert all(r["calls"] > 0 for r in reports), "a host made no call"

    refreshes = sorted(
        (tuple(pair) for r in reports for pair in r["refreshes"]), key=lambda p: p[1]
    )
    assert stats["replays"] == 0
    assert stats["families_revoked"] == 0
    assert stats["refresh_presented_max"] == 1
    assert stats["refresh_represented"] == 0
    assert stats["refresh_failed"] == 0
    assert stats["refresh_requests"] == stats["refresh_ok"] == len(refreshes)
    chain = [login, *refreshes]
    early = [(prev, nxt) for prev, nxt in itertools.pairwise(chain) if nxt[0] < prev[1]]
    assert early == [], "a pair was rotated before its predecessor expired, or twice"

    # Every host's idea of now is the store's, 5 minutes of skew included (a round trip off).
    clock_errors = {r["name"]: round(r["final"]["clock_error"], 3) for r in reports}
    assert all(abs(e) < CLOCK_AGREEMENT for e in clock_errors.values()), clock_errors

    window = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    bounds = ((window - 3 - slowest) / 2, window + 1)
    assert bounds[0] <= len(refreshes) <= bounds[1], (len(refreshes), window, slowest)
    by_host = ", ".join(f"{r['name']} {len(r['refreshes'])}" for r in reports)
    print(
        f"\nfleet 3x16 threads + 1x100 tasks: {calls} calls in {window:.1f} s (slowest "
        f"{slowest:.2f} s), {len(refreshes)} refreshes (refresh_ok {stats['refresh_ok']}; by "
        f"host: {by_host}), presented_max {stats['refresh_presented_max']}, "
        f"replays {stats['replays']}, me requests {stats['requests']['me']}; clock errors "
        f"after correction {clock_errors} s"
    )


# -- SIGKILL of the lease holder --------------------------------------------------------------


@attrs.frozen
class Aftermath:
    """What the holder's death left, and what its peers then saw."""

    login: nsdk.StoredSession  # the store after the parent's login
    at_death: nsdk.StoredSession  # the store right after the holder died
    stats_at_death: dict[str, Any]  # the server's counters then
    died_at: float  # when the parent saw it dead (Unix time)
    lease_left: float  # the dead holder's lease's remaining life then (seconds, Redis's PTTL)
    peers: dict[str, list[dict[str, Any]]]  # each peer's steps (see _host.run_steps)
    leases: list[dict[str, float]]  # every lease the peers took, by when they took it
    peer_refreshes: int  # rotations the peers made and stored
    stats: dict[str, Any]  # the server's counters at the end
    final: nsdk.StoredSession  # the store at the end
    lease_at_end: int  # whether the lease key still exists at the end (0 or 1)


def kill_holder(
    point: str,
    reuse: float,
    api_server: Callable[..., ServerHandle],
    redis_server: RedisServer,
    hosts: Hosts,
) -> Aftermath:
    """Log in; a victim takes the lease, refreshes and SIGKILLs itself at ``point``.

    Three peers (``me``, ``refresh``, ``me``) hold the login pair too, whose access token has
    expired: they are released as soon as the victim holds the lease, so they are already
    waiting for it when the victim dies, and the first of them takes it over when Redis expires
    it. Each peer logs when it asked for and took each lease (``Aftermath.leases``).
    """
    server = api_server(refresh_reuse_interval=reuse)
    store = sign_in(server.base_url, redis_server.url)
    login = store.read()
    server.reset_stats()
    common = connection(
        redis_server.url,
        server.base_url,
        *("--reuse", str(reuse), "--lease-ttl", str(LEASE_TTL)),
        *("--lock-timeout", str(PEER_LOCK_TIMEOUT)),
    )
    for name in PEERS:
        hosts.start(name, "steps", *common, "--steps", "me,refresh,me")
    hosts.open()  # the peers build their clients: they hold the login pair, as the victim does
    hosts.wait_flags(PEERS, "ready")
    hosts.start("victim", "victim", *common, "--kill-at", point, barrier=False)
    deadline = time.monotonic() + START_TIMEOUT
    lease = redis_server.client()
    while not lease.exists(store.lease_key):  # the victim is refreshing: release the peers,
        assert time.monotonic() < deadline, "the victim never took the lease"
        assert hosts.processes["victim"].poll() is None, "the victim exited without the lease"
        time.sleep(0.002)
    hosts.release(*PEERS)  # whose expired token sends them to wait for the victim's lease
    code, report = hosts.wait("victim")
    died_at = time.time()
    lease_left = lease.pttl(store.lease_key) / 1000
    assert code == -signal.SIGKILL, f"the victim exited {code} (report: {report})"
    # Nobody can write or send before the dead holder's lease expires (most of a second).
    at_death, stats_at_death = store.read(), server.stats()
    reports = {name: hosts.report(name) for name in PEERS}
    peers = {name: r["steps"] for name, r in reports.items()}
    for name, steps in peers.items():
        slow = [s for s in steps if s["seconds"] >= STEP_BOUND]
        assert slow == [], f"{name}: calls slower than {STEP_BOUND:g} s: {slow}"
    return Aftermath(
        login=login,
        at_death=at_death,
        stats_at_death=stats_at_death,
        died_at=died_at,
        lease_left=lease_left,
        peers=peers,
        leases=sorted((e for r in reports.values() for e in r["leases"]), key=lambda e: e["got"]),
        peer_refreshes=sum(len(r["refreshes"]) for r in reports.values()),
        stats=server.stats(),
        final=store.read(),
        lease_at_end=redis_server.client().exists(store.lease_key),
    )


def check_victim_died_at(point: str, run: Aftermath) -> None:
    """The store, the lease and the server show the victim died exactly at ``point``."""
    login, dead, at_death = run.login, run.at_death, run.stats_at_death
    if point == "after_store":
        # Record written, then the rotated pair stored over it (record cleared).
        assert dead.generation == login.generation + 2
        assert dead.tokens is not None and dead.tokens != login.tokens
        assert dead.refreshing is None
    else:
        # Only the in-flight record was written: the login pair is still there.
        assert dead.generation == login.generation + 1
        assert dead.tokens == login.tokens
        assert dead.refreshing is not None
    sent = 0 if point == "before_send" else 1
    assert (at_death["refresh_requests"], at_death["refresh_ok"]) == (sent, sent)
    # The dead holder's lease outlived it: it is left to Redis's TTL.
    assert 0 < run.lease_left <= LEASE_TTL, f"lease PTTL at death: {run.lease_left:.3f} s"


def check_takeover(run: Aftermath) -> float:
    """A peer took the lease over once the dead holder's expired, not before, not much later.

    Returns the takeover's delay after the death (seconds).
    """
    expired_at = run.died_at + run.lease_left
    assert run.leases, "no peer took the lease"
    first = run.leases[0]
    asked = min(e["asked"] for e in run.leases)
    figures = (
        f"lease left at death {run.lease_left:.3f} s; first ask {asked - run.died_at:+.3f} s, "
        f"takeover {first['got'] - run.died_at:+.3f} s after the death"
    )
    assert asked < expired_at, f"no peer waited for the dead holder's lease: {figures}"
    assert first["got"] >= expired_at - CLOCK_TOLERANCE, f"taken while still held: {figures}"
    assert first["got"] <= expired_at + TAKEOVER_SLACK, f"taken over late: {figures}"
    assert first["got"] - run.died_at <= LEASE_TTL + TAKEOVER_SLACK, figures
    assert run.lease_at_end == 0, "a lease outlived the peers"
    return float(first["got"] - run.died_at)


def check_session_survived(run: Aftermath) -> None:
    """Every peer's me, refresh and me succeeded; the store holds a pair and no record."""
    for name, steps in run.peers.items():
        assert [(s["step"], s["error"]) for s in steps] == [
            ("me", None),
            ("refresh", None),
            ("me", None),
        ], name
    assert run.peer_refreshes >= 1  # the refresh() steps went through the taken-over lease
    assert run.final.tokens is not None
    assert run.final.refreshing is None
    assert not run.final.expired


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_of_lease_holder_with_reuse_interval_keeps_the_session(
    point: str,
    api_server: Callable[..., ServerHandle],
    redis_server: RedisServer,
    hosts: Hosts,
) -> None:
    """Lease holder SIGKILLed at any point, reuse 10 s: a peer takes over at lease expiry."""
    run = kill_holder(point, 10.0, api_server, redis_server, hosts)
    check_victim_died_at(point, run)
    takeover = check_takeover(run)
    check_session_survived(run)
    stats = run.stats
    check_nothing_replayed(stats)
    # after_rotate: one peer presents the victim's token again and gets the pair it was issued
    # (within the interval); before_send: that token was never presented, so its resend is a
    # first presentation; after_store: the stored pair is adopted, nothing is resent.
    again = 1 if point == "after_rotate" else 0
    assert stats["refresh_reused"] == again
    assert stats["refresh_represented"] == again
    assert stats["refresh_presented_max"] == 1 + again
    victim_sent = 0 if point == "before_send" else 1
    assert stats["refresh_requests"] == stats["refresh_ok"] + again
    assert run.peer_refreshes == stats["refresh_requests"] - victim_sent
    print(
        f"\n{point}, reuse 10: lease left at death {run.lease_left * 1000:.0f} ms, takeover "
        f"{takeover * 1000:.0f} ms after the death; {stats['refresh_requests']} refresh "
        f"requests, {stats['refresh_reused']} reused"
    )


@pytest.mark.parametrize("point", ["before_send", "after_rotate"])
def test_sigkill_of_lease_holder_before_store_without_reuse_interval_fails_closed(
    point: str,
    api_server: Callable[..., ServerHandle],
    redis_server: RedisServer,
    hosts: Hosts,
) -> None:
    """Lease holder SIGKILLed before storing, reuse 0: peers fail closed, nothing resent."""
    run = kill_holder(point, 0.0, api_server, redis_server, hosts)
    check_victim_died_at(point, run)
    takeover = check_takeover(run)
    for name, steps in run.peers.items():
        assert [(s["step"], s["error"]) for s in steps] == [("me", "SessionExpiredError")], name
    messages = [steps[0]["message"] for steps in run.peers.values()]
    # The peer that found the record names the cause; the others follow the store it cleared.
    assert sum("was interrupted" in m for m in messages) == 1, messages
    stats = run.stats
    check_nothing_replayed(stats)
    sent = 0 if point == "before_send" else 1  # only the victim's own request, if it left
    assert stats["refresh_requests"] == stats["refresh_presented_max"] == sent
    assert stats["refresh_represented"] == 0
    assert run.peer_refreshes == 0
    assert run.final.tokens is None
    assert run.final.expired
    assert run.final.refreshing is None
    print(
        f"\n{point}, reuse 0: takeover {takeover * 1000:.0f} ms after the death, fail-closed "
        "latency " + ", ".join(f"{s[0]['seconds'] * 1000:.0f} ms" for s in run.peers.values())
    )


# -- a refresh answer delayed past the lease --------------------------------------------------


@pytest.mark.parametrize("reuse", [10.0, 0.0], ids=["reuse-10", "reuse-0"])
def test_refresh_answer_delayed_past_the_lease_is_fenced(
    reuse: float,
    api_server: Callable[..., ServerHandle],
    redis_server: RedisServer,
    hosts: Hosts,
) -> None:
    """Refresh answered after its lease lapsed: the late write is fenced, one rotation, one state.

    Both hosts hold the login pair (access TTL 30 s: nothing expires on its own) and force a
    refresh. The "paused" host takes the lease (1 s, never extended: a pause) and sends its
    refresh, which the server holds for 2.5 s before rotating. The peer takes the lease once it
    lapsed and finds that refresh in flight. Reuse 10: it presents the same token (the server's
    first presentation, the paused one being still held) and stores the pair; the paused host's
    answer, the same pair under the reuse interval, reaches a store it no longer holds: its
    write is refused and it adopts the stored pair. Reuse 0: the peer fails closed without
    presenting anything; the paused host's write is refused and it follows the store, expired.
    Either way the server rotated that token once and every host holds the store's generation.
    """
    server = api_server(refresh_reuse_interval=reuse, access_ttl=30)
    store = sign_in(server.base_url, redis_server.url)
    login = store.read()
    server.reset_stats()
    common = connection(
        redis_server.url,
        server.base_url,
        *("--reuse", str(reuse), "--lease-ttl", str(LEASE_TTL), "--steps", "refresh,me"),
        *("--lock-timeout", str(PEER_LOCK_TIMEOUT)),
    )
    hosts.start("paused", "steps", *common, "--no-extend")
    hosts.start("peer", "steps", *common)
    server.faults.add("refresh", delay=ANSWER_DELAY)  # the next refresh only: the paused one's
    hosts.open()
    hosts.wait_flags(("paused", "peer"), "ready")  # both hold the login pair
    hosts.release("paused")
    deadline = time.monotonic() + START_TIMEOUT
    while (in_flight := store.read()).refreshing is None:
        assert time.monotonic() < deadline, "the paused host never started its refresh"
        time.sleep(0.002)
    assert in_flight.generation == login.generation + 1
    hosts.release("peer")  # it will find that record once it takes the lease
    paused, peer = hosts.report("paused"), hosts.report("peer")
    stats, final = server.stats(), store.read()

    # The timeline: the peer took the lease when the paused host's lapsed, while the paused
    # host was still waiting for its answer; the paused host's late write came after that.
    (paused_lease,) = paused["leases"]
    (peer_lease,) = peer["leases"]
    late = [w for w in paused["writes"] if w["kind"] == "pair"]
    assert [(w["kind"], w["written"]) for w in paused["writes"]] == [
        ("record", True),
        ("pair", False),  # fenced: the lease is no longer the paused host's
    ]
    takeover = peer_lease["got"] - paused_lease["got"]
    assert LEASE_TTL - CLOCK_TOLERANCE <= takeover <= LEASE_TTL + TAKEOVER_SLACK, takeover
    assert peer_lease["got"] < late[0]["at"]
    assert late[0]["at"] - paused_lease["got"] >= ANSWER_DELAY

    check_nothing_replayed(stats)
    assert stats["refresh_ok"] == 1  # the server rotated the login's refresh token once
    if reuse > 0:
        assert [(w["kind"], w["written"]) for w in peer["writes"]] == [
            ("record", True),  # the same record, a new generation: the resend is its own
            ("pair", True),
        ]
        for report in (paused, peer):
            steps = [(s["step"], s["error"]) for s in report["steps"]]
            assert steps == [("refresh", None), ("me", None)], report["name"]
        assert stats["refresh_requests"] == 2
        assert stats["refresh_reused"] == 1  # the paused host's late presentation
        assert stats["refresh_presented_max"] == 2
        assert final.generation == login.generation + 3
        assert final.tokens is not None and final.refreshing is None
        assert len(peer["refreshes"]) == 1 and paused["refreshes"] == []
    else:
        assert [(w["kind"], w["written"]) for w in peer["writes"]] == [("clear", True)]
        (paused_step,) = paused["steps"]
        (peer_step,) = peer["steps"]
        assert (peer_step["error"], paused_step["error"]) == (
            "SessionExpiredError",
            "SessionExpiredError",
        )
        assert "was interrupted" in peer_step["message"]
        assert stats["refresh_requests"] == 1  # the paused host's only: the peer sent nothing
        assert stats["refresh_reused"] == 0
        assert stats["refresh_presented_max"] == 1
        assert final.generation == login.generation + 2
        assert final.tokens is None and final.expired and final.refreshing is None
    held = check_same_generation([paused, peer], final)
    print(
        f"\nreuse {reuse:g}: peer took the lapsed lease {takeover * 1000:.0f} ms after the "
        f"paused host, whose write came {(late[0]['at'] - peer_lease['got']) * 1000:.0f} ms "
        f"later and was refused; refresh_ok {stats['refresh_ok']}, reused "
        f"{stats['refresh_reused']}; every host on generation {held['generation']} "
        f"({held['state']})"
    )


# -- Redis stopped and restarted --------------------------------------------------------------


def test_redis_outage_under_load(
    api_server: Callable[..., ServerHandle], redis_persistent: RedisServer, hosts: Hosts
) -> None:
    """Redis down 5 s under load: valid tokens work, refreshes fail retryably, no new login after.

    Access tokens live 30 s, so no refresh is due: three hosts (2 x 16 threads, 1 x 50 tasks)
    call ``me()`` throughout and none fails. Each host forces a ``refresh()`` while Redis is
    down: ``TokenStoreUnavailableError`` at once, the session still active, and the server sees
    no refresh at all (never an unguarded one). Redis restarts from its AOF: each host forces a
    refresh again, which succeeds (one rotation, the others adopt it), with no new login.
    """
    server = api_server(access_ttl=30)
    store = sign_in(server.base_url, redis_persistent.url)
    login = store.read()
    server.reset_stats()
    for name, mode, workers, pause in OUTAGE_HOSTS:
        hosts.start(
            name,
            mode,
            *connection(redis_persistent.url, server.base_url, "--watch"),
            *("--workers", str(workers), "--pause", str(pause)),
            *("--seconds", str(START_TIMEOUT), "--socket-timeout", "0.5"),
        )
    names = [name for name, *_ in OUTAGE_HOSTS]
    hosts.go(*names)
    time.sleep(BEFORE_OUTAGE)
    redis_persistent.stop()  # SIGTERM: the AOF is flushed, then the port is closed
    down_at = time.monotonic()
    hosts.signal("down")
    hosts.wait_flags(names, "down")  # each host's forced refresh is over
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
    during = server.stats()  # nothing reached the server while Redis was down
    redis_persistent.start()
    outage = time.monotonic() - down_at
    hosts.signal("up")
    hosts.wait_flags(names, "up")
    time.sleep(AFTER_OUTAGE)
    hosts.signal("end")
    reports = [hosts.report(name) for name in names]
    stats, final = server.stats(), store.read()

    errors = {r["name"]: r["errors"] for r in reports if r["errors"]}
    assert errors == {}, f"failed calls: {errors}; first: {[r['messages'] for r in reports]}"
    down_calls = {r["name"]: r["by_phase"].get("down", 0) for r in reports}
    assert all(n > 0 for n in down_calls.values()), f"no call while Redis was down: {down_calls}"
    assert (during["refresh_requests"], during["requests"]["login"]) == (0, 0)

    for r in reports:
        forced = r["forced"]
        assert forced["down"]["error"] == "TokenStoreUnavailableError", (r["name"], forced)
        assert "unreachable" in forced["down"]["message"]
        assert forced["down"]["state"] == "active"  # no silent logout
        assert forced["down"]["seconds"] < UNAVAILABLE_BOUND, (r["name"], forced)
        assert forced["up"]["error"] is None, (r["name"], forced)

    assert stats["requests"]["login"] == 0  # the login before the outage still serves
    assert stats["refresh_requests"] == stats["refresh_ok"] == 1  # one rotation, adopted
    assert stats["refresh_presented_max"] == 1
    check_nothing_replayed(stats)
    assert final.generation == login.generation + 2  # the record, then the rotated pair
    held = check_same_generation(reports, final)
    calls = sum(r["calls"] for r in reports)
    print(
        f"\noutage {outage:.1f} s: {calls} calls, {sum(down_calls.values())} with Redis down, "
        f"0 failed; forced refresh while down: "
        + ", ".join(f"{r['forced']['down']['seconds'] * 1000:.0f} ms" for r in reports)
        + f" (TokenStoreUnavailableError); after the restart: refresh_ok {stats['refresh_ok']}, "
        f"logins {stats['requests']['login']}, every host on generation {held['generation']}"
    )
