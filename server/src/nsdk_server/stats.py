"""Counters the test control API reports (`GET /_nsdk/stats`).

Besides plain counters, `Stats` counts how often each refresh token was presented (by its SHA-256,
in memory, until `reset`), so a test can prove a client never sends the same refresh token twice:
`refresh_presented_max <= 1`, or at least `refresh_represented_outside_reuse == 0` when the server
runs with a reuse interval. It also counts the `User-Agent` each API request came with
(`user_agents`), so a test can see at the server which client, in which version, sent what.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["OPERATIONS", "Stats"]

OPERATIONS = ("login", "refresh", "me", "logout")

_COUNTERS = (
    "login_ok",  # logins answered 200
    "login_failed",  # logins answered 401 (wrong credentials)
    "refresh_requests",  # refresh requests received (same as requests["refresh"])
    "refresh_ok",  # refresh tokens rotated
    "refresh_failed",  # refreshes answered 401 (unknown, expired, revoked or replayed token)
    "refresh_reused",  # parents presented again within the reuse interval, answered 200
    "refresh_presented_max",  # the most presentations of any single refresh token
    "refresh_represented",  # distinct refresh tokens presented more than once
    "refresh_represented_outside_reuse",  # repeats not answered by the reuse interval
    "replays",  # already rotated refresh tokens presented to a live family
    "families_revoked",  # families revoked because of replay (logout is counted in "logouts")
    "logouts",  # sessions revoked by logout
    "rate_limited",  # 429 answers sent
    "faults_applied",  # scripted faults that took effect
    "server_errors",  # unexpected exceptions turned into 500
)


class Stats:
    """Thread-safe counters: per-operation request counts plus named counters."""

    def __init__(self) -> None:
        """Start with every counter at zero."""
        self._lock = threading.Lock()
        self._requests: dict[str, int] = {}
        self._counters: dict[str, int] = {}
        self._presented: dict[str, int] = {}
        self._user_agents: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Set every counter back to zero and forget the presented refresh tokens."""
        with self._lock:
            self._requests = dict.fromkeys(OPERATIONS, 0)
            self._counters = dict.fromkeys(_COUNTERS, 0)
            self._presented = {}
            self._user_agents = {}

    def request(self, op: str, user_agent: str | None = None) -> None:
        """Count one received request for an operation, and the `User-Agent` it came with."""
        with self._lock:
            self._requests[op] = self._requests.get(op, 0) + 1
            agent = "" if user_agent is None else user_agent  # "": the request had none
            self._user_agents[agent] = self._user_agents.get(agent, 0) + 1
            if op == "refresh":
                self._counters["refresh_requests"] += 1

    def bump(self, name: str, by: int = 1) -> None:
        """Add to a named counter."""
        with self._lock:
            self._counters[name] += by

    def refresh_presented(self, token_hash: str, *, reused: bool, replay: bool) -> None:
        """Count one presentation of a refresh token whose rotation the server attempted.

        Args:
            token_hash: the SHA-256 of the presented token (never the token itself).
            reused: the reuse interval answered it (counted in `refresh_reused`).
            replay: the token was already used (replay, the family is now revoked). A replay,
                or any repeat of an earlier presented token, that the reuse interval did not
                answer counts in `refresh_represented_outside_reuse`.
        """
        with self._lock:
            before = self._presented.get(token_hash, 0)
            self._presented[token_hash] = before + 1
            counters = self._counters
            counters["refresh_presented_max"] = max(counters["refresh_presented_max"], before + 1)
            if before == 1:
                counters["refresh_represented"] += 1
            if reused:
                counters["refresh_reused"] += 1
            elif replay or before:
                counters["refresh_represented_outside_reuse"] += 1

    def snapshot(self) -> dict[str, Any]:
        """Return `{"requests": {op: n}, "user_agents": {agent: n}, <counter>: n, ...}`."""
        with self._lock:
            return {
                "requests": dict(self._requests),
                "user_agents": dict(self._user_agents),
                **self._counters,
            }
