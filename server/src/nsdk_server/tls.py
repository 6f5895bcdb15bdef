"""HTTPS for the reference server: a certificate from a throwaway local CA, or a given one.

`prepare(tls, host)` turns a `TlsConfig` into the files uvicorn loads and the files clients need:

- With no given certificate, a new CA is made with trustme. Its key lives in this process only; its
  certificate (the bundle clients trust) is written to `ca_out`. It issues the server certificate
  for 127.0.0.1, ::1, localhost and the bound host, and, for mutual TLS, a client certificate
  whose certificate and key are written together (mode 0600) to `client_cert_out`.
- The server's own key goes to a private temporary directory only until uvicorn has loaded it into
  its `SSLContext`: `load(config, serving)` loads it, then deletes that directory.

uvicorn applies `ssl=` to the sockets it is given as well as to those it binds, so the CLI's own
listening socket (`cli.bind`) serves TLS once the `uvicorn.Config` has the `ssl_*` options.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from .config import TlsConfig

__all__ = ["ServingTls", "load", "prepare"]

#: Names the throwaway CA's server certificate is always valid for.
LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")
_WILDCARDS = {"", "0.0.0.0", "::"}  # noqa: S104 - names of wildcard addresses, nothing is bound


@dataclass(frozen=True, slots=True)
class ServingTls:
    """What the server serves HTTPS with, and what it wrote for its clients.

    Attributes:
        certfile: the server's certificate chain (PEM).
        keyfile: the server's private key (PEM).
        client_ca: the CA bundle client certificates must chain to, or None (no client
            certificate asked for).
        ca_path: the throwaway CA's certificate (the bundle clients trust), or None when the
            certificate was given.
        client_cert_path: the client certificate and its key in one PEM file (for httpx's
            `cert=` or `SSLContext.load_cert_chain`), or None.
        scratch: the private directory holding the throwaway server key until it is loaded.
    """

    certfile: Path
    keyfile: Path
    client_ca: Path | None = None
    ca_path: Path | None = None
    client_cert_path: Path | None = None
    scratch: Path | None = None

    def uvicorn_options(self) -> dict[str, Any]:
        """Return the `uvicorn.Config` keyword arguments that serve this TLS setup."""
        options: dict[str, Any] = {
            "ssl_certfile": str(self.certfile),
            "ssl_keyfile": str(self.keyfile),
        }
        if self.client_ca is not None:
            options["ssl_ca_certs"] = str(self.client_ca)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options

    def discard_key(self) -> None:
        """Delete the throwaway server key from disk (it stays in the loaded `SSLContext`)."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path`, readable by this user only (it holds a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def _names(host: str) -> list[str]:
    names = list(LOOPBACK_NAMES)
    if host not in _WILDCARDS and host not in names:
        names.append(host)
    return names


def prepare(tls: TlsConfig, host: str) -> ServingTls:
    """Write the certificates `tls` asks for; return what to serve and where the files are.

    Raises:
        OSError: if a file cannot be read or written (a missing `client_ca`, an unwritable
            `ca_out`).
    """
    if tls.client_ca is not None and not tls.client_ca.is_file():
        raise FileNotFoundError(f"--tls-client-ca: no such file: {tls.client_ca}")
    if tls.cert_file is not None and tls.key_file is not None:
        for given in (tls.cert_file, tls.key_file):
            if not given.is_file():
                raise FileNotFoundError(f"no such file: {given}")
        return ServingTls(certfile=tls.cert_file, keyfile=tls.key_file, client_ca=tls.client_ca)

    import trustme  # only HTTPS with a throwaway CA pays for importing cryptography

    ca = trustme.CA(organization_name="nsdk_server throwaway CA")
    ca_path = tls.ca_out or Path(tempfile.mkdtemp(prefix="nsdk-server-tls-")) / "ca.pem"
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca_path.write_bytes(ca.cert_pem.bytes())
    client_ca, client_cert_path = tls.client_ca, None
    if tls.require_client_cert:
        client_ca = ca_path
        client_cert_path = tls.client_cert_out or ca_path.with_name("client.pem")
        client = ca.issue_cert("nsdk-client.localhost", common_name="nsdk test client")
        _write_private(client_cert_path, client.private_key_and_cert_chain_pem.bytes())
    server = ca.issue_cert(*_names(host))
    scratch = Path(tempfile.mkdtemp(prefix="nsdk-server-key-"))
    certfile, keyfile = scratch / "server.pem", scratch / "server.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    _write_private(keyfile, server.private_key_pem.bytes())
    return ServingTls(
        certfile=certfile,
        keyfile=keyfile,
        client_ca=client_ca,
        ca_path=ca_path,
        client_cert_path=client_cert_path,
        scratch=scratch,
    )


def load(config: uvicorn.Config, serving: ServingTls) -> None:
    """Load `config` now (its `SSLContext` included), then delete the throwaway server key.

    `uvicorn.Server.serve` skips loading a config that is already loaded, so the key is read
    once, here, and a bad certificate or key fails before the URL is printed.

    Raises:
        OSError: if the certificate, key or client CA cannot be loaded (`ssl.SSLError` included).
    """
    try:
        config.load()
    finally:
        serving.discard_key()
