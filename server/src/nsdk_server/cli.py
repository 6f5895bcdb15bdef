"""Command line: `python -m nsdk_server [options]`.

The first line on stdout is the URL the server listens on (e.g. `http://127.0.0.1:54321`, or
`https://...` with `--tls`), printed once the socket listens; nothing else goes to stdout. Logs go
to stderr, and so do the paths of the files written for HTTPS clients (the CA bundle, the client
certificate), before the URL.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import math
import os
import secrets
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from .config import (
    DEFAULT_USER,
    ServerConfig,
    TlsConfig,
    load_users_file,
    parse_cors_origin,
    parse_rate,
    parse_user,
)

if TYPE_CHECKING:
    from .tls import ServingTls

__all__ = ["build_config", "main", "parser"]

BACKLOG = 2048


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: any free one)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port from 0 to 65535 (0: any free one), got {text!r}"
        )
    return port


def parser() -> argparse.ArgumentParser:
    """Return the argument parser (its help text documents every default)."""
    p = argparse.ArgumentParser(
        prog="python -m nsdk_server",
        description="Reference server for the NSDK authentication API (openapi.yaml).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument(
        "--port", type=port_number, default=8000, help="port to bind; 0 picks a free one"
    )
    p.add_argument("--access-ttl", type=float, default=300.0, help="access-token TTL, seconds")
    p.add_argument("--refresh-ttl", type=float, default=86400.0, help="refresh-token TTL, seconds")
    p.add_argument(
        "--refresh-reuse-interval",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="answer a repeat of the just rotated refresh token within this many seconds of its"
        " rotation with the same current pair instead of revoking the family; 0: always replay",
    )
    p.add_argument("--db", metavar="PATH", help="SQLite file (survives restarts); default memory")
    p.add_argument("--secret", help="HS256 key (default: $NSDK_SERVER_SECRET, else random)")
    p.add_argument("--faults", action="store_true", help="mount the /_nsdk test control API")
    p.add_argument(
        "--users",
        type=Path,
        metavar="FILE",
        help="JSON list of {email, password, userId, tenantId} to seed",
    )
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="EMAIL:PASSWORD[:UID[:TID]]",
        help="seed one more user (repeatable)",
    )
    p.add_argument(
        "--no-default-user",
        action="store_true",
        help=f"do not seed the demo user {DEFAULT_USER.email}",
    )
    p.add_argument(
        "--login-account-rate",
        default="100/60",
        metavar="N/SECONDS",
        help="login attempts per account; 'off' disables",
    )
    p.add_argument(
        "--login-address-rate",
        default="1000/60",
        metavar="N/SECONDS",
        help="login attempts per client address; 'off' disables",
    )
    p.add_argument(
        "--global-rate",
        default="off",
        metavar="N/SECONDS",
        help="requests per client address on all API routes; 'off' disables",
    )
    p.add_argument("--scrypt-n", type=int, default=2**14, help="scrypt cost for password hashes")
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages from this exact origin (e.g. http://127.0.0.1:8001) call the API from a"
        " browser (CORS; repeatable; no wildcard: localhost and 127.0.0.1 are different origins)",
    )
    p.add_argument("--log-level", default="info", help="python logging level for stderr")
    p.add_argument("--access-log", action="store_true", help="log each request line to stderr")
    tls = p.add_argument_group("HTTPS")
    tls.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate for 127.0.0.1, ::1, localhost (and --host) from a"
        " throwaway CA made at startup; the CA bundle's path is printed on stderr",
    )
    tls.add_argument(
        "--tls-ca-out",
        type=Path,
        metavar="PATH",
        help="with --tls: write the CA bundle clients trust here (default: ca.pem in a new"
        " private temp dir)",
    )
    tls.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="serve HTTPS with this certificate chain (PEM) instead of a throwaway CA's",
    )
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="the private key of --tls-cert")
    tls.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="PATH",
        help="mutual TLS: require a client certificate signed by a CA in this PEM bundle",
    )
    tls.add_argument(
        "--require-client-cert",
        action="store_true",
        help="mutual TLS with --tls: require a client certificate from the throwaway CA, which"
        " issues one (certificate and key) to --tls-client-cert-out",
    )
    tls.add_argument(
        "--tls-client-cert-out",
        type=Path,
        metavar="PATH",
        help="with --require-client-cert: write the client certificate and key here (default:"
        " client.pem next to the CA bundle)",
    )
    return p


def build_tls(args: argparse.Namespace) -> TlsConfig | None:
    """Return the HTTPS settings the options ask for, or None for plain HTTP.

    Raises:
        ValueError: on inconsistent options.
    """
    given = args.tls_cert is not None or args.tls_key is not None
    if given and (args.tls_cert is None or args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together: pass both")
    if given and args.tls:
        raise ValueError(
            "--tls makes a throwaway certificate; --tls-cert/--tls-key give one: pick one"
        )
    if not (args.tls or given):
        for flag in ("tls_ca_out", "tls_client_ca", "require_client_cert", "tls_client_cert_out"):
            if getattr(args, flag):
                option = "--" + flag.replace("_", "-")
                raise ValueError(f"{option} needs HTTPS: add --tls (or --tls-cert and --tls-key)")
        return None
    if given and (args.tls_ca_out or args.require_client_cert):
        raise ValueError(
            "--tls-ca-out and --require-client-cert use the throwaway CA of --tls; with your own"
            " certificate, require client certificates with --tls-client-ca"
        )
    if args.require_client_cert and args.tls_client_ca:
        raise ValueError(
            "--require-client-cert and --tls-client-ca both set the client CA: pick one"
        )
    if args.tls_client_cert_out and not args.require_client_cert:
        raise ValueError("--tls-client-cert-out needs --require-client-cert")
    return TlsConfig(
        cert_file=args.tls_cert,
        key_file=args.tls_key,
        ca_out=args.tls_ca_out,
        client_ca=args.tls_client_ca,
        require_client_cert=args.require_client_cert,
        client_cert_out=args.tls_client_cert_out,
    )


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Turn parsed options into a `ServerConfig`.

    Raises:
        ValueError: on inconsistent options.
    """
    secret_text = args.secret or os.environ.get("NSDK_SERVER_SECRET")
    secret = secret_text.encode() if secret_text else secrets.token_bytes(32)
    users = [] if args.no_default_user else [DEFAULT_USER]
    if args.users:
        users += load_users_file(args.users)
    users += [parse_user(text, i) for i, text in enumerate(args.user, start=1)]
    if not users:
        raise ValueError("no users to seed")
    if args.access_ttl <= 0 or args.refresh_ttl <= 0:
        raise ValueError("--access-ttl and --refresh-ttl must be positive")
    if not math.isfinite(args.refresh_reuse_interval) or args.refresh_reuse_interval < 0:
        raise ValueError("--refresh-reuse-interval must be a finite number of seconds >= 0")
    return ServerConfig(
        secret=secret,
        access_ttl=args.access_ttl,
        refresh_ttl=args.refresh_ttl,
        refresh_reuse_interval=args.refresh_reuse_interval,
        db_path=args.db,
        faults=args.faults,
        users=tuple(users),
        login_account_rate=parse_rate(args.login_account_rate),
        login_address_rate=parse_rate(args.login_address_rate),
        global_rate=parse_rate(args.global_rate),
        scrypt_n=args.scrypt_n,
        tls=build_tls(args),
        cors_origins=tuple(dict.fromkeys(parse_cors_origin(text) for text in args.cors_origin)),
    )


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen on `host:port` (port 0: any free port)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets that say so,
    # and without it Nagle's algorithm adds ~40 ms to every keep-alive request.
    sock = socket.socket(info[0], socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(info[4])
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def bind_error(host: str, port: int, exc: OSError) -> str:
    """One line saying why ``host:port`` cannot be listened on, and what to do."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use on {host} (another server?): stop it, pass another "
            "--port, or --port 0 to pick a free one"
        )
    if exc.errno == errno.EACCES:
        return (
            f"not allowed to listen on {where} (ports below 1024 need privileges): pass a "
            "--port above 1023, or --port 0 to pick a free one"
        )
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {where}: --host {host!r} is not an address of this machine "
            f"({exc.strerror or exc}); try --host 127.0.0.1"
        )
    return f"cannot listen on {where}: {exc.strerror or exc}"


def url_of(sock: socket.socket, *, tls: bool = False) -> str:
    """Return the base URL of a listening socket (`https://` when it serves TLS)."""
    host, port = sock.getsockname()[:2]
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def uvicorn_config(
    app: object,
    protocol: type[asyncio.Protocol],
    *,
    access_log: bool,
    log_level: str,
    tls: ServingTls | None = None,
) -> uvicorn.Config:
    """Return the uvicorn settings shared by the CLI and the in-thread runner.

    With `tls`, the config serves HTTPS on every socket given to `uvicorn.Server.serve`; load it
    with `nsdk_server.tls.load` (which then deletes a throwaway server key from disk).
    """
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=protocol,
        lifespan="on",
        access_log=access_log,
        log_config=None,
        log_level=log_level.lower(),
        backlog=BACKLOG,
        limit_concurrency=None,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
        server_header=False,
        **(tls.uvicorn_options() if tls is not None else {}),
    )


def tls_notes(serving: ServingTls) -> list[str]:
    """The stderr lines that tell HTTPS clients where their files are (path last on each line)."""
    lines = []
    if serving.ca_path is not None:
        lines.append(f"nsdk_server: TLS CA bundle: {serving.ca_path}")
    if serving.client_cert_path is not None:
        lines.append(f"nsdk_server: TLS client certificate and key: {serving.client_cert_path}")
    if serving.client_ca is not None:
        lines.append(f"nsdk_server: TLS client certificate required, from CA: {serving.client_ca}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM; return the exit code."""
    args = parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = build_config(args)
    except (ValueError, OSError) as exc:
        print(f"nsdk_server: {exc}", file=sys.stderr)
        return 2
    from .app import create_app
    from .connections import make_protocol_class
    from .tls import load, prepare

    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"nsdk_server: {bind_error(args.host, args.port, exc)}", file=sys.stderr)
        return 2
    server_app = create_app(config)
    serving = None
    try:
        serving = prepare(config.tls, args.host) if config.tls is not None else None
        settings = uvicorn_config(
            server_app.asgi,
            make_protocol_class(server_app.registry),
            access_log=args.access_log,
            log_level=args.log_level,
            tls=serving,
        )
        if serving is not None:
            load(settings, serving)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        sock.close()
        print(f"nsdk_server: cannot serve HTTPS: {exc}", file=sys.stderr)
        return 2
    for line in tls_notes(serving) if serving is not None else []:
        print(line, file=sys.stderr, flush=True)
    print(url_of(sock, tls=serving is not None), flush=True)
    asyncio.run(uvicorn.Server(settings).serve(sockets=[sock]))
    return 0
