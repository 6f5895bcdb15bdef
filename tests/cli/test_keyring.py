"""The session in a real OS keyring: GNOME Keyring's Secret Service on a private session bus.

Each test that needs a keyring starts its own ``dbus-daemon`` (a session bus on a socket in the
test's ``XDG_RUNTIME_DIR``) and ``gnome-keyring-daemon`` (its login keyring created and unlocked
in the test's ``XDG_DATA_HOME``), and gives the bus to the ``nsdk`` processes; the user's own
keyring is never reached (the ``home`` fixture drops the outside bus). The tokens the keyring
holds after each command go to the secret ledger, as the session file's do, so the suite-wide
scan proves none leaked into any output.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nsdk
import pytest
from nsdk_server.testing import ServerHandle

if TYPE_CHECKING:
    from conftest import Home, KeyringHome, Result  # tests/cli/conftest.py

EMAIL = "user@example.com"
BACKEND = "SecretService Keyring"
ME = f"{EMAIL} (user 1005, tenant 2001)\n"


def _status(home: Home) -> tuple[int, dict[str, Any]]:
    result = home.run("status", "--json")
    return result.code, json.loads(result.out)


def _profile_files_hold_no_token(home: KeyringHome, tokens: nsdk.Tokens) -> None:
    for path in home.profile_dir().iterdir():
        data = path.read_bytes()
        assert (
            tokens.access_token.encode() not in data and tokens.refresh_token.encode() not in data
        )


def test_login_keeps_the_session_in_the_keyring(
    keyring_home: KeyringHome, server: ServerHandle
) -> None:
    """Login, status, me, token, a refresh and logout with the session in the OS keyring."""
    home = keyring_home
    login = home.login(server)
    assert "keyring not used" not in login.err
    assert not home.session_file().exists()  # no session file: the keyring holds it
    tokens = home.keyring_store().read().tokens
    assert tokens is not None
    assert json.loads(home.item() or "")["tokens"]["refresh_token"] == tokens.refresh_token
    _profile_files_hold_no_token(home, tokens)

    code, data = _status(home)
    assert (code, data["storage"], data["session_file"]) == (0, "keyring", None)
    account = str(home.profile_dir())
    assert data["keyring"] == {"backend": BACKEND, "service": "nsdk", "account": account}
    human = home.run("status")
    assert f"Stored:   OS keyring ({BACKEND}): service nsdk, account {account}" in human.out

    assert (home.run("me").out, home.run("token").out) == (ME, tokens.access_token + "\n")

    home.expire_access_token()  # in the keyring: the next command refreshes first
    server.reset_stats()
    assert home.run("me").out == ME
    stats = server.stats()
    assert (stats["refresh_requests"], stats["refresh_presented_max"]) == (1, 1)
    rotated = home.keyring_store().read().tokens
    assert rotated is not None and rotated.refresh_token != tokens.refresh_token

    out = home.run("logout")
    assert (out.code, out.out) == (0, f"Signed out of {server.base_url} (profile default)\n")
    assert home.item() is None  # nothing of nsdk's left in the user's keyring
    assert _status(home)[0] == 4
    assert server.stats()["logouts"] == 1


def test_sixteen_processes_share_one_keyring_session(
    keyring_home: KeyringHome, server: ServerHandle
) -> None:
    """16 `nsdk me` at once on an expired token in the keyring: 1 refresh, 0 replays, 16 ok."""
    keyring_home.login(server)
    assert not keyring_home.session_file().exists()  # the herd reads and writes the keyring
    keyring_home.sixteen_me_share_one_refresh(server, ME)


def test_storage_moves_between_file_and_keyring(
    keyring_home: KeyringHome, server: ServerHandle
) -> None:
    """`--storage file` keeps the file; signing in again elsewhere removes the earlier copy."""
    home = keyring_home
    assert _login(home, server, "--storage", "file").code == 0
    assert home.session_file().exists() and home.item() is None
    assert _status(home)[1]["storage"] == "file"

    home.login(server)  # auto: the keyring answers
    assert not home.session_file().exists() and home.item() is not None
    assert _status(home)[1]["storage"] == "keyring"

    assert _login(home, server, "--storage", "file").code == 0
    assert home.session_file().exists() and home.item() is None
    assert home.run("me").out == ME

    wrong = home.run(
        "login", "--email", EMAIL, "--password-stdin", stdin="wrong-password\n"
    )  # auto would move it to the keyring, but the sign-in fails: the file session stays
    assert wrong.code == 4 and home.item() is None
    assert _status(home)[1]["storage"] == "file" and home.run("me").out == ME


def test_keyring_gone_after_login(keyring_home: KeyringHome, server: ServerHandle) -> None:
    """The keyring gone (daemon and bus stopped): exit 3 saying where; logout forgets it here."""
    home = keyring_home
    home.login(server)
    home.stop_keyring()
    for args in (("me",), ("status",), ("token",)):
        result = home.run(*args)
        assert result.code == 3, result
        assert "OS keyring (SecretService Keyring)" in result.err and "logout" in result.err
        assert "Traceback" not in result.err and result.out == ""
    out = home.run("logout")
    assert out.code == 0 and "signed out here" in out.err
    assert home.run("status").code == 4
    assert server.stats()["requests"]["logout"] == 0  # the tokens were out of reach


def test_without_a_usable_keyring_the_file_is_used(home: Home, server: ServerHandle) -> None:
    """No session bus: auto takes the 0600 file and says why; --storage keyring is refused."""
    login = home.login(server)
    assert "OS keyring not used" in login.err and "0600 file" in login.err
    assert home.session_file().exists()
    assert _status(home)[1]["storage"] == "file"
    insist = _login(home, server, "--storage", "keyring")
    assert insist.code == 2 and "--storage keyring: no OS keyring here" in insist.err
    assert "Traceback" not in insist.err
    assert home.run("me").out == ME  # the file session is untouched


@pytest.mark.parametrize(
    "backend", ["keyring.backends.null.Keyring", "keyring.backends.fail.Keyring"]
)
def test_weak_backends_are_refused(home: Home, server: ServerHandle, backend: str) -> None:
    """keyring's null and fail backends (chosen by PYTHON_KEYRING_BACKEND) are never used."""
    env = {**home.env, "PYTHON_KEYRING_BACKEND": backend}
    insist = _login(home, server, "--storage", "keyring", env=env)
    assert insist.code == 2 and "store nothing or store in plain files" in insist.err
    auto = _login(home, server, env=env)
    assert auto.code == 0 and home.session_file().exists()


def test_a_hanging_keyring_is_given_up_on(home: Home, server: ServerHandle, tmp_path: Path) -> None:
    """A backend that never answers: bounded by NSDK_KEYRING_TIMEOUT, then the file (auto)."""
    (tmp_path / "hanging_keyring.py").write_text(
        textwrap.dedent(
            """
            import threading
            from keyring.backend import KeyringBackend

            class Keyring(KeyringBackend):
                priority = 1
                def get_password(self, service, username):
                    threading.Event().wait()  # as a D-Bus call that never returns
                def set_password(self, service, username, password):
                    threading.Event().wait()
                def delete_password(self, service, username):
                    threading.Event().wait()
            """
        )
    )
    env = {
        **home.env,
        "PYTHONPATH": str(tmp_path),
        "PYTHON_KEYRING_BACKEND": "hanging_keyring.Keyring",
        "NSDK_KEYRING_TIMEOUT": "0.5",
    }
    insist = _login(home, server, "--storage", "keyring", env=env)
    assert insist.code == 2 and "did not answer within 0.5 s" in insist.err
    auto = _login(home, server, env=env)
    assert auto.code == 0 and "did not answer within 0.5 s" in auto.err
    assert home.session_file().exists() and home.run("me", env=env).out == ME
    bad = _login(home, server, "--storage", "keyring", env={**env, "NSDK_KEYRING_TIMEOUT": "x"})
    assert bad.code == 2 and "NSDK_KEYRING_TIMEOUT must be a positive number" in bad.err


def _login(
    home: Home, server: ServerHandle, *extra: str, env: dict[str, str] | None = None
) -> Result:
    return home.run(
        "--base-url", server.base_url, "login", "--email", EMAIL, "--password-stdin", *extra,
        stdin="demo-password\n", env=env or home.env,
    )  # fmt: skip


def test_corrupt_keyring_item(keyring_home: KeyringHome, server: ServerHandle) -> None:
    """An item that is not a session: exit 3 naming the item; logout removes it."""
    from nsdk.cli._keyring import SERVICE

    home = keyring_home
    home.login(server)
    store = home.keyring_store()
    store.backend.set_password(SERVICE, store.account, "{not a session")
    me = home.run("me")
    assert me.code == 3 and "Traceback" not in me.err and me.out == ""
    where = f"OS keyring ({BACKEND}), service nsdk, account {store.account}"
    assert f"{where}: the item is not valid JSON" in me.err and "logout" in me.err
    out = home.run("logout")
    assert out.code == 0 and "could not be read; removed it" in out.err
    assert home.item() is None and home.run("status").code == 4


def _imported(err: str) -> set[str]:
    """The modules a process imported, from its ``PYTHONPROFILEIMPORTTIME`` lines on stderr."""
    lines = (line for line in err.splitlines() if line.startswith("import time:"))
    return {line.rsplit("|", 1)[-1].strip() for line in lines}


def _keyring_modules(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "keyring" or m.startswith("keyring.")}


def test_later_commands_skip_importing_keyring(
    keyring_home: KeyringHome, server: ServerHandle
) -> None:
    """After login, status/me/token/refresh/logout use SecretStorage alone, on keyring's items.

    keyring's import (about 120 ms) is paid by ``login`` only. The items stay keyring's: this
    test process reads and writes them through keyring's own Secret Service backend.
    """
    home = keyring_home
    home.login(server)
    expired = home.expire_access_token()  # written through keyring's backend
    server.reset_stats()
    env = {**home.env, "PYTHONPROFILEIMPORTTIME": "1"}
    for args in (("status",), ("me",), ("token",), ("status", "--json")):
        result = home.run(*args, env=env)
        assert result.code == 0, result.err[-500:]
        modules = _imported(result.err)
        assert "secretstorage" in modules and not _keyring_modules(modules), args
    stats = server.stats()
    assert (stats["refresh_requests"], stats["refresh_presented_max"]) == (1, 1)
    rotated = home.keyring_store().read().tokens  # the direct write, read by keyring
    assert rotated is not None and rotated.refresh_token != expired.refresh_token
    assert json.loads(result.out)["storage"] == "keyring"  # the last run: status --json
    out = home.run("logout", env=env)
    assert out.code == 0 and not _keyring_modules(_imported(out.err))
    assert home.item() is None and server.stats()["requests"]["logout"] == 1


@pytest.mark.parametrize("configured", ["keyringrc.cfg", "PYTHON_KEYRING_BACKEND"])
def test_a_configured_keyring_is_used_as_configured(
    keyring_home: KeyringHome, server: ServerHandle, configured: str
) -> None:
    """keyring configured (its config file, or the variable): keyring itself reads the item."""
    home = keyring_home
    home.login(server)
    env = {**home.env, "PYTHONPROFILEIMPORTTIME": "1"}
    chosen = "keyring.backends.SecretService.Keyring"
    if configured == "keyringrc.cfg":
        config = Path(home.env["XDG_CONFIG_HOME"], "python_keyring", "keyringrc.cfg")
        config.parent.mkdir(parents=True)
        config.write_text(f"[backend]\ndefault-keyring = {chosen}\n")
    else:
        env["PYTHON_KEYRING_BACKEND"] = chosen
    me = home.run("me", env=env)
    assert me.code == 0 and me.out == ME
    assert "keyring.backends.SecretService" in _keyring_modules(_imported(me.err))
