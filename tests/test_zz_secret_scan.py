"""The suite-wide secret scan (see tests/_secret_scan.py)."""

from __future__ import annotations

import pytest
from _secret_scan import COLLECTOR, PASSWORDS


def test_zz_no_secret_leaked() -> None:
    """No token or password nsdk saw appears in any log record, exception text or report."""
    if len(COLLECTOR.secrets) <= len(PASSWORDS):
        pytest.skip("no test in this run made nsdk handle a token: nothing to scan for")
    assert COLLECTOR.texts, "the scan captured no text: the hooks are not installed"
    assert COLLECTOR.hits() == []


def test_scan_detects_a_leak() -> None:
    """The collector does report a secret that appears in a log line (the scan can fail)."""
    import logging

    from _secret_scan import Collector

    collector = Collector()
    collector.secret("eyJhbGciOi.leaked.token")
    collector.emit(logging.makeLogRecord({"name": "nsdk", "msg": "bearer eyJhbGciOi.leaked.token"}))
    assert len(collector.hits()) == 1
