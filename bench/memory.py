"""Figure 6: memory. RSS over 100,000 ``me()`` calls on the in-process transport.

Each variant runs in its own fresh interpreter (``python bench/memory.py --worker MODE CLIENT N``)
so nothing else the bench did is in its heap. RSS is sampled every 10,000 calls after a full
garbage collection; the first 10,000 calls are the warm-up. The figure is the growth from the
warm-up sample to the last one (target: flat, i.e. under FLAT_MIB), with raw httpx doing the same
calls as the baseline. nsdk and raw httpx run side by side (one process each, two cores).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import (
    BASE_URL,
    EMAIL,
    PASSWORD,
    AsyncCannedTransport,
    CannedTransport,
    Row,
    Stat,
    bearer,
    fake_jwt,
    raw_me,
)

CALLS = 100_000
EVERY = 10_000
FLAT_MIB = 1.0  # growth after warm-up below this over 90,000 calls counts as flat


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sample() -> int:
    gc.collect()
    return rss_bytes()


def worker(mode: str, client: str, calls: int) -> list[int]:
    """Make ``calls`` me() calls with one client; return RSS samples every EVERY calls."""
    import httpx
    import nsdk

    headers = bearer(fake_jwt())
    samples = [sample()]
    if mode == "sync":
        if client == "nsdk":
            c = nsdk.Client(BASE_URL, transport=CannedTransport())
            c.login(email=EMAIL, password=PASSWORD)
            call: Any = c.me
        else:
            raw = httpx.Client(base_url=BASE_URL, transport=CannedTransport())

            def call() -> object:
                return raw_me(raw.get("/api/auth/me", headers=headers))

        for i in range(1, calls + 1):
            call()
            if i % EVERY == 0:
                samples.append(sample())
        return samples

    async def main() -> None:
        if client == "nsdk":
            c = nsdk.AsyncClient(BASE_URL, transport=AsyncCannedTransport())
            await c.login(email=EMAIL, password=PASSWORD)
            acall: Any = c.me
        else:
            raw = httpx.AsyncClient(base_url=BASE_URL, transport=AsyncCannedTransport())

            async def acall() -> object:
                return raw_me(await raw.get("/api/auth/me", headers=headers))

        for i in range(1, calls + 1):
            await acall()
            if i % EVERY == 0:
                samples.append(sample())

    asyncio.run(main())
    return samples


def _spawn(mode: str, client: str, calls: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--worker", mode, client, str(calls)],
        stdout=subprocess.PIPE,
        text=True,
    )


def run(quick: bool = False, **_: Any) -> list[Row]:
    """Figure 6: nsdk and raw httpx side by side, sync then async."""
    calls = 20_000 if quick else CALLS
    rows = []
    for mode in ("sync", "async"):
        procs = {name: _spawn(mode, name, calls) for name in ("nsdk", "raw")}
        samples: dict[str, list[int]] = {}
        for name, proc in procs.items():
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"memory worker {mode}/{name} failed ({proc.returncode})")
            samples[name] = json.loads(out)
        mib = 1024 * 1024
        growth = {k: (v[-1] - v[1]) / mib for k, v in samples.items()}
        row = Row(
            figure=f"6 memory {mode}: RSS growth over {calls:,} me() calls after warm-up",
            unit="MiB",
            nsdk=Stat.of([growth["nsdk"]]),
            baseline=Stat.of([growth["raw"]]),
            baseline_name="raw httpx",
            target=f"flat (< {FLAT_MIB:g} MiB)",
            extra={"rss_bytes_every_10k": samples},
        ).judge(growth["nsdk"] < FLAT_MIB)
        per_call = (samples["nsdk"][-1] - samples["nsdk"][1]) / max(1, calls - EVERY)
        row.note = (
            f"RSS after warm-up {samples['nsdk'][1] / mib:.1f} MiB, at the end "
            f"{samples['nsdk'][-1] / mib:.1f} MiB ({per_call:+.2f} bytes/call); "
            f"raw httpx {samples['raw'][1] / mib:.1f} -> {samples['raw'][-1] / mib:.1f} MiB"
        )
        rows.append(row)
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        raise SystemExit("usage: python bench/memory.py --worker sync|async nsdk|raw CALLS")
