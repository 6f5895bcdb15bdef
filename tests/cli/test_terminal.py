"""``nsdk`` in a real terminal (tmux): the password prompt does not echo; a wait counts down.

Each test runs its own tmux server (``-L`` with a unique socket name) with the test's private
home, types with ``send-keys`` and reads the screen with ``capture-pane``; the server is killed
at the end (``kill-server`` on that socket only).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from _secret_scan import LEDGER
from nsdk_server.testing import ServerHandle

if TYPE_CHECKING:
    from conftest import Home  # tests/cli/conftest.py

EMAIL = "user@example.com"
PASSWORD = "demo-password"
NSDK_TIMEOUT = 30.0


class Terminal:
    """One tmux session running bash with the test's environment."""

    def __init__(self, home: Home) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed: apt-get install tmux (.ci/run installs it)")
        self.socket = f"nsdk-cli-{uuid.uuid4().hex[:12]}"
        # Exactly the test's environment (tmux's -e would not override PATH, for one).
        variables = [f"{k}={v}" for k, v in home.env.items()]
        command = shlex.join(
            ["env", "-i", *variables, "TERM=xterm-256color", "bash", "--norc", "--noprofile"]
        )
        self._tmux("new-session", "-d", "-s", "t", "-x", "200", "-y", "50", command)
        self.type(f"cd {shlex.quote(str(home.root))} && PS1='$ ' && clear")

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return result.stdout

    def type(self, text: str, enter: bool = True) -> None:
        """Type ``text`` (literally), then Enter."""
        self._tmux("send-keys", "-t", "t", "-l", text)
        if enter:
            self._tmux("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        """What the terminal shows now."""
        text = self._tmux("capture-pane", "-p", "-t", "t")
        LEDGER.text("tmux screen", text)
        return text

    def wait_for(self, pattern: str, timeout: float = NSDK_TIMEOUT) -> str:
        """Poll the screen until ``pattern`` (a regex) shows; return the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if re.search(pattern, screen, re.MULTILINE):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} never showed; the screen:\n{screen}")
            time.sleep(0.05)

    def close(self) -> None:
        """Kill this test's tmux server."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def terminal(home: Home) -> Iterator[Callable[[], Terminal]]:
    """Open a tmux terminal with the test's home (closed at the end)."""
    opened: list[Terminal] = []

    def open_terminal() -> Terminal:
        opened.append(Terminal(home))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


def test_password_prompt_does_not_echo(
    home: Home, server: ServerHandle, terminal: Callable[[], Terminal]
) -> None:
    """login on a terminal asks for the password without echoing it, then signs in."""
    term = terminal()
    term.type(f"nsdk --base-url {server.base_url} login --email {EMAIL}; echo rc=$?")
    term.wait_for(r"Password: ?$")
    term.type(PASSWORD)
    screen = term.wait_for(r"rc=\d+")
    assert "rc=0" in screen, screen
    assert f"Signed in to {server.base_url} as {EMAIL}" in screen
    assert PASSWORD not in screen
    assert home.store().read().tokens is not None

    # The email prompt too, when --email is not given (it may echo: it is not a secret).
    home.run("logout")
    term.type(f"clear; nsdk --base-url {server.base_url} login; echo rc=$?")
    term.wait_for(r"Email: ?$")
    term.type(EMAIL)
    term.wait_for(r"Password: ?$")
    term.type(PASSWORD)
    screen = term.wait_for(r"rc=\d+")
    assert "rc=0" in screen and PASSWORD not in screen, screen


def test_countdown_during_retry_after(
    home: Home, server: ServerHandle, terminal: Callable[[], Terminal]
) -> None:
    """A 429 with Retry-After: 3 shows a live countdown line on stderr, erased when done."""
    home.login(server)
    server.reset_stats()
    server.faults.add("me", status=429, retry_after="3")
    term = terminal()
    term.type("clear; nsdk me; echo rc=$?")
    seen: set[str] = set()
    deadline = time.monotonic() + NSDK_TIMEOUT
    while time.monotonic() < deadline:
        screen = term.screen()
        seen.update(re.findall(r"retrying in (\d) s \.\.\.", screen))
        if re.search(r"rc=\d", screen):
            break
        time.sleep(0.05)
    assert {"3", "2", "1"} <= seen, seen  # the same line, counting down
    assert "rc=0" in screen and f"{EMAIL} (user 1005, tenant 2001)" in screen, screen
    assert "retrying in" not in screen  # erased once the wait ended
    assert server.stats()["requests"]["me"] == 2
