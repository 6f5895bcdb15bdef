"""A client process of the sharing tests: one of many sharing a ``FileTokenStore``.

Run by ``conftest.Children`` as ``python _child.py MODE --store PATH --base-url URL ...``:

* ``threads``: one ``nsdk.Client``, ``--workers`` threads calling ``me()`` for ``--seconds``.
* ``tasks``: one ``nsdk.AsyncClient``, ``--workers`` asyncio tasks calling ``me()`` likewise.
* ``victim``: wait until the stored access token has expired, call ``me()`` (so this process
  refreshes) and SIGKILL itself at ``--kill-at``: ``before_send`` (the refresh request is about
  to leave), ``after_rotate`` (the server answered the refresh, nothing was stored) or
  ``after_store`` (the new pair is stored, the refresh lock still held).
* ``peer``: ``me()``, ``refresh()``, ``me()``, stopping at the first error, each step timed.

With ``--barrier DIR --name NAME`` a process starts (imports) and waits for ``DIR/open`` before it
builds its client (which reads the store), then creates ``DIR/NAME.ready`` and waits for
``DIR/go`` before calling anything: the store is read only once the parent allows it, and all
processes start calling together.
Every mode but a killed victim prints one JSON report on stdout. The suite's secret ledger
(``tests/_secret_scan.py``) runs here too: the report's ``leaks`` lists the origin of every text
of this process (log records, exception texts, the report itself) that holds a token or the
password; the tests require it empty. Nothing here prints a token.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the secret ledger

import _secret_scan
import httpx
import nsdk

KILL_POINTS = ("before_send", "after_rotate", "after_store")
BARRIER_TIMEOUT = 60.0


def die() -> None:
    """End this process the hard way: no cleanup, no lock released by Python, no output."""
    os.kill(os.getpid(), signal.SIGKILL)


class KillingTransport(httpx.BaseTransport):
    """Forwards to httpx's transport; dies around the refresh request (``before_send``...)."""

    def __init__(self, point: str) -> None:
        self._point = point
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        refresh = request.method == "POST" and request.url.path == "/api/auth/refresh"
        if refresh and self._point == "before_send":
            die()
        response = self._inner.handle_request(request)
        if refresh and self._point == "after_rotate":
            response.read()
            if response.status_code == 200:  # the server rotated: the answer dies with us
                die()
        return response

    def close(self) -> None:
        self._inner.close()


class KillingStore(nsdk.FileTokenStore):
    """A ``FileTokenStore`` that dies right after storing a rotated pair (its locks held)."""

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> bool:
        before = self.read().tokens
        written = super().compare_and_set(expected, new, lease)
        if written and new.tokens is not None and new.tokens != before and new.refreshing is None:
            die()
        return written


def wait_for(args: argparse.Namespace, flag: str) -> None:
    """Wait until the parent creates ``DIR/flag`` (no-op without ``--barrier``)."""
    if args.barrier is None:
        return
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not (Path(args.barrier) / flag).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{args.name}: no {flag!r} within {BARRIER_TIMEOUT:g} s")
        time.sleep(0.005)


def ready_then_go(args: argparse.Namespace) -> None:
    """Say this process built its client, then wait for the go (no-op without ``--barrier``)."""
    if args.barrier is not None:
        (Path(args.barrier) / f"{args.name}.ready").touch()
        wait_for(args, "go")


def client_options(args: argparse.Namespace, refreshes: list[list[float | None]]) -> dict[str, Any]:
    """Options every client here shares: the store, reactive refresh at ``exp``, reuse."""

    def refreshed(tokens: nsdk.Tokens) -> None:
        # The token's claims only (iat, exp): never the token.
        refreshes.append([tokens.issued_at, tokens.expires_at])

    return {
        "token_store": nsdk.FileTokenStore(args.store, lock_timeout=args.lock_timeout),
        "refresh_leeway": 0,
        "refresh_reuse_interval": args.reuse,
        "on_tokens_refreshed": refreshed,
    }


class Tally:
    """Calls and errors (by type, with the first message of each type) of the workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.slowest = 0.0  # the longest call (seconds): a machine too busy shows here first
        self.last_ended = 0.0  # when the last call ended (Unix time)
        self.errors: collections.Counter[str] = collections.Counter()
        self.messages: dict[str, str] = {}

    def _ended(self, start: float) -> None:
        # Caller holds self._lock; ``start`` is the call's time.monotonic() at its start.
        ended = time.time()
        self.calls += 1
        self.slowest = max(self.slowest, time.monotonic() - start)
        self.last_ended = max(self.last_ended, ended)

    def ok(self, start: float) -> None:
        with self._lock:
            self._ended(start)

    def failed(self, exc: Exception, start: float) -> None:
        name = type(exc).__name__
        with self._lock:
            self._ended(start)
            self.errors[name] += 1
            if name not in self.messages:
                self.messages[name] = str(exc)
                _secret_scan.LEDGER.exception(exc)


def run_threads(args: argparse.Namespace) -> dict[str, Any]:
    """``--workers`` threads share one ``nsdk.Client``; each calls ``me()`` until the end."""
    refreshes: list[list[float | None]] = []
    tally = Tally()
    wait_for(args, "open")
    client = nsdk.Client(args.base_url, **client_options(args, refreshes))
    ready_then_go(args)
    started = time.time()
    deadline = time.monotonic() + args.seconds

    def work() -> None:
        rng = random.Random()
        time.sleep(rng.uniform(0, args.pause))  # the workers' calls out of step from the start
        while (start := time.monotonic()) < deadline:
            try:
                client.me()
                tally.ok(start)
            except Exception as exc:  # counted: the test requires none
                tally.failed(exc, start)
            time.sleep(min(args.pause, max(0.0, deadline - time.monotonic())))

    threads = [threading.Thread(target=work) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    return load_report(tally, refreshes, started)


def run_tasks(args: argparse.Namespace) -> dict[str, Any]:
    """``--workers`` asyncio tasks share one ``nsdk.AsyncClient``; each calls ``me()``."""
    refreshes: list[list[float | None]] = []
    tally = Tally()

    async def main() -> float:
        client = nsdk.AsyncClient(args.base_url, **client_options(args, refreshes))
        await asyncio.to_thread(ready_then_go, args)
        started = time.time()
        deadline = time.monotonic() + args.seconds

        async def work() -> None:
            rng = random.Random()
            await asyncio.sleep(rng.uniform(0, args.pause))  # out of step from the start
            while (start := time.monotonic()) < deadline:
                try:
                    await client.me()
                    tally.ok(start)
                except Exception as exc:  # counted: the test requires none
                    tally.failed(exc, start)
                await asyncio.sleep(min(args.pause, max(0.0, deadline - time.monotonic())))

        await asyncio.gather(*(work() for _ in range(args.workers)))
        await client.aclose()
        return started

    wait_for(args, "open")
    started = asyncio.run(main())
    return load_report(tally, refreshes, started)


def load_report(
    tally: Tally, refreshes: list[list[float | None]], started: float
) -> dict[str, Any]:
    """What a load process reports: calls, errors, its rotations' (iat, exp), its window."""
    return {
        "calls": tally.calls,
        "slowest": tally.slowest,
        "errors": dict(tally.errors),
        "messages": tally.messages,
        "refreshes": refreshes,
        "started": started,
        "ended": tally.last_ended,
    }


def run_victim(args: argparse.Namespace) -> dict[str, Any]:
    """Refresh the stored pair once its access token expired, and die at ``--kill-at``."""
    refreshes: list[list[float | None]] = []
    options = client_options(args, refreshes)
    if args.kill_at == "after_store":
        options["token_store"] = KillingStore(args.store, lock_timeout=args.lock_timeout)
    else:
        options["transport"] = KillingTransport(args.kill_at)
    stored = options["token_store"].read().tokens
    if stored is None or stored.expires_at is None:
        raise SystemExit("victim: the store holds no JWT pair")
    while time.time() < stored.expires_at:  # reactive refresh, and the peers' token expired too
        time.sleep(0.01)
    with nsdk.Client(args.base_url, **options) as client:
        client.me()  # the proactive refresh of the expired token: dies inside it
    return {"survived": True, "refreshes": refreshes}  # the kill point was never reached


def run_peer(args: argparse.Namespace) -> dict[str, Any]:
    """``me()``, ``refresh()``, ``me()`` after a victim died; each step with its outcome."""
    refreshes: list[list[float | None]] = []
    steps: list[dict[str, Any]] = []
    wait_for(args, "open")
    with nsdk.Client(args.base_url, **client_options(args, refreshes)) as client:
        ready_then_go(args)
        for name in ("me", "refresh", "me"):
            start = time.monotonic()
            try:
                getattr(client, name)()
            except Exception as exc:  # reported: the test says which are expected
                _secret_scan.LEDGER.exception(exc)
                steps.append(
                    {
                        "step": name,
                        "error": type(exc).__name__,
                        "message": str(exc),
                        "seconds": time.monotonic() - start,
                    }
                )
                break
            steps.append({"step": name, "error": None, "seconds": time.monotonic() - start})
    return {"steps": steps, "refreshes": refreshes}


def leaks(report: dict[str, Any]) -> list[str]:
    """Origins of this process's texts (the report's included) that hold a secret."""
    ledger = _secret_scan.LEDGER
    ledger.text("report", json.dumps(report))
    secrets = sorted(ledger.secrets)  # the workers have stopped: nothing changes any more
    texts = {text: origin for origin, text in ledger.texts}  # many log lines repeat
    return sorted({origin for text, origin in texts.items() if any(s in text for s in secrets)})


def main() -> None:
    """Parse the arguments, run the mode, print the report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("threads", "tasks", "victim", "peer"))
    parser.add_argument("--store", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--pause", type=float, default=0.015)
    parser.add_argument("--reuse", type=float, default=0.0)
    parser.add_argument("--lock-timeout", type=float, default=30.0)
    parser.add_argument("--kill-at", choices=KILL_POINTS)
    parser.add_argument("--barrier")
    parser.add_argument("--name", default="child")
    args = parser.parse_args()
    _secret_scan._install()  # the suite's hooks: every Tokens, log record and nsdk error
    run = {"threads": run_threads, "tasks": run_tasks, "victim": run_victim, "peer": run_peer}
    report = run[args.mode](args)
    report["name"] = args.name
    report["leaks"] = leaks(report)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
