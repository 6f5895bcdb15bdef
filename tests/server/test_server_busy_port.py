"""The reference server's command line on a port it cannot have: one line, what to do, exit 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port held by a listening socket for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m nsdk_server`` with ``args``, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "nsdk_server", "--scrypt-n", "4", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_busy_port_is_one_line_and_exit_2(taken_port: int) -> None:
    """A port in use: exit 2, nothing on stdout, one stderr line saying so and what to do."""
    result = run_cli("--port", str(taken_port))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"nsdk_server: port {taken_port} is already in use on 127.0.0.1 (another server?): "
        "stop it, pass another --port, or --port 0 to pick a free one\n"
    )


def test_port_out_of_range_is_refused_by_the_parser() -> None:
    """--port 70000 is refused as an option error (exit 2, no traceback), before binding."""
    result = run_cli("--port", "70000")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "argument --port: must be a port from 0 to 65535 (0: any free one)" in result.stderr
    assert "Traceback" not in result.stderr
