"""Figure 4: throughput against the reference server: async nsdk vs raw async httpx.

Both keep ``CONCURRENCY`` calls of ``me()`` in flight (one signed-in client each, the same httpx
connection-pool defaults) until ``REQUESTS`` answers are in; requests per second per run. Rounds
alternate which client goes first; the figure is the median of the per-round ratios. The server
(one process, one core) is usually the bottleneck, so this shows whether nsdk keeps up with it,
not how fast nsdk is alone (figure 1 does that).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import nsdk
from common import EMAIL, PASSWORD, Row, Stat, bearer, ratios, raw_login_async, raw_me, server

TARGET = 0.95  # nsdk >= 0.95x raw httpx requests per second
CONCURRENCY = 64


async def drive(call: Callable[[], Awaitable[object]], total: int) -> tuple[float, float, int]:
    """Run ``total`` calls with CONCURRENCY in flight; return (requests/s, CPU us/req, errors)."""
    remaining = total
    errors = 0

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            try:
                await call()
            except Exception:
                errors += 1

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    cpu = (time.process_time() - cpu) / total * 1e6
    return total / (time.perf_counter() - start), cpu, errors


async def measure(url: str, rounds: int, total: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "nsdk": [],
        "raw": [],
        "cpu_us": {"nsdk": [], "raw": []},
        "errors": {"nsdk": 0, "raw": 0},
    }
    async with httpx.AsyncClient(base_url=url) as raw, nsdk.AsyncClient(url) as client:
        headers = bearer(await raw_login_async(raw))
        await client.login(email=EMAIL, password=PASSWORD)

        async def raw_call() -> object:
            return raw_me(await raw.get("/api/auth/me", headers=headers))

        calls: dict[str, Callable[[], Awaitable[object]]] = {"raw": raw_call, "nsdk": client.me}
        for name in calls:  # warm-up: open the connections
            await drive(calls[name], CONCURRENCY * 4)
        for r in range(rounds):
            for name in ("raw", "nsdk") if r % 2 == 0 else ("nsdk", "raw"):
                rps, cpu, errors = await drive(calls[name], total)
                out[name].append(rps)
                out["cpu_us"][name].append(cpu)
                out["errors"][name] += errors
    return out


def run(quick: bool = False, **_: Any) -> list[Row]:
    """Figure 4: rounds of REQUESTS calls at CONCURRENCY, nsdk and raw httpx alternating."""
    rounds, total = (2, 400) if quick else (10, 800)
    with server() as handle:
        result = asyncio.run(measure(handle.base_url, rounds, total))
    ratio = Stat.of(ratios(result["nsdk"], result["raw"]))
    row = Row(
        figure=f"4 throughput, {CONCURRENCY} in flight: async nsdk vs raw async httpx",
        unit="req/s",
        nsdk=Stat.of(result["nsdk"]),
        baseline=Stat.of(result["raw"]),
        baseline_name="raw httpx",
        ratio=ratio,
        target=f">= {TARGET:.2f}x",
        extra=result,
    ).judge(ratio.median >= TARGET and not any(result["errors"].values()))
    cpu = Stat.of(ratios(result["cpu_us"]["nsdk"], result["cpu_us"]["raw"]))
    row.note = (
        f"{rounds} rounds of {total} requests; client CPU per request: nsdk "
        f"{Stat.of(result['cpu_us']['nsdk']).median:.0f} us vs raw "
        f"{Stat.of(result['cpu_us']['raw']).median:.0f} us ({cpu.median:.3f}x); "
        f"errors: nsdk {result['errors']['nsdk']}, raw {result['errors']['raw']}"
    )
    return [row]
