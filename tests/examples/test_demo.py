"""examples/demo.py: the main job runs the guide's flow end to end; its exit status says how."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 120


def run_demo(repo_root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run examples/demo.py with ``args`` in a subprocess, ``env`` on top of a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NSDK_")}
    return subprocess.run(
        [sys.executable, str(repo_root / "examples" / "demo.py"), *args],
        cwd=repo_root,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def exchange(method: str, path: str, status: int, attempt: int = 1) -> re.Pattern[str]:
    """A trace line of one exchange."""
    return re.compile(
        rf"^\s+{method}\s+{re.escape(path)}\s+{status}\s+attempt={attempt}\s+wait=\S+\s+"
        r"request_id=req_[0-9a-f]+",
        re.MULTILINE,
    )


def test_demo_on_its_own_reference_server(repo_root: Path) -> None:
    """With no NSDK_API_BASE_URL the demo starts a server and every step of the guide passes."""
    result = run_demo(repo_root)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "demo OK: every step behaved as documented" in out
    assert re.search(r"8 steps: 8 passed, 0 skipped, 0 failed", out), out
    assert "FAIL" not in out and "SKIP" not in out
    # Step 3: the expired access token gets a 401, one refresh, one resend with the new token.
    step3 = out.split("[3]")[1].split("[4]")[0]
    assert exchange("GET", "/api/auth/me", 401).search(step3), step3
    assert exchange("POST", "/api/auth/refresh", 200).search(step3), step3
    assert re.search(r"GET\s+/api/auth/me\s+200 .*resent once, with access#2", step3), step3
    # Step 4: a 429 whose Retry-After is honoured before the second attempt.
    step4 = out.split("[4]")[1].split("[5]")[0]
    assert re.search(r"GET\s+/api/auth/me\s+429\s+attempt=1\s+wait=1\.000s", step4), step4
    assert exchange("GET", "/api/auth/me", 200, attempt=2).search(step4), step4
    # Steps 5-7: logout, then fail closed without sending, then the revoked pair is refused.
    assert exchange("POST", "/api/auth/logout", 204).search(out)
    assert "raised NotAuthenticatedError" in out.split("[6]")[1].split("[7]")[0]
    step7 = out.split("[7]")[1].split("[8]")[0]
    assert exchange("POST", "/api/auth/refresh", 401).search(step7), step7
    assert "raised SessionExpiredError" in step7
    # Tokens appear as labels only: no JWT (base64url JSON header "eyJ...") anywhere.
    assert "eyJ" not in out + result.stderr
    assert "server counters:" in out and '"refresh_ok": 1' in out


def test_demo_over_https(repo_root: Path) -> None:
    """--tls runs every step over HTTPS, the clients trusting only the server's throwaway CA."""
    result = run_demo(repo_root, "--tls")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(
        r"^nsdk demo against the reference server at https://127\.0\.0\.1:\d+ ", out, re.M
    )
    assert "HTTPS: the clients trust only the server's throwaway CA" in out
    assert re.search(r"PASS  all \d+ responses the clients got came over TLSv1\.[23]", out), out
    assert "9 steps: 9 passed, 0 skipped, 0 failed" in out
    assert "demo OK: every step behaved as documented" in out
    assert "eyJ" not in out + result.stderr


def test_demo_tls_refuses_an_external_api(repo_root: Path) -> None:
    """--tls with NSDK_API_BASE_URL is a usage error (exit 2): the URL's scheme decides there."""
    result = run_demo(
        repo_root,
        "--tls",
        NSDK_API_BASE_URL="https://api.example.invalid",
        NSDK_EMAIL="user@example.com",
        NSDK_PASSWORD="x",
    )
    assert result.returncode == 2
    assert "give an https:// URL instead" in result.stderr


def test_demo_against_an_external_api(
    repo_root: Path, nsdk_server_factory: Callable[..., Any]
) -> None:
    """With NSDK_API_BASE_URL and credentials it runs there and skips what needs fault injection."""
    server = nsdk_server_factory(access_ttl=60, faults=False)
    result = run_demo(
        repo_root,
        NSDK_API_BASE_URL=server.base_url,
        NSDK_EMAIL="user@example.com",
        NSDK_PASSWORD="demo-password",
        NSDK_DEMO_MAX_WAIT="0",
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"nsdk demo against {server.base_url}" in out
    assert "SKIP  needs the reference server's fault injection" in out
    assert "Rotating explicitly with client.refresh() instead" in out
    assert "8 steps: 6 passed, 2 skipped, 0 failed" in out
    assert "demo-password" not in out


def test_demo_fails_when_a_step_misbehaves(
    repo_root: Path, nsdk_server_factory: Callable[..., Any]
) -> None:
    """A server that answers logout with an undocumented 400 makes the demo exit 1."""
    server = nsdk_server_factory(access_ttl=60)
    server.faults.add("logout", status=400)
    result = run_demo(
        repo_root,
        NSDK_API_BASE_URL=server.base_url,
        NSDK_EMAIL="user@example.com",
        NSDK_PASSWORD="demo-password",
        NSDK_DEMO_MAX_WAIT="0",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  exchanges were: POST logout 204" in result.stdout
    assert "demo FAILED" in result.stdout


@pytest.mark.parametrize("missing", ["NSDK_EMAIL", "NSDK_PASSWORD"])
def test_demo_needs_credentials_for_an_external_api(repo_root: Path, missing: str) -> None:
    """NSDK_API_BASE_URL without credentials is a usage error (exit 2), nothing is sent."""
    env = {
        "NSDK_API_BASE_URL": "https://api.example.invalid",
        "NSDK_EMAIL": "user@example.com",
        "NSDK_PASSWORD": "x",
    }
    del env[missing]
    result = run_demo(repo_root, **env)
    assert result.returncode == 2
    assert "also set NSDK_EMAIL and NSDK_PASSWORD" in result.stderr
