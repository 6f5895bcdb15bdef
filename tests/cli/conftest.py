"""Fixtures for the ``nsdk`` command line: a reference server, a private home, a runner.

Every command runs as a real process (the installed ``nsdk`` console script) with ``HOME``, every
``XDG_*`` directory and ``NSDK_CONFIG_DIR`` pointed at the test's temporary directory, so the real
home is never touched. The runner sends each process's stdout and stderr to the secret ledger,
and records the tokens the session file holds after each command as secrets, so the suite-wide
scan proves no token leaked into any output (``nsdk token``'s stdout is the one place a token
is meant to be, and is kept out of the ledger).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nsdk
import pytest
from _secret_scan import LEDGER
from nsdk_server.testing import ServerHandle, run_server

if TYPE_CHECKING:
    from nsdk.cli._keyring import KeyringTokenStore
    from nsdk_server.secret_service import SecretService

EMAIL = "user@example.com"
PASSWORD = "demo-password"  # the reference server's documented demo user
OTHER_EMAIL = "other@example.com"
OTHER_PASSWORD = "other-password-77"
NSDK = Path(sys.executable).with_name("nsdk")  # the console script of the installed wheel
LEDGER.secret(OTHER_PASSWORD)

SERVER_OPTIONS: dict[str, Any] = {
    "access_ttl": 300,
    "faults": True,
    "scrypt_n": 2**12,
    "login_account_rate": None,
    "login_address_rate": None,
    "user": [f"{OTHER_EMAIL}:{OTHER_PASSWORD}:2005:3001"],
}


@pytest.fixture(scope="session")
def _cli_server() -> Iterator[ServerHandle]:
    with run_server(**SERVER_OPTIONS) as server:
        yield server
        LEDGER.text("cli server log", server.logs())


@pytest.fixture
def server(_cli_server: ServerHandle) -> ServerHandle:
    """The session's reference server (faults on, tokens live 300 s): no faults, zeroed stats."""
    _cli_server.reset()
    return _cli_server


@pytest.fixture
def own_server() -> Callable[[], contextlib.AbstractContextManager[ServerHandle]]:
    """Servers of the test's own, to stop mid-test (a context manager factory)."""
    return lambda: run_server(**SERVER_OPTIONS)


@dataclass(frozen=True)
class Result:
    """One finished ``nsdk`` process."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str


@dataclass
class Home:
    """A private home for ``nsdk`` processes, and the runner."""

    root: Path
    env: dict[str, str]

    @property
    def config(self) -> Path:
        """``NSDK_CONFIG_DIR``."""
        return Path(self.env["NSDK_CONFIG_DIR"])

    def profile_dir(self, profile: str = "default") -> Path:
        """The profile's directory (session file or lock files, profile record)."""
        return self.config / "profiles" / profile

    def session_file(self, profile: str = "default") -> Path:
        """The profile's session file."""
        return self.profile_dir(profile) / "session.json"

    def store(self, profile: str = "default") -> nsdk.FileTokenStore:
        """The profile's store, opened from this (test) process."""
        return nsdk.FileTokenStore(self.session_file(profile))

    def _note_secrets(self) -> None:
        for directory in self.config.glob("profiles/*"):
            with contextlib.suppress(Exception):  # a corrupt session holds no token to note
                tokens = self.store(directory.name).read().tokens  # Tokens -> the ledger
                if tokens is not None:
                    LEDGER.tokens(tokens)

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``nsdk args`` (stdout and stderr piped)."""
        kwargs.setdefault("env", self.env)
        return subprocess.Popen(
            [str(NSDK), *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    def finish(
        self, args: tuple[str, ...], proc: subprocess.Popen[str], stdin: str | None = None
    ) -> Result:
        """Wait for ``proc`` and record its output."""
        out, err = proc.communicate(stdin, timeout=60)
        self._note_secrets()
        if args[-1:] != ("token",):
            LEDGER.text(f"nsdk {' '.join(args)} stdout", out)
        LEDGER.text(f"nsdk {' '.join(args)} stderr", err)
        return Result(args, proc.returncode, out, err)

    def run(self, *args: str, stdin: str | None = None, **kwargs: Any) -> Result:
        """Run ``nsdk args`` to the end (stdin: text, or no stdin at all)."""
        stdin_mode = subprocess.PIPE if stdin is not None else subprocess.DEVNULL
        proc = self.popen(*args, stdin=stdin_mode, **kwargs)
        return self.finish(args, proc, stdin)

    def login(self, server: ServerHandle, *extra: str, email: str = EMAIL) -> Result:
        """Sign in with the password on stdin; assert it worked."""
        password = PASSWORD if email == EMAIL else OTHER_PASSWORD
        result = self.run(
            *extra,
            "--base-url",
            server.base_url,
            "login",
            "--email",
            email,
            "--password-stdin",
            stdin=password + "\n",
        )
        assert result.code == 0, result
        return result

    def expire_access_token(self, profile: str = "default") -> nsdk.Tokens:
        """Replace the stored access token by one whose ``exp`` has passed; keep the refresh token.

        The client never verifies a JWT; it reads ``exp`` to refresh before sending, so the next
        command refreshes first, with the real refresh token, as when a token has aged.
        """
        store = self.store(profile)
        stored = store.read()
        assert stored.tokens is not None
        now = int(time.time())
        expired = nsdk.Tokens(jwt(iat=now - 600, exp=now - 300), stored.tokens.refresh_token)
        assert store.compare_and_set(stored.generation, stored.successor(expired))
        return expired

    def sixteen_me_share_one_refresh(self, server: ServerHandle, expected_out: str) -> None:
        """Expire the stored access token, run 16 `nsdk me` at once; assert 1 refresh, 0 replays."""
        self.expire_access_token()
        server.reset_stats()
        procs = [self.popen("me", stdin=subprocess.DEVNULL) for _ in range(16)]
        results = [self.finish(("me",), p) for p in procs]
        assert [r.code for r in results] == [0] * 16, [r.err for r in results if r.code]
        assert {r.out for r in results} == {expected_out}
        stats = server.stats()
        assert stats["refresh_requests"] == 1
        assert stats["refresh_ok"] == 1
        assert stats["replays"] == 0 and stats["families_revoked"] == 0
        assert stats["refresh_presented_max"] == 1
        assert stats["requests"]["me"] == 16


@dataclass
class KeyringHome(Home):
    """A ``Home`` whose processes share a private Secret Service."""

    service: SecretService | None = None

    def keyring_store(self, profile: str = "default") -> KeyringTokenStore:
        """The profile's keyring store, opened from this (test) process."""
        from keyring.backends.SecretService import Keyring
        from nsdk.cli._keyring import KeyringTokenStore
        from nsdk.cli._profile import Profile

        # The backend itself, not keyring.get_keyring(): that one is cached per process.
        found = Profile(profile, self.profile_dir(profile))
        return KeyringTokenStore(found, Keyring(), call_timeout=10.0)

    def store(self, profile: str = "default") -> nsdk.FileTokenStore:
        """The profile's session: the keyring, unless in a file (or the keyring was stopped)."""
        alive = self.service is not None and self.service.alive
        if self.session_file(profile).exists() or not alive:
            return super().store(profile)
        return self.keyring_store(profile)

    def item(self, profile: str = "default") -> str | None:
        """The raw keyring item of ``profile`` (None when there is none)."""
        from nsdk.cli._keyring import SERVICE, _within

        store = self.keyring_store(profile)
        call = lambda: store.backend.get_password(SERVICE, store.account)  # noqa: E731
        return _within(10.0, "read the item", "test", call)  # never a hung test

    def stop_keyring(self) -> None:
        """Stop the keyring daemon and the bus (as when the desktop session ends)."""
        if self.service is not None:
            self.service.stop()


@pytest.fixture
def keyring_home(home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyringHome]:
    """``home`` with a private session bus and an unlocked GNOME Keyring on it."""
    from nsdk_server.secret_service import missing, private_secret_service

    if absent := missing():
        pytest.fail(
            f"not installed: {', '.join(absent)}. .ci/run installs them; on Debian or Ubuntu run "
            f"`sudo apt-get install {' '.join(absent)}`. The tests start their own daemons on a "
            "private session bus: none needs to run.",
            pytrace=False,
        )
    with private_secret_service(home.env) as service:
        for name, value in service.env.items():
            monkeypatch.setenv(name, value)  # this process's keyring calls
        yield KeyringHome(home.root, {**home.env, **service.env}, service=service)


def jwt(**claims: Any) -> str:
    """An unsigned JWT with ``claims`` (enough for the client, which reads ``exp`` only)."""

    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.bm90LXNpZ25lZC1hdC1hbGw"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A private HOME, XDG dirs and NSDK_CONFIG_DIR; no NSDK_* variables from outside.

    No session bus either (``DBUS_SESSION_BUS_ADDRESS``, ``PYTHON_KEYRING_BACKEND`` dropped): the
    user's own OS keyring is never reached; tests/cli/test_keyring.py starts a private one.
    """
    outside = ("HOME", "COLUMNS", "DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NSDK_", "XDG_")) and k not in outside
    }
    dirs = {
        "HOME": "home",
        "XDG_CONFIG_HOME": "xdg/config",
        "XDG_CACHE_HOME": "xdg/cache",
        "XDG_DATA_HOME": "xdg/data",
        "XDG_STATE_HOME": "xdg/state",
        "XDG_RUNTIME_DIR": "xdg/runtime",
        "NSDK_CONFIG_DIR": "nsdk-config",
    }
    for name, sub in dirs.items():
        if name != "NSDK_CONFIG_DIR":
            (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(tmp_path / sub)
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = os.pathsep.join([str(NSDK.parent), env.get("PATH", "")])  # `nsdk` in a shell
    return Home(tmp_path, env)


Run = Callable[..., Result]
