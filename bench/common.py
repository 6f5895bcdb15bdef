"""Shared parts of the benchmarks: figures, statistics, canned transports and the server.

Every figure is a median over repeated runs with its min and max. Comparisons are ratios of two
measurements taken in the same round (interleaved, alternating order), because on a noisy machine
an absolute time says little while a ratio taken side by side holds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "user@example.com"
PASSWORD = "demo-password"  # the reference server's documented demo user
BASE_URL = "http://127.0.0.1:8000"  # never contacted: the in-process transports answer

# Options for every reference server the bench starts: cheap password hashing, no login limits
# (the bench logs in more often than a person would), no access log.
SERVER_OPTIONS: dict[str, Any] = {
    "faults": True,  # the /_nsdk control API: counters (refresh_requests, rate_limited ...)
    "scrypt_n": 2**12,
    "login_account_rate": None,
    "login_address_rate": None,
    "log_level": "warning",
}


@dataclass
class Stat:
    """A median with the min and max of the samples it summarises."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    unit: str = ""
    nsdk: Stat | None = None
    baseline: Stat | None = None
    baseline_name: str = ""
    ratio: Stat | None = None
    target: str = "-"  # e.g. "<= 1.10x"
    met: str = "info"  # PASS, MISS, info, or "not measured"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def versus(
        cls,
        figure: str,
        unit: str,
        ours: Sequence[float],
        base: Sequence[float],
        baseline_name: str,
        **more: Any,
    ) -> Row:
        """A row of samples taken side by side, round by round: both medians and their ratio."""
        return cls(
            figure=figure,
            unit=unit,
            nsdk=Stat.of(ours),
            baseline=Stat.of(base),
            baseline_name=baseline_name,
            ratio=Stat.of(ratios(ours, base)),
            **more,
        )

    def judge(self, ok: bool) -> Row:
        self.met = "PASS" if ok else "MISS"
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per-round ratios a[i] / b[i] (the rounds were measured side by side)."""
    return [x / y for x, y in zip(a, b, strict=True) if y > 0]


def rotate(items: Sequence[Any], k: int) -> list[Any]:
    """The items starting at position k (alternates which variant runs first in a round)."""
    k %= len(items)
    return [*items[k:], *items[:k]]


def per_call_us(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(wall, CPU) microseconds per call of fn over n back-to-back calls.

    CPU time is this thread's: it leaves out the time other processes held the core, which is
    what makes in-process figures hold on a shared machine.
    """
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - wall) / n / 1000, (time.thread_time_ns() - cpu) / n / 1000


async def per_call_us_async(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """(wall, CPU) microseconds per awaited call of fn over n back-to-back calls."""
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    for _ in range(n):
        await fn()
    return (time.perf_counter_ns() - wall) / n / 1000, (time.thread_time_ns() - cpu) / n / 1000


# --- canned answers: the same bytes for raw httpx, the generated layer and nsdk ---------------


def fake_jwt(ttl: float = 3600.0) -> str:
    """An unsigned JWT-shaped token with iat/exp, so nsdk takes its real expiry code path."""

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64({"sub": "1005", "tid": "2001", "iat": now, "exp": int(now + ttl)})
    return f"{header}.{payload}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


ME_BODY = json.dumps({"userId": "1005", "tenantId": "2001", "email": EMAIL}).encode()
_HEADERS = [(b"content-type", b"application/json"), (b"x-request-id", b"req_0123456789abcdef")]


class Canned:
    """Builds the canned answers for login, refresh and me, and counts refreshes."""

    def __init__(self) -> None:
        self.refreshes = 0
        self._access = fake_jwt()

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/me"):
            return httpx.Response(200, headers=_HEADERS, content=ME_BODY)
        if path.endswith("/refresh"):
            self.refreshes += 1
            pair = {"accessToken": fake_jwt(), "refreshToken": f"refresh-{self.refreshes}"}
            return httpx.Response(200, headers=_HEADERS, content=json.dumps(pair).encode())
        if path.endswith("/login"):
            body = {
                "accessToken": self._access,
                "refreshToken": "refresh-0",
                "userId": "1005",
                "tenantId": "2001",
            }
            return httpx.Response(200, headers=_HEADERS, content=json.dumps(body).encode())
        return httpx.Response(404, headers=_HEADERS, content=b'{"detail":"no","request_id":"r"}')


class CannedTransport(httpx.BaseTransport):
    """An in-process sync transport: no sockets, the same canned 200 for every client."""

    def __init__(self, canned: Canned | None = None) -> None:
        self.canned = canned or Canned()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.canned.answer(request)


class AsyncCannedTransport(httpx.AsyncBaseTransport):
    """The async twin of CannedTransport."""

    def __init__(self, canned: Canned | None = None) -> None:
        self.canned = canned or Canned()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.canned.answer(request)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw_me(response: httpx.Response) -> tuple[str, str, str]:
    """What a raw httpx user does with the answer: check the status, parse JSON, read fields."""
    response.raise_for_status()
    data = response.json()
    return data["userId"], data["tenantId"], data["email"]


def raw_login(client: httpx.Client) -> str:
    """Sign in with raw httpx; return the access token."""
    response = client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    response.raise_for_status()
    token: str = response.json()["accessToken"]
    return token


async def raw_login_async(client: httpx.AsyncClient) -> str:
    """Sign in with raw async httpx; return the access token."""
    response = await client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    response.raise_for_status()
    token: str = response.json()["accessToken"]
    return token


@contextlib.contextmanager
def server(**options: Any) -> Iterator[Any]:
    """A reference server subprocess on loopback (nsdk_server.testing.run_server)."""
    from nsdk_server.testing import run_server

    with run_server(**{**SERVER_OPTIONS, **options}) as handle:
        yield handle


def fmt(stat: Stat | None, unit: str) -> str:
    if stat is None:
        return "-"
    if unit == "x":
        return f"{stat.median:.3f}x ({stat.min:.2f}-{stat.max:.2f})"
    digits = 0 if stat.median >= 100 else 1 if stat.median >= 10 else 2
    return f"{stat.median:.{digits}f} {unit} ({stat.min:.{digits}f}-{stat.max:.{digits}f})".strip()


def table(rows: Sequence[Row], notes: bool = True) -> str:
    """The results as a plain-text table: figure, nsdk, baseline, ratio, target, met?."""
    head = ("figure", "nsdk", "baseline", "ratio", "target", "met?")
    lines = [
        (
            r.figure,
            fmt(r.nsdk, r.unit),
            (f"{r.baseline_name}: " if r.baseline_name and r.baseline else "")
            + fmt(r.baseline, r.unit),
            fmt(r.ratio, "x"),
            r.target,
            r.met,
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(head), "-+-".join("-" * w for w in widths)]
    out += [line(cells) for cells in lines]
    if notes and any(r.note for r in rows):
        out += ["", "notes:", *(f"  {r.figure}: {r.note}" for r in rows if r.note)]
    return "\n".join(out)
