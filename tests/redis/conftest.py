"""A real Redis for the tests: Debian's ``redis-server`` as a subprocess on a free loopback port.

* ``redis_server``: a started server without persistence (data lives in memory only).
* ``redis_persistent``: a started server with AOF and ``appendfsync always``: every write is on
  disk before it is acknowledged, so a SIGKILL loses nothing.
* ``redis_factory(persistence=False, password=None, users=None, acl_rules=ALL_ACCESS)``: starts
  one with those options; ``users`` maps ACL user names to passwords.

Each server runs in its own tmp directory and is stopped at teardown, failed test or not; its log
goes to the secret ledger. Handles (``RedisServer``) can ``stop()``, ``kill()`` and ``start()``
again on the same port and directory, which is how the tests simulate outages and restarts.
Passwords go to a 0600 config file, never on the command line (``ps`` shows argv), and are masked
in the handle's repr and in ``logs()``.

``redis-server`` must be on PATH: ``.ci/run`` installs it (``apt-get install redis-server``).
Without it these tests fail rather than skip, so CI cannot pass without exercising Redis.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import pytest
import redis
from _secret_scan import LEDGER
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
READY_TIMEOUT = 10.0  # seconds for a (re)started server to answer PING
STOP_TIMEOUT = 10.0  # seconds for SIGTERM to end it (it fsyncs the AOF first)
PORT_ATTEMPTS = 5  # a free port can be taken between our probe and redis-server's bind
LOG_TAIL = 20  # lines of the server log in a start failure's message
MIN_VERSION = (6, 0)  # ACL users and the commands the stores use
ALL_ACCESS = "~* &* +@all"  # ACL rules: every key, channel and command


class RedisServer:
    """One ``redis-server`` process bound to ``127.0.0.1:port``, restartable on the same port."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        *,
        persistence: bool = False,
        password: str | None = None,
        users: Mapping[str, str] | None = None,
        acl_rules: str = ALL_ACCESS,
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.persistence = persistence
        self.password = password
        self.users = dict(users or {})  # ACL user name -> password
        self.acl_rules = acl_rules
        self.port = 0  # chosen at the first start(), kept for every restart
        self._process: subprocess.Popen[bytes] | None = None
        self._clients: list[redis.Redis] = []
        self._log = directory / "redis-server.log"
        self._secrets = [s for s in (password, *self.users.values()) if s]

    def __repr__(self) -> str:
        url = self._url(self.password, masked=True)
        state = "running" if self.running else "stopped"
        return f"<RedisServer {url} persistence={self.persistence} {state}>"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port/0``, with ``:password@`` when the server requires one."""
        return self._url(self.password)

    def url_for(self, user: str) -> str:
        """The URL that authenticates as an ACL user: ``redis://user:password@host:port/0``."""
        password = quote(self.users[user], safe="")
        return f"redis://{quote(user, safe='')}:{password}@{self._addr()}"

    @property
    def running(self) -> bool:
        """Whether the process is alive (not whether it answers yet)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (again: same port and directory) and wait until it answers PING.

        Raises:
            RuntimeError: it is already running, or it did not answer within READY_TIMEOUT
                (the message ends with the log's last lines).
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        if self.port:  # a restart: the port is part of the scenario, never change it
            self._launch()
            self._wait_ready(port_may_be_taken=False)
            return
        for attempt in range(PORT_ATTEMPTS):
            self.port = _free_port()
            self._launch()
            if self._wait_ready(port_may_be_taken=attempt < PORT_ATTEMPTS - 1):
                return

    def stop(self) -> None:
        """SIGTERM and wait: a clean shutdown (the AOF is flushed). No-op when not running."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(
                f"{self!r} ignored SIGTERM for {STOP_TIMEOUT:g} s and was killed"
            ) from None

    def kill(self) -> None:
        """SIGKILL and wait: a crash, nothing flushed beyond what was already fsynced."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def client(self, **options: Any) -> redis.Redis:
        """A redis-py sync client for this server (default user, ``password`` if set).

        It never retries (redis-py's default retries with backoff for seconds), so a stopped
        server fails the call at once. ``options`` override redis.Redis's arguments, e.g.
        ``password=None`` for a client that does not authenticate, ``username=..., password=...``
        for an ACL user. Closed at teardown.
        """
        settings: dict[str, Any] = {
            "host": HOST,
            "port": self.port,
            "db": 0,
            "password": self.password,
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "retry": _no_retry(),
            **options,
        }
        client = redis.Redis(**settings)
        self._clients.append(client)
        return client

    def logs(self) -> str:
        """The server's log (every start so far), with its passwords masked."""
        try:
            text = self._log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        """Teardown: close the clients, stop (kill if it will not stop), log to the ledger."""
        for client in self._clients:
            with contextlib.suppress(redis.RedisError):
                client.close()
        try:
            self.stop()
        finally:
            self.kill()
            LEDGER.text(f"redis-server log {self.directory.name}", self.logs())

    def _addr(self) -> str:
        return f"{HOST}:{self.port}/0"

    def _url(self, password: str | None, *, masked: bool = False) -> str:
        if not password:
            return f"redis://{self._addr()}"
        return f"redis://:{'***' if masked else quote(password, safe='')}@{self._addr()}"

    def _launch(self) -> None:
        # Secrets go in a 0600 file (the first argument), the rest on the command line.
        conf = self.directory / "secrets.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            if self.password:
                out.write(f"requirepass {_quoted(self.password)}\n")
            for user, password in self.users.items():
                out.write(f"user {user} on {_quoted('>' + password)} {self.acl_rules}\n")
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistence
            else ["--appendonly", "no"]
        )
        command = [
            self.binary,
            str(conf),
            *("--bind", HOST, "--port", str(self.port), "--dir", str(self.directory)),
            *("--save", ""),  # no RDB snapshots in either mode: only the AOF persists
            *persistence,
            *("--daemonize", "no", "--logfile", "", "--always-show-logo", "no"),
        ]
        with self._log.open("ab") as log:
            log.write(f"--- start on port {self.port} ---\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_ready(self, *, port_may_be_taken: bool) -> bool:
        """Wait for PING; False if the port was taken meanwhile and the caller may pick another."""
        assert self._process is not None
        probe = redis.Redis(
            host=HOST,
            port=self.port,
            password=self.password,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=_no_retry(),
        )
        last_error: BaseException | None = None
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    if port_may_be_taken and "Address already in use" in self._last_start_log():
                        return False
                    self._fail(f"redis-server exited with code {self._process.returncode}")
                try:
                    if probe.ping():
                        return True
                except redis.RedisError as exc:  # refused, LOADING the AOF, timeout
                    last_error = exc
                time.sleep(0.02)
        finally:
            probe.close()
        self.kill()
        self._fail(f"redis-server did not answer PING within {READY_TIMEOUT:g} s ({last_error!r})")

    def _last_start_log(self) -> str:
        return self.logs().rsplit("--- start on port", 1)[-1]

    def _fail(self, what: str) -> NoReturn:
        tail = "\n".join(self.logs().splitlines()[-LOG_TAIL:])
        raise RuntimeError(
            f"{what} on {HOST}:{self.port} (dir {self.directory}); last log lines:\n{tail}"
        )


def _no_retry() -> Retry:
    """A redis-py retry policy that does not retry: errors surface at once."""
    return Retry(NoBackoff(), 0)


def _quoted(value: str) -> str:
    """A redis.conf string argument: double-quoted, with backslashes and quotes escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _free_port() -> int:
    """A loopback port free right now (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def find_redis_server() -> str:
    """The path of ``redis-server`` on PATH; fails the test (never skips) if missing or too old."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not on PATH. .ci/run installs it (apt-get install redis-server); "
            "on Debian or Ubuntu run `sudo apt-get install redis-server`, on macOS "
            "`brew install redis`. The tests start their own servers: no service needs to run.",
            pytrace=False,
        )
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"v=(\d+)\.(\d+)", version.stdout)
    if found is None or (int(found[1]), int(found[2])) < MIN_VERSION:
        pytest.fail(
            f"{binary} is not redis-server >= {'.'.join(map(str, MIN_VERSION))}: "
            f"{version.stdout.strip() or version.stderr.strip()}",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The path of ``redis-server``, checked once per session (see find_redis_server)."""
    return find_redis_server()


@pytest.fixture
def redis_factory(redis_binary: str, tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start servers: ``redis_factory(persistence=, password=, users=, acl_rules=)``, all optional.

    ``persistence`` turns on the AOF (fsync always); ``password`` is the default user's
    (``requirepass``); ``users`` maps ACL user names to passwords, each with ``acl_rules``
    (default: all access).
    """
    servers: list[RedisServer] = []

    def start(
        *,
        persistence: bool = False,
        password: str | None = None,
        users: Mapping[str, str] | None = None,
        acl_rules: str = ALL_ACCESS,
    ) -> RedisServer:
        for secret in (password, *(users or {}).values()):
            if secret:
                LEDGER.secret(secret)
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(
            redis_binary,
            directory,
            persistence=persistence,
            password=password,
            users=users,
            acl_rules=acl_rules,
        )
        servers.append(server)
        server.start()
        return server

    yield start
    with contextlib.ExitStack() as stack:  # close them all, even if one close fails
        for server in servers:
            stack.callback(server.close)


@pytest.fixture
def redis_server(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    """A running server without persistence: a restart comes back empty."""
    return redis_factory()


@pytest.fixture
def redis_persistent(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    """A running server with AOF, fsync on every write: a restart, even after SIGKILL, keeps all."""
    return redis_factory(persistence=True)
