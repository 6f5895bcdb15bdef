"""Server configuration: one immutable value built by the CLI or by tests.

Every knob of the reference server lives in `ServerConfig`; `nsdk_server.cli` turns command-line
options into it and `nsdk_server.testing` turns keyword arguments into command-line options.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_USER",
    "RateSpec",
    "ServerConfig",
    "TlsConfig",
    "UserSeed",
    "load_users_file",
    "parse_cors_origin",
    "parse_rate",
    "parse_user",
]


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A rate limit: at most `limit` requests per `window` seconds (sliding window)."""

    limit: int
    window: float

    def __str__(self) -> str:
        """Render as the CLI spelling `N/SECONDS`."""
        window = int(self.window) if self.window.is_integer() else self.window
        return f"{self.limit}/{window}"


def parse_rate(text: str) -> RateSpec | None:
    """Parse `N/SECONDS` (e.g. `100/60`); `0`, `off` or `none` disable the limit.

    Raises:
        ValueError: if the text is not a valid rate.
    """
    value = text.strip().lower()
    if value in {"0", "off", "none", ""}:
        return None
    count, sep, window = value.partition("/")
    if not sep:
        raise ValueError(f"rate {text!r} must look like N/SECONDS, e.g. 100/60, or 'off'")
    limit, seconds = int(count), float(window)
    if limit <= 0 or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"rate {text!r} needs a positive count and a positive window")
    return RateSpec(limit, seconds)


@dataclass(frozen=True, slots=True)
class UserSeed:
    """A user the server knows, with the plain password (hashed once at startup)."""

    email: str
    password: str = field(repr=False)
    user_id: str
    tenant_id: str


DEFAULT_USER = UserSeed(
    email="user@example.com",
    password="demo-password",  # noqa: S106 - the documented demo user
    user_id="1005",
    tenant_id="2001",
)


def parse_user(text: str, index: int) -> UserSeed:
    """Parse the CLI spelling `EMAIL:PASSWORD[:USER_ID[:TENANT_ID]]`.

    Missing ids default to `2000 + index` for the user and `2001` for the tenant.

    Raises:
        ValueError: if email or password is missing.
    """
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError("--user needs EMAIL:PASSWORD[:USER_ID[:TENANT_ID]]")
    user_id = parts[2] if len(parts) > 2 and parts[2] else str(2000 + index)
    tenant_id = parts[3] if len(parts) > 3 and parts[3] else "2001"
    return UserSeed(email=parts[0], password=parts[1], user_id=user_id, tenant_id=tenant_id)


def parse_cors_origin(text: str) -> str:
    """Check one `--cors-origin`: an exact origin as a browser sends it, `scheme://host[:port]`.

    A browser's `Origin` header is lower case, has no path and omits the scheme's default port,
    and `http://localhost:8001` and `http://127.0.0.1:8001` are different origins. An origin
    written any other way would never match, so it is refused rather than silently ignored.

    Raises:
        ValueError: for a wildcard, a path, a query, a default port spelled out or a non-HTTP(S)
            scheme, with the spelling to use where there is one.
    """
    if "*" in text:
        raise ValueError(
            f"--cors-origin {text!r}: wildcards are not allowed; name each origin exactly,"
            " e.g. http://127.0.0.1:8001"
        )
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"--cors-origin {text!r} must be an origin like http://127.0.0.1:8001"
            " (scheme, host and port only)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"--cors-origin {text!r} has an invalid port") from None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    canonical = f"{parts.scheme}://{host}" + ("" if port in {None, default} else f":{port}")
    if text != canonical:
        raise ValueError(
            f"--cors-origin {text!r} is not how a browser spells that origin: use {canonical!r}"
        )
    return canonical


def load_users_file(path: Path) -> list[UserSeed]:
    """Load users from a JSON file: a list of `{email, password, userId, tenantId}` objects.

    Raises:
        ValueError: if the file does not have that shape.
    """
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of users")
    users = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: user #{i} is not an object")
        try:
            users.append(
                UserSeed(
                    email=str(item["email"]),
                    password=str(item["password"]),
                    user_id=str(item.get("userId", 3000 + i)),
                    tenant_id=str(item.get("tenantId", "2001")),
                )
            )
        except KeyError as exc:
            raise ValueError(f"{path}: user #{i} lacks {exc.args[0]!r}") from None
    return users


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """HTTPS settings: a certificate from a throwaway local CA, or a given one; client certificates.

    Attributes:
        cert_file: a given server certificate chain (PEM), or None for one issued by a throwaway
            CA made at startup (for 127.0.0.1, ::1, localhost and the bound host).
        key_file: the private key of `cert_file` (PEM); set exactly when `cert_file` is.
        ca_out: where to write the throwaway CA's certificate, the bundle clients trust; None: a
            new private directory under the system's temp dir.
        client_ca: require a client certificate signed by a CA in this PEM bundle (mutual TLS).
        require_client_cert: require a client certificate signed by the throwaway CA, which also
            issues one for the client, written (certificate and key) to `client_cert_out`.
        client_cert_out: where to write that client certificate; None: next to `ca_out`.
    """

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_out: Path | None = None
    client_ca: Path | None = None
    require_client_cert: bool = False
    client_cert_out: Path | None = None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the app needs; defaults are the documented defaults of the CLI.

    Attributes:
        secret: HMAC key for access tokens (HS256).
        access_ttl: access-token lifetime in seconds (at least this, less than one more second).
        refresh_ttl: refresh-token lifetime in seconds.
        refresh_reuse_interval: seconds after a rotation during which presenting the rotated
            (parent) token again answers with the family's current, unused child refresh token
            instead of counting as replay; 0 (the default) makes every repeat a replay.
        db_path: SQLite file, or None for an in-memory database.
        faults: mount the test control API under `/_nsdk` (fault injection and stats).
        users: the seeded users.
        login_account_rate: login attempts per account (email), or None for no limit.
        login_address_rate: login attempts per client address, or None for no limit.
        global_rate: requests per client address on every API route, or None for no limit.
        scrypt_n: scrypt CPU/memory cost for password hashes (a power of two).
        max_body_bytes: request bodies larger than this are rejected with 400.
        tls: serve HTTPS with these settings, or None for plain HTTP. The app does not read it;
            the CLI and the in-thread runner apply it to uvicorn (see `nsdk_server.tls`).
        cors_origins: the exact browser origins (`http://127.0.0.1:8001`) allowed to call the
            API from their pages (CORS); empty: no CORS headers at all, the default.
    """

    secret: bytes = field(repr=False)
    access_ttl: float = 300.0
    refresh_ttl: float = 86400.0
    refresh_reuse_interval: float = 0.0
    db_path: str | None = None
    faults: bool = False
    users: tuple[UserSeed, ...] = (DEFAULT_USER,)
    login_account_rate: RateSpec | None = RateSpec(100, 60.0)
    login_address_rate: RateSpec | None = RateSpec(1000, 60.0)
    global_rate: RateSpec | None = None
    scrypt_n: int = 2**14
    max_body_bytes: int = 64 * 1024
    tls: TlsConfig | None = None
    cors_origins: tuple[str, ...] = ()
