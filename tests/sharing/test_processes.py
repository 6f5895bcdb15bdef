"""Processes of one host sharing a session through one ``FileTokenStore``, on loopback.

The server issues access tokens that expire within 1-2 s (``exp = ceil(iat + 1)``, no leeway), so
a session rotates every 1-2 s. Two kinds of tests:

* Load: 8 processes x 8 threads (``Client``) and 4 processes x 100 tasks (``AsyncClient``) call
  ``me()`` for ``NSDK_SHARING_SECONDS`` (default 20). Every process reports the claims (iat, exp)
  of each pair it rotated; together with the login's they form the chain of the session's
  access tokens, which must show exactly one refresh per expiry.
* SIGKILL: a victim process refreshes and kills itself before the request leaves, after the
  server rotated, or after storing the new pair (its refresh lock still held). Three peers then
  use the session: the lock is recovered, and the reuse interval decides whether the session
  survives (above 0) or fails closed (0) when the new pair was lost.
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import nsdk
import pytest
from nsdk_server.testing import ServerHandle

SECONDS = float(os.environ.get("NSDK_SHARING_SECONDS", "20"))
#: Each worker's pause between calls (seconds). The load must stay below what two busy cores
#: serve, or calls queue for longer than a token lives (1-2 s) and fail whatever the SDK does:
#: 400 tasks pausing 15 ms offer ~25,000 calls/s, and measured calls then took 4-20 s and
#: failed with AuthenticationError after their resends. 64 threads x 20 ms offer ~3,000/s and
#: saturate at ~700/s with calls under 0.3 s; 400 tasks x 3 s offer ~130/s, below the ~250/s
#: four asyncio processes reach. Either way every expiry meets many concurrent callers.
PAUSE = {"threads": 0.02, "tasks": 3.0}

KILL_POINTS = ("before_send", "after_rotate", "after_store")
PEERS = ("peer-1", "peer-2", "peer-3")
#: A peer's lock wait gives up (TokenStoreBusyError) after this; a dead holder must not cost it.
PEER_LOCK_TIMEOUT = 10.0
#: The stated bound on any peer call after the victim died, failing closed included (seconds).
STEP_BOUND = 5.0

SignIn = Callable[[str, Path], nsdk.FileTokenStore]


def store_path(tmp_path: Path) -> Path:
    """The session file of a test (its directory is created 0700 by the store)."""
    return tmp_path / "store" / "session.json"


def claims(tokens: nsdk.Tokens | None) -> tuple[float, float]:
    """(iat, exp) of an access token: the only facts about a token a test shows."""
    assert tokens is not None and tokens.issued_at is not None and tokens.expires_at is not None
    return tokens.issued_at, tokens.expires_at


# -- load -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "processes", "workers"), [("threads", 8, 8), ("tasks", 4, 100)], ids=["8x8", "4x100"]
)
def test_processes_refresh_once_per_expiry(
    mode: str,
    processes: int,
    workers: int,
    sharing_server: Callable[..., ServerHandle],
    sign_in: SignIn,
    children: Any,
    tmp_path: Path,
) -> None:
    """Processes x threads/tasks on one FileTokenStore: no call fails, one refresh per expiry.

    The chain of access tokens (the login's, then each rotation's, by exp) proves it exactly:
    every pair a client rotated was issued at or after the previous token's exp (never early,
    never twice for one expiry: a second rotation of the same token would be issued before the
    first one's successor expired), and the server rotated exactly the pairs the clients stored.
    The count is also bounded by time, over the window W from the release of the processes to
    the end of their last call. At most W + 1: each token lives at least 1 s and is replaced
    only once expired. At least (W - 3 - slowest) / 2: the login token expires within 2 s of
    the start, a successor lives at most 2 s after the refresh that made it (up to 1 s of lag
    after the expiry allowed in all), and the last call, at most ``slowest`` long, ended with
    a token still valid when it was accepted.
    """
    server = sharing_server()
    path = store_path(tmp_path)
    login = claims(sign_in(server.base_url, path).read().tokens)
    server.reset_stats()  # the login's own counters are not the load's
    names = [f"{mode}-{n}" for n in range(processes)]
    for name in names:
        children.start(
            name,
            mode,
            *("--store", str(path), "--base-url", server.base_url),
            *("--workers", str(workers), "--seconds", str(SECONDS), "--pause", str(PAUSE[mode])),
        )
    children.go(*names)
    reports = [children.report(name) for name in names]
    stats = server.stats()

    calls = sum(r["calls"] for r in reports)
    errors = sum((collections.Counter(r["errors"]) for r in reports), collections.Counter())
    messages = {k: v for r in reports for k, v in r["messages"].items()}  # scanned in the child
    slowest = max(r["slowest"] for r in reports)  # above 1 s: the machine was overloaded
    assert not errors, f"failed calls: {errors}; slowest {slowest:.1f} s; first: {messages}"
    assert all(r["calls"] > 0 for r in reports), "a process made no call"

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

    window = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    bounds = ((window - 3 - slowest) / 2, window + 1)
    assert bounds[0] <= len(refreshes) <= bounds[1], (len(refreshes), window, slowest)
    print(
        f"\n{mode} {processes}x{workers}: {calls} calls in {window:.1f} s (slowest "
        f"{slowest:.2f} s), "
        f"{len(refreshes)} refreshes (refresh_ok {stats['refresh_ok']}), "
        f"presented_max {stats['refresh_presented_max']}, replays {stats['replays']}"
    )


# -- SIGKILL mid-refresh ----------------------------------------------------------------------


@attrs.frozen
class Aftermath:
    """What a victim's death left, and what its peers then saw."""

    login: nsdk.StoredSession  # the store after the parent's login
    at_death: nsdk.StoredSession  # the store right after the victim died
    stats_at_death: dict[str, Any]  # the server's counters then
    peers: dict[str, list[dict[str, Any]]]  # each peer's steps (see _child.run_peer)
    peer_refreshes: int  # rotations the peers made and stored
    stats: dict[str, Any]  # the server's counters at the end
    final: nsdk.StoredSession  # the store at the end


def kill_refresher(
    point: str,
    reuse: float,
    sharing_server: Callable[..., ServerHandle],
    sign_in: SignIn,
    children: Any,
    tmp_path: Path,
) -> Aftermath:
    """Log in, let a victim refresh and SIGKILL itself at ``point``, then run three peers."""
    server = sharing_server(refresh_reuse_interval=reuse)
    path = store_path(tmp_path)
    store = sign_in(server.base_url, path)
    login = store.read()
    server.reset_stats()
    common = (
        *("--store", str(path), "--base-url", server.base_url),
        *("--reuse", str(reuse), "--lock-timeout", str(PEER_LOCK_TIMEOUT)),
    )
    for name in PEERS:  # they start (import) now, and read the store only once released
        children.start(name, "peer", *common)
    children.start("victim", "victim", *common, "--kill-at", point, barrier=False)
    code, report = children.wait("victim")
    assert code == -signal.SIGKILL, f"the victim exited {code} (report: {report})"
    at_death, stats_at_death = store.read(), server.stats()
    # The dead holder's refresh lock is free at once (the kernel released it).
    with nsdk.FileTokenStore(path, lock_timeout=1.0).refresh_lock():
        pass
    children.go(*PEERS)
    reports = {name: children.report(name) for name in PEERS}
    peers = {name: r["steps"] for name, r in reports.items()}
    for name, steps in peers.items():
        slow = [s for s in steps if s["seconds"] >= STEP_BOUND]
        assert slow == [], f"{name}: calls slower than {STEP_BOUND:g} s: {slow}"
    return Aftermath(
        login=login,
        at_death=at_death,
        stats_at_death=stats_at_death,
        peers=peers,
        peer_refreshes=sum(len(r["refreshes"]) for r in reports.values()),
        stats=server.stats(),
        final=store.read(),
    )


def check_victim_died_at(point: str, run: Aftermath) -> None:
    """The store and the server show the victim died exactly at ``point``."""
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


def check_nothing_replayed(stats: dict[str, Any]) -> None:
    """No refresh token was presented again outside the reuse interval."""
    assert stats["replays"] == 0
    assert stats["families_revoked"] == 0
    assert stats["refresh_represented_outside_reuse"] == 0
    assert stats["refresh_failed"] == 0


def check_session_survived(run: Aftermath) -> None:
    """Every peer's me, refresh and me succeeded; the store holds a pair and no record."""
    for name, steps in run.peers.items():
        assert [(s["step"], s["error"]) for s in steps] == [
            ("me", None),
            ("refresh", None),
            ("me", None),
        ], name
    assert run.peer_refreshes >= 1  # the refresh() steps went through the recovered lock
    assert run.final.tokens is not None
    assert run.final.refreshing is None
    assert not run.final.expired


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_with_reuse_interval_keeps_the_session(
    point: str,
    sharing_server: Callable[..., ServerHandle],
    sign_in: SignIn,
    children: Any,
    tmp_path: Path,
) -> None:
    """Refresher SIGKILLed at any point, reuse interval 10 s: peers take the lock and carry on."""
    run = kill_refresher(point, 10.0, sharing_server, sign_in, children, tmp_path)
    check_victim_died_at(point, run)
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


@pytest.mark.parametrize("point", ["before_send", "after_rotate"])
def test_sigkill_before_store_without_reuse_interval_fails_closed(
    point: str,
    sharing_server: Callable[..., ServerHandle],
    sign_in: SignIn,
    children: Any,
    tmp_path: Path,
) -> None:
    """Refresher SIGKILLed before storing, no reuse interval: peers fail closed within 5 s."""
    run = kill_refresher(point, 0.0, sharing_server, sign_in, children, tmp_path)
    check_victim_died_at(point, run)
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
        f"\n{point}, reuse 0: fail-closed latency "
        + ", ".join(f"{steps[0]['seconds'] * 1000:.0f} ms" for steps in run.peers.values())
    )


def test_sigkill_after_store_without_reuse_interval_keeps_the_session(
    sharing_server: Callable[..., ServerHandle],
    sign_in: SignIn,
    children: Any,
    tmp_path: Path,
) -> None:
    """Refresher SIGKILLed after storing, no reuse interval: peers adopt its pair, none resent."""
    run = kill_refresher("after_store", 0.0, sharing_server, sign_in, children, tmp_path)
    check_victim_died_at("after_store", run)
    check_session_survived(run)
    stats = run.stats
    check_nothing_replayed(stats)
    assert stats["refresh_reused"] == 0
    assert stats["refresh_represented"] == 0
    assert stats["refresh_presented_max"] == 1
    assert stats["refresh_requests"] == stats["refresh_ok"] == run.peer_refreshes + 1
