"""``nox -s bench``: what nsdk costs, side by side with what a user would pick instead.

Nine figures, each a median over repeated runs with min and max, compared as ratios measured in
the same run (absolute times on a shared machine mean little; a ratio taken side by side holds):

1. per-call overhead of ``me()``: nsdk vs raw httpx vs the generated layer (in-process, loopback);
2. import time: ``import nsdk; nsdk.Client`` vs ``import httpx`` vs an OpenAPI Generator ``python``
   client (``import nsdk`` alone for information);
3. refresh herds: 1,000 tasks and 64 threads holding an expired token;
4. throughput against the reference server: async nsdk vs raw async httpx;
5. generation: the generator step's time, and two runs byte-identical;
6. memory: RSS over 100,000 calls;
7. a shared session: refresh requests per expiry for 8 processes x 8 threads on one
   ``FileTokenStore``, and per-call overhead with a ``FileTokenStore`` vs the memory store;
8. a fleet on Redis: refresh requests per expiry for 4 processes x 16 threads on one
   ``RedisTokenStore`` key, the refresh critical section's latency and per-call overhead with a
   ``RedisTokenStore`` vs the memory store (starts its own ``redis-server``; skipped without one);
9. command-line start-up: wall time of ``nsdk --help`` and ``nsdk status`` (signed in, signed
   out) vs ``python -c "import httpx"``.

Prints a table (figure, nsdk, baseline, ratio, target, met?) and writes the whole run as JSON to
``bench/results/<UTC timestamp>.json``. A missed target is printed as MISS, never an exit failure:
this is a benchmark, not a test. Usage: ``python bench/run.py [--quick] [--only NAME,...]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Row, table

FIGURES = (
    "overhead",
    "imports",
    "herd",
    "throughput",
    "generation",
    "memory",
    "sharing",
    "redis_fleet",
    "cli_start",
)


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    import httpx
    import nsdk  # noqa: F401

    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "httpx": httpx.__version__,
        "nsdk": version("nsdk"),
        "executable": sys.executable,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {FIGURES}")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="directory for the JSON"
    )
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(FIGURES)
    unknown = set(names) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {sorted(unknown)}")

    started = time.perf_counter()
    env = environment()
    print(f"nsdk bench: python {env['python']}, {env['platform']}, {env['cpus']} cpus", flush=True)
    rows: list[Row] = []
    timings: dict[str, float] = {}
    context: dict[str, Any] = {}  # figures hand facts to later ones (e.g. generator timings)
    for name in names:
        t0 = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        try:
            module = importlib.import_module(name)
            new = module.run(quick=args.quick, context=context)
        except Exception as exc:  # a broken figure is reported, the others still run
            traceback.print_exc()
            new = [Row(figure=name, met="not measured", note=f"{type(exc).__name__}: {exc}")]
        timings[name] = time.perf_counter() - t0
        rows += new
        print(f"[{name}] done in {timings[name]:.1f} s", flush=True)
        for line in table(new, notes=False).splitlines()[2:]:
            print("   ", line, flush=True)

    total = time.perf_counter() - started
    print()
    print(table(rows))
    missed = [r.figure for r in rows if r.met == "MISS"]
    print()
    print(f"total bench time: {total:.1f} s; targets missed: {len(missed)}")
    for figure in missed:
        print(f"  MISS: {figure}")

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"{stamp}.json"
    env["loadavg_end"] = os.getloadavg()
    payload = {
        "started_utc": stamp,
        "quick": args.quick,
        "environment": env,
        "seconds": {"total": total, **timings},
        "rows": [r.to_json() for r in rows],
        "table": table(rows),
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
