"""Sliding-window rate limiting in memory.

Each key (an account, a client address) keeps the times of its recent hits. A hit is refused when
the window already holds `limit` hits; the refusal says how long until the oldest hit leaves the
window, rounded up to whole seconds and at least 1, for the `Retry-After` header. Refused hits are
not recorded, so a client that waits as told gets through.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from .config import RateSpec

__all__ = ["RateLimiter"]

_SWEEP_EVERY = 4096


class RateLimiter:
    """A sliding-window log limiter for one rule, keyed by any string."""

    def __init__(self, spec: RateSpec, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Create the limiter.

        Args:
            spec: how many hits per how many seconds.
            clock: a monotonic clock in seconds (injected for tests).
        """
        self.spec = spec
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._calls = 0

    def hit(self, key: str) -> int | None:
        """Record one hit for `key`.

        Returns:
            None if allowed, else the whole seconds (>= 1) to wait before retrying.
        """
        now = self._clock()
        horizon = now - self.spec.window
        with self._lock:
            self._calls += 1
            if self._calls % _SWEEP_EVERY == 0:
                self._sweep(horizon)
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= horizon:
                hits.popleft()
            if len(hits) >= self.spec.limit:
                return max(1, math.ceil(hits[0] - horizon))
            hits.append(now)
            return None

    def _sweep(self, horizon: float) -> None:
        stale = [key for key, hits in self._hits.items() if not hits or hits[-1] <= horizon]
        for key in stale:
            del self._hits[key]
