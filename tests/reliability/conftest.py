"""Reliability fixtures: a fault-injecting server, one driver for both clients, the secret ledger.

``Driver`` runs ``nsdk.Client`` or ``nsdk.AsyncClient`` (its own event loop) behind the same sync
calls, with an injected sleep that records every wait instead of sleeping, over real HTTP on
loopback. ``LEDGER`` collects every secret the suite handles (the password, every token pair a
client stores, every token the fuzzer makes up) and every text the suite produces (log records of
nsdk, nsdk_api and httpx; the full text of every exception the tests catch, causes included; the
servers' logs; failure reports). ``test_secret_scan.py`` runs last and asserts no secret is in any
text.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import _secret_scan
import nsdk
import pytest
from nsdk_server.testing import ServerHandle, run_server

EMAIL = "user@example.com"
PASSWORD = "demo-password"  # the reference server's documented demo user
MODES = ("sync", "async")

#: Options of the suite's shared server: faults on, cheap hashing, no login limits.
SERVER_OPTIONS: dict[str, Any] = {
    "faults": True,
    "scrypt_n": 2**12,
    "login_account_rate": None,
    "login_address_rate": None,
}


# The ledger is the suite-wide one (tests/_secret_scan.py): it already captures the nsdk,
# nsdk_api and httpx logs, exception texts and failure reports; this suite adds server logs and
# the tokens its stores and fuzzers handle.
Ledger = _secret_scan.Ledger
LEDGER = _secret_scan.LEDGER


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the slow soak unless asked for; run the secret scan after every other test here."""
    asked = "slow" in (config.getoption("markexpr") or "") or os.environ.get("NSDK_SOAK_SECONDS")
    if not asked:
        skip = pytest.mark.skip(reason="slow: select with -m slow, or set NSDK_SOAK_SECONDS")
        for item in items:
            if "slow" in item.keywords and "tests/reliability" in item.nodeid:
                item.add_marker(skip)
    last = [i for i in items if i.name == "test_reliability_texts_hold_no_secret"]
    if last:
        others = [i for i in items if i not in last]
        index = max(
            (n + 1 for n, i in enumerate(others) if "tests/reliability" in i.nodeid), default=0
        )
        items[:] = others[:index] + last + others[index:]


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    """The suite-wide secret ledger."""
    return LEDGER


class RecordingStore(nsdk.MemoryTokenStore):
    """A memory token store that tells the ledger about every pair it is given."""

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> bool:
        if new.tokens is not None:
            LEDGER.tokens(new.tokens)
        return super().compare_and_set(expected, new, lease)


@pytest.fixture(scope="session")
def recording_store() -> type[RecordingStore]:
    """The RecordingStore class (session-scoped, so hypothesis tests may use it)."""
    return RecordingStore


@pytest.fixture(scope="session")
def fault_server() -> Iterator[ServerHandle]:
    """The suite's reference server (subprocess, faults on); its log is scanned at the end."""
    with run_server(**SERVER_OPTIONS) as handle:
        yield handle
        LEDGER.text("server log (fault_server)", handle.logs())


@pytest.fixture
def server(fault_server: ServerHandle) -> ServerHandle:
    """The suite's server with no queued faults and zeroed counters."""
    fault_server.reset()
    return fault_server


class Driver:
    """One nsdk client, sync or async, driven through the same blocking calls.

    ``waits`` lists every sleep the retry policy asked for (nothing really sleeps).
    """

    def __init__(self, mode: str, base_url: str, **options: Any) -> None:
        self.mode = mode
        self.waits: list[float] = []
        self.store = RecordingStore()
        options.setdefault("token_store", self.store)
        options.setdefault("random", lambda: 0.5)
        if mode == "sync":
            self._loop: asyncio.AbstractEventLoop | None = None
            options.setdefault("sleep", self.waits.append)
            self.client: Any = nsdk.Client(base_url, **options)
        else:

            async def sleep(seconds: float) -> None:
                self.waits.append(seconds)

            self._loop = asyncio.new_event_loop()
            options.setdefault("sleep", sleep)
            self.client = nsdk.AsyncClient(base_url, **options)

    def call(self, method: str, **kwargs: Any) -> Any:
        """Call a client method and return its result (awaited in the driver's loop if async)."""
        result = getattr(self.client, method)(**kwargs)
        if self._loop is not None:
            return self._loop.run_until_complete(result)
        return result

    def login(self) -> nsdk.Session:
        return self.call("login", email=EMAIL, password=PASSWORD)  # type: ignore[no-any-return]

    @property
    def state(self) -> nsdk.SessionState:
        return self.client.state  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._loop is None:
            self.client.close()
        else:
            self._loop.run_until_complete(self.client.aclose())
            self._loop.close()


@pytest.fixture
def make_driver() -> Iterator[Callable[..., Driver]]:
    """A factory ``(mode, base_url, **client options) -> Driver``; all closed after the test."""
    drivers: list[Driver] = []

    def make(mode: str, base_url: str, **options: Any) -> Driver:
        drivers.append(Driver(mode, base_url, **options))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.close()
