"""Run the reference server from Python tests, and script its faults.

`run_server(**options)` starts `python -m nsdk_server` as a subprocess on a free loopback port and
yields a `ServerHandle`; `run_server_in_thread(**options)` runs the same app with uvicorn in a
thread of this process (faster to start, shares the GIL). Options are the CLI options in snake case:

    access_ttl=1, refresh_ttl=60, refresh_reuse_interval=10,
    db="/tmp/x.sqlite3", secret="s3cret", faults=True,
    users=[{"email": ..., "password": ..., "userId": ..., "tenantId": ...}],
    user=["a@example.com:pw:1006:2001"], no_default_user=True,
    login_account_rate="5/60" or (5, 60) or None (off), login_address_rate=..., global_rate=...,
    scrypt_n=4096, log_level="info", access_log=False,
    tls=True (HTTPS with a throwaway CA: `handle.ca_path`, `handle.ssl_context()`),
    client_cert=True (mutual TLS, implies tls: `handle.client_cert_path`),
    cors_origin=["http://127.0.0.1:8001"] (or one string: origins allowed to call from a browser)
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = [
    "FaultsClient",
    "ServerHandle",
    "run_server",
    "run_server_in_thread",
    "server_args",
    "stop_process",
]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


def _rate(value: Any) -> str:
    if value is None or value is False:
        return "off"
    if isinstance(value, tuple | list):
        return f"{value[0]}/{value[1]}"
    return str(value)


def server_args(**options: Any) -> list[str]:
    """Translate keyword options into `python -m nsdk_server` arguments.

    `client_cert=True` is `--require-client-cert`; the runners add `--tls` and the output paths.
    `users` may be a list of user dicts (written to a temporary JSON file) or a path; `secret` is
    passed on the command line (prefer the NSDK_SERVER_SECRET environment variable for real keys).

    Raises:
        TypeError: on an unknown option.
    """
    known = {
        "access_ttl",
        "refresh_ttl",
        "refresh_reuse_interval",
        "db",
        "secret",
        "faults",
        "users",
        "user",
        "no_default_user",
        "login_account_rate",
        "login_address_rate",
        "global_rate",
        "scrypt_n",
        "log_level",
        "access_log",
        "tls",
        "client_cert",
        "tls_ca_out",
        "tls_client_cert_out",
        "cors_origin",
    }
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown server options: {sorted(unknown)}")
    args: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if name in {"faults", "no_default_user", "access_log", "tls"}:
            if value:
                args.append(flag)
        elif name == "client_cert":
            if value:
                args.append("--require-client-cert")
        elif name.endswith("_rate"):
            args += [flag, _rate(value)]
        elif name == "users" and not isinstance(value, str | Path):
            with tempfile.NamedTemporaryFile(
                "w", prefix="nsdk-users-", suffix=".json", delete=False, encoding="utf-8"
            ) as fh:
                json.dump(list(value), fh)
            args += [flag, fh.name]
        elif name in {"user", "cors_origin"}:
            for item in [value] if isinstance(value, str) else value:
                args += [flag, item]
        elif value is not None:
            args += [flag, str(value)]
    return args


class FaultsClient:
    """Scripts the server's faults through the control API (`/_nsdk/faults`)."""

    def __init__(self, base_url: str, *, verify: ssl.SSLContext | bool = True) -> None:
        """Talk to the server at `base_url` (started with faults enabled).

        Args:
            base_url: The server's URL.
            verify: For an HTTPS server, an `SSLContext` trusting its CA (and presenting the
                client certificate it requires); see `ServerHandle.ssl_context`.
        """
        self._base_url = base_url
        self._verify = verify

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        with httpx.Client(
            base_url=self._base_url, trust_env=False, timeout=10.0, verify=self._verify
        ) as client:
            response = client.request(method, path, json=payload)
        response.raise_for_status()
        return response.json()

    def add(
        self,
        op: str,
        *,
        status: int | None = None,
        retry_after: str | int | None = None,
        body: str | None = None,
        delay: float | None = None,
        drop: str | None = None,
        perform: bool = False,
        exception: bool = False,
        times: int = 1,
        size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Queue a fault for the next `times` requests of operation `op`; return the queue."""
        entry: dict[str, Any] = {"op": op, "times": times}
        optional = {
            "status": status,
            "body": body,
            "delay": delay,
            "drop": drop,
            "size": size,
            "retry_after": None if retry_after is None else str(retry_after),
        }
        entry.update({key: value for key, value in optional.items() if value is not None})
        if perform:
            entry["perform"] = True
        if exception:
            entry["exception"] = True
        return self.add_entries([entry])

    def add_entries(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Queue raw JSON fault entries (see README); return the queue."""
        result: list[dict[str, Any]] = self._call("POST", "/_nsdk/faults", entries)["faults"]
        return result

    def pending(self) -> list[dict[str, Any]]:
        """Return the queued fault entries with their remaining counts."""
        result: list[dict[str, Any]] = self._call("GET", "/_nsdk/faults")["faults"]
        return result

    def clear(self) -> int:
        """Drop every queued fault; return how many entries were dropped."""
        cleared: int = self._call("DELETE", "/_nsdk/faults")["cleared"]
        return cleared


class ServerHandle:
    """A running reference server: its URL, its fault script and its counters.

    Attributes:
        base_url: `http://127.0.0.1:PORT`, or `https://...` for a server started with `tls=True`.
        ca_path: the throwaway CA's certificate (PEM) that HTTPS clients trust, or None.
        client_cert_path: with `client_cert=True`, the client certificate and its key in one PEM
            file (httpx's `cert=`, `SSLContext.load_cert_chain`), else None.
        log_path: the server's stderr (subprocess servers only).
        process: the server's `subprocess.Popen` (subprocess servers only).
    """

    def __init__(
        self,
        base_url: str,
        log_path: Path | None = None,
        process: subprocess.Popen[str] | None = None,
        *,
        ca_path: Path | None = None,
        client_cert_path: Path | None = None,
    ) -> None:
        """Describe a server listening at `base_url`."""
        self.base_url = base_url
        self.log_path = log_path
        self.process = process
        self.ca_path = ca_path
        self.client_cert_path = client_cert_path
        self.faults = FaultsClient(
            base_url, verify=self.ssl_context() if ca_path is not None else True
        )

    def __repr__(self) -> str:
        """Show the URL."""
        return f"ServerHandle(base_url={self.base_url!r})"

    def ssl_context(self, *, client_cert: bool = True) -> ssl.SSLContext:
        """Return a client `SSLContext` for this HTTPS server: httpx's `verify=`.

        It trusts the server's throwaway CA only and, on a server that requires a client
        certificate, presents `client_cert_path` (unless `client_cert=False`).

        Raises:
            ValueError: if the server was not started with `tls=True`.
        """
        if self.ca_path is None:
            raise ValueError(f"{self.base_url} was not started with tls=True: no CA to trust")
        context = ssl.create_default_context(cafile=str(self.ca_path))
        if client_cert and self.client_cert_path is not None:
            context.load_cert_chain(str(self.client_cert_path))
        return context

    def stats(self) -> dict[str, Any]:
        """Return the server's counters (`GET /_nsdk/stats`)."""
        result: dict[str, Any] = self.faults._call("GET", "/_nsdk/stats")
        return result

    def reset_stats(self) -> None:
        """Set the server's counters to zero."""
        self.faults._call("POST", "/_nsdk/stats/reset")

    def reset(self) -> None:
        """Clear queued faults and counters: a clean slate for the next test."""
        self.faults.clear()
        self.reset_stats()

    def logs(self) -> str:
        """Return what the server logged so far (subprocess servers only)."""
        if self.log_path is None:
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _read_first_line(stream: IO[str], proc: subprocess.Popen[str]) -> str | None:
    """Return the first stdout line, then keep draining stdout in the background."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        first = True
        for line in stream:
            if first:
                lines.put(line)
                first = False
        if first:
            lines.put(None)

    threading.Thread(target=pump, name="nsdk-server-stdout", daemon=True).start()
    try:
        return lines.get(timeout=_START_TIMEOUT)
    except queue.Empty:
        return None


def stop_process(proc: subprocess.Popen[str], timeout: float = _STOP_TIMEOUT) -> None:
    """Terminate ``proc`` if it still runs; kill it if it has not ended within ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tls_outputs(
    options: dict[str, Any], directory: Path
) -> tuple[dict[str, Any], Path | None, Path | None]:
    """Options with `tls` and the output paths filled in; the CA and client certificate paths."""
    options = dict(options)
    if options.get("client_cert"):
        options["tls"] = True
    if not options.get("tls"):
        return options, None, None
    ca = Path(options.setdefault("tls_ca_out", str(directory / "ca.pem")))
    client = None
    if options.get("client_cert"):
        client = Path(options.setdefault("tls_client_cert_out", str(directory / "client.pem")))
    return options, ca, client


@contextlib.contextmanager
def run_server(**options: Any) -> Iterator[ServerHandle]:
    """Start the server as a subprocess on a free loopback port; stop it on exit.

    Keyword options are those of `server_args`. Logs go to a temporary file (`handle.logs()`).
    With `tls=True` the CA bundle (and with `client_cert=True` the client certificate) go to a
    temporary directory removed on exit, unless `tls_ca_out` (`tls_client_cert_out`) says where.

    Raises:
        RuntimeError: if the server does not print its URL in time (the log is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="nsdk-server-tls-") as tls_dir:
        options, ca_path, client_cert_path = _tls_outputs(options, Path(tls_dir))
        with _run_subprocess(options) as (base_url, log_path, proc):
            yield ServerHandle(
                base_url, log_path, proc, ca_path=ca_path, client_cert_path=client_cert_path
            )


@contextlib.contextmanager
def _run_subprocess(
    options: dict[str, Any],
) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    fd, log_name = tempfile.mkstemp(prefix="nsdk-server-", suffix=".log")
    os.close(fd)
    log_path = Path(log_name)
    cmd = [
        sys.executable,
        "-m",
        "nsdk_server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *server_args(**options),
    ]
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True
        )
    try:
        assert proc.stdout is not None
        line = _read_first_line(proc.stdout, proc)
        if not line or not line.startswith("http"):
            stop_process(proc)
            raise RuntimeError(f"nsdk_server did not start:\n{log_path.read_text()}")
        yield line.strip(), log_path, proc
    finally:
        stop_process(proc)


@contextlib.contextmanager
def run_server_in_thread(**options: Any) -> Iterator[ServerHandle]:
    """Run the server with uvicorn in a background thread of this process; stop it on exit.

    Options and TLS files are those of `run_server`.
    """
    with tempfile.TemporaryDirectory(prefix="nsdk-server-tls-") as tls_dir:
        options, ca_path, client_cert_path = _tls_outputs(options, Path(tls_dir))
        with _run_thread(options) as base_url:
            yield ServerHandle(base_url, ca_path=ca_path, client_cert_path=client_cert_path)


@contextlib.contextmanager
def _run_thread(options: dict[str, Any]) -> Iterator[str]:
    from .app import create_app
    from .cli import bind, build_config, parser, url_of, uvicorn_config
    from .connections import make_protocol_class
    from .tls import load, prepare

    args = parser().parse_args(["--port", "0", *server_args(**options)])
    config = build_config(args)
    server_app = create_app(config)
    serving = prepare(config.tls, "127.0.0.1") if config.tls is not None else None
    import uvicorn

    settings = uvicorn_config(
        server_app.asgi,
        make_protocol_class(server_app.registry),
        access_log=args.access_log,
        log_level="warning",
        tls=serving,
    )
    if serving is not None:
        load(settings, serving)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(settings)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="nsdk-server"
    )
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield url_of(sock, tls=serving is not None)
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        sock.close()
