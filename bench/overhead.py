"""Figure 1: per-call overhead of ``client.me()``: nsdk vs raw httpx vs the generated layer.

Three ways to make the same call and get the same three fields out of the same bytes:

* raw httpx: ``client.get("/api/auth/me", headers=bearer)``, ``raise_for_status()``, ``.json()``;
* the generated layer alone: ``nsdk_api.api.auth.me.sync(client=...)`` with a static bearer header;
* nsdk: ``nsdk.Client.me()`` after a login (bearer auth flow, retry transport, typed errors).

First on an in-process transport (no sockets: what is measured is the client code), then against
the reference server on loopback (what a user sees), then on loopback over TLS (``tls=True``; all
three variants share one ``SSLContext`` that trusts the server's CA, and keep-alive means each
call is a request on an established TLS connection). Each round runs every variant back to back,
rotating which goes first; a figure is the median over rounds of the per-round ratio.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

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
    bearer,
    per_call_us,
    per_call_us_async,
    ratios,
    raw_login,
    raw_login_async,
    raw_me,
    rotate,
    server,
)
from nsdk_api import Client as ApiClient
from nsdk_api.api.auth import me as gen_me

TARGET = 1.10  # nsdk <= 1.10x raw httpx, in-process and over TLS on loopback
VARIANTS = ("nsdk", "raw", "generated")


Samples = dict[str, dict[str, list[float]]]  # "wall" / "cpu" -> variant -> us per call


def _rows(setting: str, samples: Samples, clock: str, target: float | None) -> list[Row]:
    """Two rows per setting: nsdk vs raw httpx, and nsdk vs the generated layer alone.

    ``clock`` picks the figure: "cpu" (this thread's CPU time: in-process, where there is no I/O)
    or "wall" (loopback, where the server's time is part of what a user waits for).
    """
    main, other = samples[clock], samples["cpu" if clock == "wall" else "wall"]
    nsdk_stat = Stat.of(main["nsdk"])
    out = []
    for base, label in (("raw", "raw httpx"), ("generated", "generated layer")):
        ratio = Stat.of(ratios(main["nsdk"], main[base]))
        row = Row(
            figure=f"1 {setting}: nsdk me() vs {label} ({clock})",
            unit="us/call",
            nsdk=nsdk_stat,
            baseline=Stat.of(main[base]),
            baseline_name=label,
            ratio=ratio,
            extra={"samples_us": samples},
        )
        if base == "raw":
            added = nsdk_stat.median - Stat.of(main[base]).median
            other_ratio = Stat.of(ratios(other["nsdk"], other[base])).median
            row.note = (
                f"nsdk adds {added:+.1f} us per call ({clock} medians); "
                f"the {'wall' if clock == 'cpu' else 'CPU'}-time ratio is {other_ratio:.3f}x"
            )
            if target is not None:
                row.target = f"<= {target:.2f}x"
                row.judge(ratio.median <= target)
        out.append(row)
    return out


def _empty() -> Samples:
    return {"wall": {k: [] for k in VARIANTS}, "cpu": {k: [] for k in VARIANTS}}


def _run_sync(fns: dict[str, Callable[[], object]], rounds: int, n: int) -> Samples:
    samples = _empty()
    for name in VARIANTS:  # warm-up: imports, pools, caches
        per_call_us(fns[name], max(10, n // 10))
    for r in range(rounds):
        for name in rotate(VARIANTS, r):
            wall, cpu = per_call_us(fns[name], n)
            samples["wall"][name].append(wall)
            samples["cpu"][name].append(cpu)
    return samples


async def _run_async(
    fns: dict[str, Callable[[], Awaitable[object]]], rounds: int, n: int
) -> Samples:
    samples = _empty()
    for name in VARIANTS:
        await per_call_us_async(fns[name], max(10, n // 10))
    for r in range(rounds):
        for name in rotate(VARIANTS, r):
            wall, cpu = await per_call_us_async(fns[name], n)
            samples["wall"][name].append(wall)
            samples["cpu"][name].append(cpu)
    return samples


def sync_variants(
    url: str, canned: bool, rounds: int, n: int, verify: ssl.SSLContext | bool = True
) -> Samples:
    """The three sync variants against ``url``: on the canned in-process transport, or for real.

    ``verify`` (httpx's) goes to all three: for HTTPS, one shared ``SSLContext``.
    """

    def transport() -> httpx.BaseTransport | None:
        return CannedTransport() if canned else None

    with (
        httpx.Client(base_url=url, transport=transport(), verify=verify) as raw,
        nsdk.Client(url, transport=transport(), verify=verify) as client,
    ):
        headers = bearer(raw_login(raw))
        api = ApiClient(base_url=url, headers=headers, transport=transport(), verify_ssl=verify)
        client.login(email=EMAIL, password=PASSWORD)
        try:
            return _run_sync(
                {
                    "raw": lambda: raw_me(raw.get("/api/auth/me", headers=headers)),
                    "generated": lambda: gen_me.sync(client=api),
                    "nsdk": client.me,
                },
                rounds,
                n,
            )
        finally:
            api.close()


async def async_variants(
    url: str, canned: bool, rounds: int, n: int, verify: ssl.SSLContext | bool = True
) -> Samples:
    """The three async variants against ``url``: canned in-process transport, or for real."""

    def transport() -> httpx.AsyncBaseTransport | None:
        return AsyncCannedTransport() if canned else None

    async with (
        httpx.AsyncClient(base_url=url, transport=transport(), verify=verify) as raw,
        nsdk.AsyncClient(url, transport=transport(), verify=verify) as client,
    ):
        headers = bearer(await raw_login_async(raw))
        api = ApiClient(
            base_url=url, headers=headers, async_transport=transport(), verify_ssl=verify
        )
        await client.login(email=EMAIL, password=PASSWORD)

        async def raw_call() -> object:
            return raw_me(await raw.get("/api/auth/me", headers=headers))

        try:
            return await _run_async(
                {
                    "raw": raw_call,
                    "generated": lambda: gen_me.asyncio(client=api),
                    "nsdk": client.me,
                },
                rounds,
                n,
            )
        finally:
            await api.aclose()


def _against_server(
    setting: str, rounds: int, n: int, target: float | None, **options: Any
) -> list[Row]:
    """Sync then async against a reference server started with ``options`` (wall time)."""
    with server(**options) as handle:
        verify = handle.ssl_context(client_cert=False) if options.get("tls") else True
        sync = sync_variants(handle.base_url, False, rounds, n, verify)
        rows = _rows(f"{setting} sync", sync, "wall", target)
        async_ = asyncio.run(async_variants(handle.base_url, False, rounds, n, verify))
        return rows + _rows(f"{setting} async", async_, "wall", target)


def run(quick: bool = False, **_: Any) -> list[Row]:
    """Figure 1, in-process then loopback then loopback over TLS, sync then async."""
    rounds, n = (5, 300) if quick else (21, 1000)
    rows = _rows("in-process sync", sync_variants(BASE_URL, True, rounds, n), "cpu", TARGET)
    in_async = asyncio.run(async_variants(BASE_URL, True, rounds, n))
    rows += _rows("in-process async", in_async, "cpu", TARGET)
    lb_rounds, lb_n = (3, 100) if quick else (9, 300)
    rows += _against_server("loopback", lb_rounds, lb_n, None)
    return rows + _against_server("loopback TLS", lb_rounds, lb_n, TARGET, tls=True)
