"""The reliability suite's secret scan: no password or token in anything the suite produced.

``test_reliability_texts_hold_no_secret`` runs after every other reliability test (conftest moves
it) and scans the ledger: every log record of nsdk, nsdk_api and httpx, the whole text of every
exception the tests caught (causes included), the reference servers' logs and any failure report,
for every secret the suite handled (the password, every token pair a client stored, the tokens the
fuzzer made up, JWT signatures on their own). Run alone, it first exercises the error paths that
carry tokens nearby (wrong password, a refused refresh, a 401 after refresh) so it never scans
nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import nsdk
import pytest

WRONG_PASSWORD = "wrong-password-for-the-scan"  # made up; the scan looks for it


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_scan_seeds_error_paths(mode: str, server: Any, make_driver: Any, ledger: Any) -> None:
    """Errors that happen next to secrets (bad login, refused refresh) are produced and recorded."""
    ledger.secret(WRONG_PASSWORD)
    driver = make_driver(mode, server.base_url, retry=nsdk.RetryPolicy.no_retries())
    with pytest.raises(nsdk.AuthenticationError) as bad_login:
        driver.call("login", email="user@example.com", password=WRONG_PASSWORD)
    ledger.exception(bad_login.value)
    driver.login()
    server.faults.add("me", status=401, times=2)
    with pytest.raises(nsdk.AuthenticationError) as second_401:
        driver.call("me")
    ledger.exception(second_401.value)
    server.faults.add("me", status=401)
    server.faults.add("refresh", status=401)
    with pytest.raises(nsdk.SessionExpiredError) as expired:
        driver.call("me")
    ledger.exception(expired.value)
    ledger.text("repr", f"{driver.client!r} {driver.store!r}")


def test_scan_finds_a_planted_secret(ledger: Any) -> None:
    """The scanner does report a secret that appears in a text (the final scan can fail)."""
    probe = type(ledger)()
    probe.secret("header.payload.planted-signature-xyz")
    probe.text("log", "Authorization: Bearer header.payload.planted-signature-xyz")
    probe.text("log", "the signature alone: planted-signature-xyz")
    probe.text("log", "nothing here")
    assert len(probe.hits()) == 3  # the token, and its signature in both texts


def test_reliability_texts_hold_no_secret(ledger: Any, fault_server: Any) -> None:
    """No secret handled by the reliability suite appears in any log, exception text or report."""
    ledger.text("server log (fault_server, so far)", fault_server.logs())
    logging.getLogger("nsdk").debug("scan: %d texts", len(ledger.texts))
    assert len(ledger.secrets) > 3, "the suite handled no tokens: nothing was scanned for"
    assert any(origin.startswith("log nsdk") for origin, _ in ledger.texts), "no nsdk log captured"
    assert any(origin.startswith("exception") for origin, _ in ledger.texts)
    assert ledger.hits() == []
