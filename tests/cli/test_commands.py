"""The ``nsdk`` command line as a user runs it: real processes, a private home, the real server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import nsdk
from nsdk_server.testing import ServerHandle

if TYPE_CHECKING:
    from conftest import Home  # tests/cli/conftest.py

EMAIL = "user@example.com"
OTHER_EMAIL = "other@example.com"

STATUS_KEYS = {
    "profile": str,
    "signed_in": bool,
    "state": str,
    "base_url": (str, type(None)),
    "email": (str, type(None)),
    "user_id": (str, type(None)),
    "tenant_id": (str, type(None)),
    "signed_in_at": (str, type(None)),
    "access_token_expires_at": (str, type(None)),
    "access_token_expired": (bool, type(None)),
    "storage": str,
    "session_file": (str, type(None)),  # None when the session is in the OS keyring
    "keyring": (dict, type(None)),  # backend, service, account; None for the file
}


def _tokens(home: Home, profile: str = "default") -> nsdk.Tokens:
    tokens = home.store(profile).read().tokens
    assert tokens is not None
    return tokens


def _no_token_in(home: Home, *texts: str) -> None:
    tokens = _tokens(home)
    for text in texts:
        assert tokens.access_token not in text and tokens.refresh_token not in text
        assert tokens.access_token.split(".")[2] not in text


def _status(home: Home, *extra: str) -> tuple[int, dict[str, object]]:
    result = home.run(*extra, "status", "--json")
    data = json.loads(result.out)
    assert set(data) == set(STATUS_KEYS)
    for key, kind in STATUS_KEYS.items():
        assert isinstance(data[key], kind), key
    return result.code, data


def test_whole_flow(home: Home, server: ServerHandle) -> None:
    """Status, login, status, me, token, api me, logout, status: outputs, exit codes, requests."""
    before = home.run("status")
    assert before.code == 4
    assert "not signed in" in before.out and "nsdk login" in before.err

    login = home.login(server)
    assert login.out.startswith(
        f"Signed in to {server.base_url} as {EMAIL} (user 1005, tenant 2001)"
    )

    code, data = _status(home)
    assert code == 0
    assert data["signed_in"] is True and data["state"] == "signed_in"
    assert (data["base_url"], data["email"], data["user_id"], data["tenant_id"]) == (
        server.base_url,
        EMAIL,
        "1005",
        "2001",
    )
    assert data["storage"] == "file" and data["access_token_expired"] is False
    assert data["session_file"] == str(home.session_file()) and data["keyring"] is None
    tokens = _tokens(home)
    assert tokens.expires_at is not None
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tokens.expires_at))
    assert data["access_token_expires_at"] == expires
    human = home.run("status")
    assert human.code == 0 and f"valid until {expires}" in human.out
    assert f"file {home.session_file()}" in human.out

    me = home.run("me")
    assert (me.code, me.out) == (0, f"{EMAIL} (user 1005, tenant 2001)\n")
    me_json = home.run("me", "--json")
    assert json.loads(me_json.out) == {"userId": "1005", "tenantId": "2001", "email": EMAIL}
    token = home.run("token")
    assert (token.code, token.out, token.err) == (0, tokens.access_token + "\n", "")
    api_me = home.run("api", "me")
    assert json.loads(api_me.out) == {"userId": "1005", "tenantId": "2001", "email": EMAIL}

    verbose = home.run("-v", "me")  # every exchange logged to stderr, with its request id
    assert verbose.code == 0 and "GET /api/auth/me attempt=1 -> 200 request_id=req_" in verbose.err

    outputs = [r.out + r.err for r in (login, human, me, me_json, api_me, verbose)] + [token.err]
    _no_token_in(home, *outputs)
    assert server.stats()["requests"] == {"login": 1, "refresh": 0, "me": 5, "logout": 0}

    out = home.run("logout")
    assert out.code == 0 and out.out == f"Signed out of {server.base_url} (profile default)\n"
    assert home.store().read().tokens is None
    assert not (home.session_file().parent / "profile.json").exists()
    code, data = _status(home)
    assert (code, data["state"], data["signed_in"], data["email"]) == (4, "signed_out", False, None)
    after = home.run("me")
    assert after.code == 4 and "not signed in" in after.err and "nsdk login" in after.err
    assert server.stats()["logouts"] == 1
    assert server.stats()["requests"]["me"] == 5  # nothing sent without a session


def test_expired_token_is_refreshed_and_persisted(home: Home, server: ServerHandle) -> None:
    """An access token past its exp is refreshed once before the call; the new pair is stored."""
    home.login(server)
    old = home.expire_access_token()
    generation = home.store().read().generation
    status = home.run("status")
    assert (
        status.code == 0 and "expired at" in status.out and "next command refreshes" in status.out
    )

    me = home.run("me")
    assert me.code == 0, me
    stored = home.store().read()
    assert stored.tokens is not None and stored.generation > generation
    assert stored.tokens.refresh_token != old.refresh_token
    assert stored.tokens.access_token != old.access_token
    stats = server.stats()
    assert (stats["refresh_requests"], stats["refresh_ok"], stats["replays"]) == (1, 1, 0)

    # The next process uses the stored pair: no second refresh.
    assert home.run("me").code == 0
    assert home.run("token").out == stored.tokens.access_token + "\n"
    assert server.stats()["refresh_requests"] == 1


def test_token_refreshes_when_due(home: Home, server: ServerHandle) -> None:
    """`nsdk token` on an expired access token prints the refreshed one, never the stale one."""
    home.login(server)
    old = home.expire_access_token()
    token = home.run("token")
    fresh = _tokens(home)
    assert token.code == 0 and token.out == fresh.access_token + "\n"
    assert fresh.access_token != old.access_token
    assert server.stats()["refresh_ok"] == 1


def test_refused_refresh_signs_out(home: Home, server: ServerHandle) -> None:
    """A refused refresh: exit 4, 'sign in again' on stderr, the session cleared for everyone."""
    home.login(server)
    home.expire_access_token()
    server.faults.add("refresh", status=401)
    me = home.run("me")
    assert me.code == 4, me
    assert "sign in again" in me.err and "nsdk login" in me.err
    assert "request_id=req_" in me.err
    assert me.out == ""
    stored = home.store().read()
    assert stored.tokens is None and stored.expired is True
    code, data = _status(home)
    assert (code, data["state"]) == (4, "expired")
    again = home.run("me")
    assert again.code == 4 and "sign in again" in again.err
    assert server.stats()["requests"]["refresh"] == 1  # the failed session is not retried


def test_logout_twice_and_with_the_server_down(home: Home, own_server: Any) -> None:
    """Logout is idempotent, and clears the session even when the server cannot be reached."""
    with own_server() as own:
        home.login(own)
        first = home.run("logout")
        assert first.code == 0 and "Signed out" in first.out
        second = home.run("logout")
        assert second.code == 0 and "nothing to do" in second.err
        assert own.stats()["logouts"] == 1
        home.login(own)
    # The server is gone now.
    down = home.run("logout")
    assert down.code == 0, down
    assert "did not confirm" in down.err and "cleared" in down.err
    assert "Connection refused" in down.err or "ConnectError" in down.err
    assert home.store().read().tokens is None
    assert home.run("logout").code == 0
    assert home.run("status").code == 4


def test_exit_codes(home: Home, server: ServerHandle) -> None:
    """0 ok, 1 API error (with the request id), 2 usage, 4 authentication required."""
    assert home.run("--help").code == 0
    assert home.run("no-such-command").code == 2
    assert home.run("me", "--no-such-option").code == 2
    no_url = home.run("login", "--email", EMAIL, "--password-stdin", stdin="x\n")
    assert no_url.code == 2 and "--base-url" in no_url.err and "NSDK_API_BASE_URL" in no_url.err
    bad_profile = home.run("--profile", "../x", "status")
    assert bad_profile.code == 2 and "invalid profile name" in bad_profile.err

    wrong = home.run(
        "--base-url", server.base_url, "login", "--email", EMAIL, "--password-stdin",
        stdin="wrong-password\n",
    )  # fmt: skip
    assert wrong.code == 4 and "HTTP 401" in wrong.err and "request_id=req_" in wrong.err

    home.login(server)
    server.faults.add("me", status=500, times=10)
    failed = home.run("me")
    assert failed.code == 1 and "HTTP 500" in failed.err and "request_id=req_" in failed.err
    assert "Traceback" not in failed.err and failed.out == ""
    server.faults.clear()

    elsewhere = home.run("--base-url", "http://127.0.0.1:9", "me")
    assert elsewhere.code == 2 and f"signed in to {server.base_url}" in elsewhere.err
    env_elsewhere = home.run("me", env={**home.env, "NSDK_API_BASE_URL": server.base_url + "/"})
    assert env_elsewhere.code == 0  # the same server, spelled with a slash


def test_wait_is_said_on_stderr(home: Home, server: ServerHandle) -> None:
    """Without a terminal, each Retry-After wait is one plain line on stderr; the call succeeds."""
    home.login(server)
    server.faults.add("me", status=429, retry_after="1")
    me = home.run("me")
    assert me.code == 0 and me.out == f"{EMAIL} (user 1005, tenant 2001)\n"
    lines = me.err.splitlines()
    assert lines == [
        "nsdk: the server asked to wait (Retry-After) or the request failed: retrying in 1.0 s"
    ]
    assert server.stats()["rate_limited"] + server.stats()["faults_applied"] >= 1


def test_file_modes_under_umask_000(home: Home, server: ServerHandle) -> None:
    """Under umask 000 the config directories are 0700 and the files 0600."""

    def login_with_umask_000() -> None:
        os.umask(0)

    result = home.run(
        "--base-url", server.base_url, "login", "--email", EMAIL, "--password-stdin",
        stdin="demo-password\n", preexec_fn=login_with_umask_000,
    )  # fmt: skip
    assert result.code == 0, result
    home.expire_access_token()  # so the next command refreshes, under its refresh lock file
    refreshed = home.run("me", preexec_fn=login_with_umask_000)
    assert refreshed.code == 0 and server.stats()["refresh_ok"] == 1
    profile = home.session_file().parent
    for directory in (home.config, home.config / "profiles", profile):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    files = sorted(p.name for p in profile.iterdir())
    assert files == [
        "profile.json",
        "session.json",
        "session.json.lock",
        "session.json.write.lock",
    ]
    for path in profile.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    record = json.loads((profile / "profile.json").read_text())
    assert "Token" not in json.dumps(record) and "token" not in json.dumps(record)


def test_corrupt_session_file(home: Home, server: ServerHandle) -> None:
    """A corrupt session file: a clear message and exit 3, never a traceback; logout clears it."""
    home.login(server)
    home.session_file().write_text('{"format": "nsdk-session", "vers')
    for args in (("me",), ("status",), ("token",), ("api", "me")):
        result = home.run(*args)
        assert result.code == 3, result
        assert str(home.session_file()) in result.err and "not valid JSON" in result.err
        assert "logout" in result.err
        assert "Traceback" not in result.err and result.out == ""
    cleared = home.run("logout")
    assert cleared.code == 0 and "removed it" in cleared.err
    assert not home.session_file().exists()
    assert home.run("status").code == 4


def test_no_terminal_and_no_password_stdin(home: Home, server: ServerHandle) -> None:
    """Without a terminal and without --password-stdin: exit 2 and a hint, not an EOFError."""
    result = home.run("--base-url", server.base_url, "login", "--email", EMAIL)
    assert result.code == 2
    assert "--password-stdin" in result.err and "no terminal" in result.err
    assert "EOFError" not in result.err and "Traceback" not in result.err
    no_email = home.run("--base-url", server.base_url, "login", "--password-stdin", stdin="x\n")
    assert no_email.code == 2 and "--email is required" in no_email.err
    empty = home.run(
        "--base-url", server.base_url, "login", "--email", EMAIL, "--password-stdin", stdin=""
    )
    assert empty.code == 2 and "stdin is empty" in empty.err
    assert "--password " not in home.run("login", "--help").out  # there is no such option
    assert server.stats()["requests"]["login"] == 0


def test_profiles_side_by_side(home: Home, server: ServerHandle) -> None:
    """Two profiles keep two sessions; each command uses its own."""
    home.login(server)
    home.login(server, "--profile", "work", email=OTHER_EMAIL)
    assert home.run("me").out.startswith(EMAIL)
    assert home.run("--profile", "work", "me").out == f"{OTHER_EMAIL} (user 2005, tenant 3001)\n"
    env_profile = home.run("me", env={**home.env, "NSDK_PROFILE": "work"})
    assert env_profile.out.startswith(OTHER_EMAIL)
    assert _tokens(home).access_token != _tokens(home, "work").access_token
    assert home.run("--profile", "work", "logout").code == 0
    assert home.run("--profile", "work", "status").code == 4
    assert home.run("status").code == 0


def test_default_config_dir_follows_xdg(home: Home, server: ServerHandle) -> None:
    """Without NSDK_CONFIG_DIR the session lands under $XDG_CONFIG_HOME/nsdk, not the real home."""
    env = {k: v for k, v in home.env.items() if k != "NSDK_CONFIG_DIR"}
    result = home.run(
        "--base-url", server.base_url, "login", "--email", EMAIL, "--password-stdin",
        stdin="demo-password\n", env=env,
    )  # fmt: skip
    assert result.code == 0, result
    expected = home.root / "xdg/config/nsdk/profiles/default/session.json"
    assert expected.exists()
    status = json.loads(home.run("status", "--json", env=env).out)
    assert status["session_file"] == str(expected)
    assert home.run("logout", env=env).code == 0


def test_sixteen_processes_on_an_expired_token(home: Home, server: ServerHandle) -> None:
    """16 `nsdk me` at once on an expired token: one refresh at the server, 0 replays, 16 ok."""
    home.login(server)
    home.sixteen_me_share_one_refresh(server, f"{EMAIL} (user 1005, tenant 2001)\n")


def test_python_m_nsdk_and_missing_extra(home: Home) -> None:
    """`python -m nsdk` is the CLI; without click, main says how to install the extra (exit 2)."""
    help_run = subprocess.run(
        [sys.executable, "-m", "nsdk", "--help"], env=home.env, capture_output=True, text=True
    )
    assert help_run.returncode == 0 and "Exit codes:" in help_run.stdout
    code = "import sys; sys.modules['click'] = None; from nsdk.cli import main; main(['status'])"
    missing = subprocess.run(
        [sys.executable, "-c", code], env=home.env, capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "pip install 'nsdk[cli]'" in missing.stderr and "Traceback" not in missing.stderr


def test_corrupt_profile_record(home: Home, server: ServerHandle) -> None:
    """A corrupt profile.json: exit 3 naming it; logout still clears the session (exit 0)."""
    home.login(server)
    record = home.session_file().parent / "profile.json"
    record.write_text("not json")
    status = home.run("status")
    assert status.code == 3 and str(record) in status.err and "Traceback" not in status.err
    out = home.run("logout")
    assert out.code == 0 and "removing it" in out.err and "cleared it here only" in out.err
    assert home.store().read().tokens is None and not record.exists()
    assert home.run("status").code == 4
