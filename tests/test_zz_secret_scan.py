"""The suite-wide secret scan (see tests/_secret_scan.py)."""

from __future__ import annotations

import logging

import pytest
from _secret_scan import LEDGER, PASSWORDS, Ledger


def test_zz_no_secret_leaked() -> None:
    """No token or password the suite saw appears in any log record, exception text or report."""
    if len(LEDGER.secrets) <= len(PASSWORDS):
        pytest.skip("no test in this run made nsdk handle a token: nothing to scan for")
    assert any(origin.startswith("log nsdk") for origin, _ in LEDGER.texts), "no nsdk log seen"
    assert LEDGER.hits() == []


def test_scan_detects_a_leak() -> None:
    """The ledger does report a secret in a log line, and a JWT's signature alone (it can fail)."""
    probe = Ledger()
    probe.secret("header.payload.planted-signature-xyz")
    handler_record = logging.makeLogRecord(
        {"name": "nsdk", "msg": "Bearer header.payload.planted-signature-xyz"}
    )
    probe.text("log nsdk", handler_record.getMessage())
    probe.text("log nsdk", "the signature alone: planted-signature-xyz")
    probe.text("log nsdk", "nothing here")
    assert len(probe.hits()) == 3
