"""Fixtures for sessions shared across clients and processes: servers, a signed-in store, children.

* ``sharing_server(**options)``: a reference server (subprocess) with access TTL 1 s, faults on,
  cheap hashing and no login limits; one per set of options for the whole session, returned
  with no queued faults and zeroed counters. Its log goes to the secret ledger.
* ``sign_in(base_url, path)``: log in once in this process, leaving the session in a
  ``FileTokenStore`` at ``path``; returns that store.
* ``children``: starts ``_child.py`` processes (see its docstring), releases them together
  through a file barrier and collects their JSON reports. Their output goes to the secret
  ledger, and a report whose own secret scan found a leak fails the test. Children still
  running when the test ends are killed.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nsdk
import pytest
from _secret_scan import LEDGER
from nsdk_server.testing import ServerHandle, run_server

EMAIL = "user@example.com"
PASSWORD = "demo-password"  # the reference server's documented demo user
CHILD = Path(__file__).resolve().parent / "_child.py"

#: Every server here: tokens that expire within 1-2 s, faults and counters on, no login limits.
SERVER_DEFAULTS: dict[str, Any] = {
    "access_ttl": 1,
    "faults": True,
    "scrypt_n": 2**12,
    "login_account_rate": None,
    "login_address_rate": None,
}

#: How long children may take to start (import nsdk, build a client), and to finish their work.
START_TIMEOUT = 60.0
FINISH_TIMEOUT = 120.0


class Servers:
    """The servers of the session, one per set of options."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._running: dict[tuple[tuple[str, Any], ...], ServerHandle] = {}
        self._logged: dict[ServerHandle, int] = {}

    def get(self, **options: Any) -> ServerHandle:
        """The server with SERVER_DEFAULTS and ``options``: no queued faults, counters zeroed."""
        merged = {**SERVER_DEFAULTS, **options}
        key = tuple(sorted(merged.items()))
        if key not in self._running:
            self._running[key] = self._stack.enter_context(run_server(**merged))
        handle = self._running[key]
        handle.reset()
        return handle

    def log_to_ledger(self) -> None:
        """Hand what the servers logged since the last call to the secret ledger."""
        for handle in self._running.values():
            text = handle.logs()
            LEDGER.text(f"server log {handle.base_url}", text[self._logged.get(handle, 0) :])
            self._logged[handle] = len(text)


@pytest.fixture(scope="session")
def _servers() -> Iterator[Servers]:
    with contextlib.ExitStack() as stack:
        yield Servers(stack)


@pytest.fixture
def sharing_server(_servers: Servers) -> Iterator[Callable[..., ServerHandle]]:
    """``(**options) -> ServerHandle``: a shared server (see ``Servers.get``)."""
    yield _servers.get
    _servers.log_to_ledger()  # per test: the suite's scan runs before session teardown


@pytest.fixture
def sign_in() -> Callable[[str, Path], nsdk.FileTokenStore]:
    """``(base_url, path) -> FileTokenStore``: log in here once; the session is left in the file."""

    def login(base_url: str, path: Path) -> nsdk.FileTokenStore:
        store = nsdk.FileTokenStore(path)
        with nsdk.Client(base_url, token_store=store, refresh_leeway=0) as client:
            client.login(email=EMAIL, password=PASSWORD)
        return store

    return login


class Children:
    """``_child.py`` processes of one test, a file barrier, and their reports."""

    def __init__(self, workdir: Path) -> None:
        self.barrier = workdir / "barrier"
        self.barrier.mkdir(mode=0o700)
        self.processes: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, mode: str, *args: str, barrier: bool = True) -> None:
        """Start ``_child.py MODE ARGS`` as ``name``; with ``barrier``, it waits for ``go()``.

        A child under the barrier reads nothing from the store before ``go()`` (or ``open()``).
        """
        command = [sys.executable, str(CHILD), mode, "--name", name, *args]
        if barrier:
            command += ["--barrier", str(self.barrier)]
        self.processes[name] = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def open(self) -> None:
        """Let the children read the store and build their clients."""
        (self.barrier / "open").touch()

    def go(self, *names: str) -> None:
        """Open, wait until ``names`` have built their clients, then release them all at once."""
        self.open()
        deadline = time.monotonic() + START_TIMEOUT
        while not all((self.barrier / f"{name}.ready").exists() for name in names):
            died = [n for n in names if self.processes[n].poll() is not None]
            assert not died, f"children exited before the barrier: {died}"
            assert time.monotonic() < deadline, f"children not ready in {START_TIMEOUT:g} s"
            time.sleep(0.01)
        (self.barrier / "go").touch()

    def wait(self, name: str) -> tuple[int, dict[str, Any] | None]:
        """Wait for ``name`` to exit; return its exit code and its report (None if it printed none).

        Its output goes to the secret ledger; a report listing leaks fails the test.
        """
        process = self.processes[name]
        out, err = process.communicate(timeout=FINISH_TIMEOUT)
        LEDGER.text(f"child {name} stdout", out)
        LEDGER.text(f"child {name} stderr", err)
        lines = out.strip().splitlines()
        report: dict[str, Any] | None = json.loads(lines[-1]) if lines else None
        if report is not None:
            assert report["leaks"] == [], f"{name}: a secret in {report['leaks']}"
        elif process.returncode != -signal.SIGKILL:
            # No report and not killed on purpose: say why (stderr holds no secret: scanned).
            pytest.fail(f"child {name} exited {process.returncode} without a report:\n{err}")
        return process.returncode, report

    def report(self, name: str) -> dict[str, Any]:
        """Wait for ``name``, which must exit 0 with a report; return the report."""
        code, report = self.wait(name)
        assert code == 0 and report is not None, f"child {name} exited {code}"
        return report

    def kill_all(self) -> None:
        """Kill the children still running (a failed test must not leave them behind)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    """The ``_child.py`` processes of this test (see ``Children``)."""
    group = Children(tmp_path)
    try:
        yield group
    finally:
        group.kill_all()
