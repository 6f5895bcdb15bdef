"""A real forward proxy for the network tests: Debian's ``tinyproxy``, on a free loopback port.

``.ci/run`` installs it (``apt-get install tinyproxy``); a missing binary fails the tests, never
skips them. Each proxy runs in the foreground (``tinyproxy -d``) with a generated configuration
that logs every connection, so the tests can count the ``CONNECT`` tunnels it opened and check
that nothing of the requests passed through it in clear text.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Tinyproxy:
    """One running ``tinyproxy``: its URL, its log, and a way to stop it.

    Attributes:
        port: The loopback port it listens on.
        url: ``http://127.0.0.1:PORT``, with ``user:password@`` when BasicAuth is on.
        bare_url: The same URL without credentials.
        log_path: Its log file (``LogLevel Info``: one ``CONNECT`` line per tunnel).
    """

    def __init__(self, workdir: Path, *, auth: tuple[str, str] | None = None) -> None:
        """Write the configuration and start ``tinyproxy -d`` on a free port."""
        binary = shutil.which("tinyproxy")
        if binary is None:
            pytest.fail(
                "tinyproxy is not installed: the network tests need Debian's real forward proxy. "
                "Run .ci/run (it installs it) or 'apt-get install tinyproxy'."
            )
        self.port = free_port()
        self.bare_url = f"http://127.0.0.1:{self.port}"
        self.url = self.bare_url
        if auth is not None:
            self.url = f"http://{auth[0]}:{auth[1]}@127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "tinyproxy.log"
        self.log_path.write_text("")
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Bind 127.0.0.1",
            "Allow 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log_path}"',
            "LogLevel Info",
            "MaxClients 20",
            "DisableViaHeader Yes",
            # No ConnectPort line: CONNECT is allowed to every port (the test server's included).
        ]
        if auth is not None:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        self.conf_path = workdir / "tinyproxy.conf"
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [binary, "-d", "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read() if self.process.stderr else ""
                pytest.fail(f"tinyproxy exited at start ({self.process.returncode}): {stderr}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail(f"tinyproxy did not listen on 127.0.0.1:{self.port} in {_START_TIMEOUT} s")

    def log(self) -> str:
        """The proxy's log so far."""
        return self.log_path.read_text(errors="replace")

    def connects(self, host_port: str | None = None) -> list[str]:
        """The log's ``CONNECT`` request lines (to ``host_port`` when given), one per tunnel."""
        found = []
        for line in self.log().splitlines():
            wanted = "CONNECT " if host_port is None else f"CONNECT {host_port} "
            if "Request (file descriptor" in line and wanted in line:
                found.append(line)
        return found

    def connections(self) -> int:
        """How many client connections the proxy accepted (its ``Connect (file descriptor``)."""
        return sum("Connect (file descriptor" in line for line in self.log().splitlines())

    def stop(self) -> None:
        """Stop the proxy (idempotent): SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(_STOP_TIMEOUT)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def tinyproxy_factory(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    """Start tinyproxies (``auth=(user, password)`` for BasicAuth); all stopped at teardown."""
    started: list[Tinyproxy] = []

    def start(*, auth: tuple[str, str] | None = None) -> Tinyproxy:
        proxy = Tinyproxy(tmp_path / f"tinyproxy-{len(started)}", auth=auth)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def tinyproxy(tinyproxy_factory: Callable[..., Tinyproxy]) -> Tinyproxy:
    """One tinyproxy without authentication, stopped at teardown."""
    return tinyproxy_factory()
