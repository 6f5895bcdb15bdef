"""Counters the test control API reports (`GET /_nsdk/stats`)."""

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
        self.reset()

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._requests = dict.fromkeys(OPERATIONS, 0)
            self._counters = dict.fromkeys(_COUNTERS, 0)

    def request(self, op: str) -> None:
        """Count one received request for an operation."""
        with self._lock:
            self._requests[op] = self._requests.get(op, 0) + 1
            if op == "refresh":
                self._counters["refresh_requests"] += 1

    def bump(self, name: str, by: int = 1) -> None:
        """Add to a named counter."""
        with self._lock:
            self._counters[name] += by

    def snapshot(self) -> dict[str, Any]:
        """Return `{"requests": {op: n}, <counter>: n, ...}`."""
        with self._lock:
            return {"requests": dict(self._requests), **self._counters}
