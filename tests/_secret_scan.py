"""A pytest plugin that watches the whole suite for leaked secrets.

It records every token pair nsdk builds (``nsdk.Tokens``) and the passwords the suite uses, and
captures every record of the ``nsdk`` logger (at DEBUG), every message of an nsdk or generated
exception, and every failure report. ``test_zz_no_secret_leaked`` (moved to the end of the run)
asserts that no recorded secret appears in any captured text.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

PASSWORDS = {"demo-password"}
MIN_SECRET_LENGTH = 8  # shorter strings ("a", "tok") would match ordinary text


class Collector(logging.Handler):
    """Keeps secrets seen and texts produced, thread-safely."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.secrets: set[str] = set(PASSWORDS)
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        self.text(f"log {record.name}: {record.getMessage()}")

    def text(self, value: str) -> None:
        with self._lock:
            self.texts.append(value)

    def secret(self, value: str) -> None:
        if len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                self.secrets.add(value)

    def hits(self) -> list[tuple[str, str]]:
        with self._lock:
            return [
                (secret[:4] + "...", text[:80].replace(secret, "***"))
                for text in self.texts
                for secret in self.secrets
                if secret in text
            ]


COLLECTOR = Collector()


def install() -> None:
    """Hook into nsdk and nsdk_api (called once at session start)."""
    import nsdk
    import nsdk_api.errors as gen_errors
    from nsdk import _tokens

    original_post_init = _tokens.Tokens.__attrs_post_init__

    def post_init(self: Any) -> None:
        original_post_init(self)
        COLLECTOR.secret(self.access_token)
        COLLECTOR.secret(self.refresh_token)

    _tokens.Tokens.__attrs_post_init__ = post_init  # type: ignore[method-assign]

    for cls in (nsdk.NsdkError, gen_errors.ApiResponseError):
        original_init = cls.__init__

        def init(self: Any, *args: Any, __orig: Any = original_init, **kwargs: Any) -> None:
            __orig(self, *args, **kwargs)
            COLLECTOR.text(f"exception {type(self).__name__}: {self} {self!r}")

        cls.__init__ = init  # type: ignore[method-assign]

    logger = logging.getLogger("nsdk")
    logger.addHandler(COLLECTOR)
    logger.setLevel(logging.DEBUG)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Install the hooks before any test runs."""
    install()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Failure reports are output too: scan them."""
    if report.failed and report.longreprtext:
        COLLECTOR.text(f"report {report.nodeid}: {report.longreprtext}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the scan last, whatever the collection order."""
    last = [i for i in items if i.name == "test_zz_no_secret_leaked"]
    items[:] = [i for i in items if i not in last] + last
