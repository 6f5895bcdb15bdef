"""Pytest fixtures for the reference server (auto-loaded through the `pytest11` entry point).

- `nsdk_server`: one server for the whole session, faults enabled, login limits raised so a test
  suite never hits them by accident; returns a `ServerHandle`. Shared state: call
  `handle.reset()` (or use `nsdk_server_clean`) when a test scripts faults or reads counters.
- `nsdk_server_clean`: the same session server, with faults cleared and counters reset first.
- `nsdk_server_factory`: call `nsdk_server_factory(**options)` for a private server with any CLI
  options (e.g. `access_ttl=1`, or `tls=True, client_cert=True` for HTTPS with mutual TLS); every
  server it started is stopped at the end of the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import ServerHandle

__all__ = ["SESSION_SERVER_OPTIONS", "nsdk_server", "nsdk_server_clean", "nsdk_server_factory"]

#: Options of the session server: faults on, cheap password hashing, generous login limits.
SESSION_SERVER_OPTIONS: dict[str, Any] = {
    "faults": True,
    "scrypt_n": 2**12,
    "login_account_rate": "10000/60",
    "login_address_rate": "10000/60",
}


@pytest.fixture(scope="session")
def nsdk_server() -> Iterator[ServerHandle]:
    """A reference server shared by the session (subprocess, faults enabled)."""
    from .testing import run_server

    with run_server(**SESSION_SERVER_OPTIONS) as handle:
        yield handle


@pytest.fixture
def nsdk_server_clean(nsdk_server: ServerHandle) -> ServerHandle:
    """The session server with no queued faults and zeroed counters."""
    nsdk_server.reset()
    return nsdk_server


@pytest.fixture
def nsdk_server_factory() -> Iterator[Callable[..., ServerHandle]]:
    """A factory `(**options) -> ServerHandle` of private servers, stopped after the test.

    Options default to faults enabled and `scrypt_n=4096`; pass any other `run_server` option.
    """
    from .testing import run_server

    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> ServerHandle:
            merged = {"faults": True, "scrypt_n": 2**12, **options}
            return stack.enter_context(run_server(**merged))

        yield start
