"""The suite-wide secret ledger: a pytest plugin that watches every test for leaked secrets.

``LEDGER`` records every secret the suite handles: the demo password, every token pair nsdk builds
(hooked into ``nsdk.Tokens``), tokens tests add themselves, and a JWT's signature on its own. It
captures every text the suite produces: records of the ``nsdk``, ``nsdk_api`` and ``httpx``
loggers at DEBUG, the message and repr of every nsdk and generated-layer exception, what tests
add (whole tracebacks, server logs) and every failure report. ``test_zz_no_secret_leaked`` runs
last and asserts that no secret appears in any text; the reliability suite scans the same ledger
after its own tests, with the servers' logs added.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

import pytest

PASSWORDS = frozenset({"demo-password"})
MIN_SECRET = 8  # shorter strings ("a", "tok") would match ordinary text

#: Loggers captured, at these levels (httpcore's DEBUG events carry no payload and are many).
CAPTURED_LOGGERS = {"nsdk": logging.DEBUG, "nsdk_api": logging.DEBUG, "httpx": logging.DEBUG}


class Ledger:
    """Secrets handled and texts produced (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets: set[str] = set(PASSWORDS)
        self.texts: list[tuple[str, str]] = []  # (where it came from, the text)

    def secret(self, value: str) -> None:
        """Record a secret (and a JWT's signature on its own: enough to leak it)."""
        if len(value) >= MIN_SECRET:
            with self._lock:
                self.secrets.add(value)
            parts = value.split(".")
            if len(parts) == 3 and len(parts[2]) >= MIN_SECRET:
                self.secret(parts[2])

    def tokens(self, tokens: Any) -> None:
        """Record both tokens of an ``nsdk.Tokens``."""
        self.secret(tokens.access_token)
        self.secret(tokens.refresh_token)

    def text(self, origin: str, value: str) -> None:
        """Record a text the suite produced, with where it came from."""
        with self._lock:
            self.texts.append((origin, value))

    def exception(self, exc: BaseException) -> None:
        """Record what a user could print or log of an exception: str, repr, whole traceback."""
        text = f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))
        self.text(f"exception {type(exc).__name__}", text)

    def hits(self) -> list[tuple[str, str, str]]:
        """(origin, secret prefix, excerpt) for every secret found in a text."""
        with self._lock:
            secrets, texts = sorted(self.secrets), list(self.texts)
        found = []
        for origin, text in texts:
            for secret in secrets:
                at = text.find(secret)
                if at >= 0:
                    excerpt = text[max(0, at - 40) : at].replace("\n", " ")
                    found.append((origin, secret[:4] + "...", excerpt + "<SECRET>"))
        return found


LEDGER = Ledger()


class _LedgerHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        LEDGER.text(f"log {record.name}", self.format(record))


def _install() -> None:
    """Hook into nsdk, nsdk_api and their loggers (once, at session start)."""
    import nsdk
    import nsdk_api.errors as gen_errors
    from nsdk import _tokens

    original_post_init = _tokens.Tokens.__attrs_post_init__

    def post_init(self: Any) -> None:
        original_post_init(self)
        LEDGER.tokens(self)

    _tokens.Tokens.__attrs_post_init__ = post_init  # type: ignore[method-assign]

    for cls in (nsdk.NsdkError, gen_errors.ApiResponseError):
        original_init = cls.__init__

        def init(self: Any, *args: Any, __orig: Any = original_init, **kwargs: Any) -> None:
            __orig(self, *args, **kwargs)
            LEDGER.text(f"exception {type(self).__name__}", f"{self} {self!r}")

        cls.__init__ = init  # type: ignore[method-assign]

    handler = _LedgerHandler(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    for name, level in CAPTURED_LOGGERS.items():
        log = logging.getLogger(name)
        log.setLevel(level)
        log.addHandler(handler)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Install the hooks before any test runs."""
    _install()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Failure reports are output too: scan them."""
    if report.failed and report.longreprtext:
        LEDGER.text(f"report {report.nodeid}", report.longreprtext)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the suite-wide scan last, whatever the collection order."""
    last = [i for i in items if i.name == "test_zz_no_secret_leaked"]
    items[:] = [i for i in items if i not in last] + last
