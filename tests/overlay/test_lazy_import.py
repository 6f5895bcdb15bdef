"""``import nsdk`` stays light: what a program does not use is imported on first access (PEP 562).

Each check runs in a fresh interpreter and reads ``sys.modules``, so a new eager import in
``nsdk/__init__.py`` (or one that drags the async client into the sync client) fails here rather
than showing up only as a slower ``nox -s bench`` figure.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
from pathlib import Path

import nsdk
import pytest

# What ``import nsdk`` must not import: the clients and what they build on (httpx, attrs, the
# generated layer), the stores and their optional libraries, asyncio, the package metadata.
NOT_AT_IMPORT = [
    "nsdk._async_client",
    "nsdk._client",
    "nsdk._config",
    "nsdk._file_store",
    "nsdk._redis_store",
    "nsdk._cipher",
    "nsdk._codec",
    "nsdk._session",
    "nsdk._tokens",
    "nsdk._transport",
    "nsdk_api",
    "httpx",
    "attrs",
    "asyncio",
    "ssl",
    "importlib.metadata",
    "filelock",
    "redis",
    "cryptography",
]

# What a sync Client, built and used, must not import: the async twin and asyncio, and the stores
# and ciphers it was not given.
NOT_FOR_SYNC_CLIENT = [
    "nsdk._async_client",
    "asyncio",
    "anyio",
    "nsdk._file_store",
    "nsdk._redis_store",
    "nsdk._cipher",
    "nsdk._codec",
    "filelock",
    "redis",
    "cryptography",
]


# What reading ``nsdk.Client`` (the import a program that builds a client pays, bench figure 2's
# target) must not import: the above, and what only http2 or a SOCKS proxy needs.
NOT_FOR_CLIENT_IMPORT = [*NOT_FOR_SYNC_CLIENT, "importlib.util"]

# The step messages the refresh and auth generators yield: plain slotted classes, since each
# attrs class costs about 0.7 ms of CPU to build at import (bench figure 2).
STEP_CLASSES = [
    ("nsdk._session", "Refresh"),
    ("nsdk._session", "Reload"),
    ("nsdk._session", "SignIn"),
    ("nsdk._session", "SignOut"),
    ("nsdk._refresh", "ReadStore"),
    ("nsdk._refresh", "WriteStore"),
    ("nsdk._refresh", "SendRefresh"),
    ("nsdk._refresh", "StoreClock"),
]


def _run(code: str) -> dict[str, object]:
    """Run code in a fresh interpreter; return the JSON it prints last."""
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, object] = json.loads(run.stdout.splitlines()[-1])
    return result


def test_import_nsdk_loads_only_the_exception_tree():
    """``import nsdk`` loads nsdk, nsdk._errors and nsdk._version, and none of the lazy modules."""
    out = _run(
        f"""
        import json, sys
        import nsdk
        print(json.dumps({{
            "nsdk": sorted(m for m in sys.modules if m.split(".")[0] == "nsdk"),
            "loaded": [m for m in {NOT_AT_IMPORT!r} if m in sys.modules],
        }}))
        """
    )
    assert out == {"nsdk": ["nsdk", "nsdk._errors", "nsdk._version"], "loaded": []}


def test_sync_client_does_not_import_the_async_client_or_unused_stores():
    """A sync Client signs in and calls me() without importing asyncio or the async client.

    With httpx's default transport httpcore imports anyio when it is installed (raw httpx does the
    same); asyncio and nsdk's async client stay out either way.
    """
    out = _run(
        f"""
        import json, sys
        import httpx, nsdk

        def handler(request):
            if request.url.path.endswith("/login"):
                return httpx.Response(200, json={{"accessToken": "a1", "refreshToken": "r1",
                                                  "userId": "1005", "tenantId": "2001"}})
            return httpx.Response(200, json={{"userId": "1005", "tenantId": "2001",
                                              "email": "user@example.com"}})

        with nsdk.Client("https://api.example.com", transport=httpx.MockTransport(handler)) as c:
            c.login(email="user@example.com", password="pw")
            email = c.me().email
        loaded = [m for m in {NOT_FOR_SYNC_CLIENT!r} if m in sys.modules]
        nsdk.Client("https://api.example.com").close()  # httpx's own pool: httpcore imports anyio
        default = [m for m in {NOT_FOR_SYNC_CLIENT!r} if m in sys.modules and m != "anyio"]
        print(json.dumps({{"email": email, "loaded": loaded, "default transport": default}}))
        """
    )
    assert out == {"email": "user@example.com", "loaded": [], "default transport": []}


@pytest.mark.parametrize(
    "statement", ["import nsdk; nsdk.Client", "from nsdk import Client"], ids=["attr", "from"]
)
def test_client_import_loads_what_a_sync_client_needs_and_nothing_more(statement: str):
    """Reading ``Client`` loads httpx, attrs, the generated layer and the sync client's modules.

    Not the async client, asyncio, the stores and ciphers it is not given, their optional
    libraries, or importlib.util (only http2 and SOCKS proxies look for their packages); and the
    step messages of the refresh and auth generators are not attrs classes.
    """
    out = _run(
        f"""
        import json, sys
        {statement}
        import importlib
        steps = [getattr(importlib.import_module(m), c) for m, c in {STEP_CLASSES!r}]
        print(json.dumps({{
            "loaded": [m for m in {NOT_FOR_CLIENT_IMPORT!r} if m in sys.modules],
            "needed": [m for m in ["httpx", "attrs", "nsdk_api", "nsdk._client", "nsdk._refresh"]
                       if m not in sys.modules],
            "attrs steps": [c.__name__ for c in steps if hasattr(c, "__attrs_attrs__")],
        }}))
        """
    )
    assert out == {"loaded": [], "needed": [], "attrs steps": []}


def test_step_messages_are_immutable_and_never_show_a_token():
    """The plain step classes keep what attrs.frozen gave them: no assignment, no secret in repr."""
    from nsdk._refresh import SendRefresh, WriteStore
    from nsdk._session import Refresh

    send = SendRefresh("refresh-s3cr3t")
    refresh = Refresh("access-s3cr3t")
    assert (send.refresh_token, refresh.stale, refresh.proactive) == (
        "refresh-s3cr3t",
        "access-s3cr3t",
        False,
    )
    assert Refresh("a", proactive=True).proactive is True
    for step, name in [(send, "refresh_token"), (refresh, "stale"), (refresh, "extra")]:
        with pytest.raises(AttributeError, match="is immutable"):
            setattr(step, name, "changed")
        with pytest.raises(AttributeError):
            delattr(step, name)
    assert "s3cr3t" not in repr(send) + repr(refresh)
    stored = nsdk.StoredSession(generation=4, tokens=nsdk.Tokens("a", "r"))
    write = WriteStore(3, stored)
    assert (write.expected, write.new, hasattr(write, "__dict__")) == (3, stored, False)


def test_lazy_names_load_once_and_report_the_nsdk_module():
    """Reading a lazy name imports its module, caches it in the namespace and names it nsdk.*.

    A class its module's neighbours imported first (``Tokens``, pulled in by ``Client``) reports
    ``nsdk`` before its own name is read, so reprs and pickles never name a private module.
    """
    out = _run(
        """
        import json, sys
        import nsdk
        before = "Client" in vars(nsdk)
        client = nsdk.Client
        tokens = sys.modules["nsdk._tokens"].Tokens  # not read through nsdk yet
        print(json.dumps({
            "before": before,
            "cached": vars(nsdk)["Client"] is client,
            "modules": [client.__module__, tokens.__module__, "Tokens" in vars(nsdk)],
            "async": "nsdk._async_client" in sys.modules,
        }))
        """
    )
    assert out == {
        "before": False,
        "cached": True,
        "modules": ["nsdk", "nsdk", False],
        "async": False,
    }


def test_every_public_name_is_importable_listed_and_star_exported():
    """``from nsdk import X`` works for every name, dir() lists them all, and so does import *."""
    out = _run(
        """
        import json
        import nsdk
        listed = sorted(set(nsdk.__all__) - set(dir(nsdk)))
        star = {}
        exec("from nsdk import *", star)
        names = {}
        for name in nsdk.__all__:
            exec(f"from nsdk import {name}", names)
        print(json.dumps({
            "not_in_dir": listed,
            "star": sorted(set(nsdk.__all__) - set(star)),
            "from": sorted(n for n in nsdk.__all__ if names[n] is not getattr(nsdk, n)),
            "version_in_dir": "__version__" in dir(nsdk),
        }))
        """
    )
    assert out == {"not_in_dir": [], "star": [], "from": [], "version_in_dir": True}


def test_misspelt_name_raises_attribute_error_in_a_fresh_interpreter():
    """A misspelt name raises AttributeError, and ``from nsdk import`` of it ImportError."""
    out = _run(
        """
        import json
        import nsdk
        errors = []
        try:
            nsdk.Clinet
        except AttributeError as exc:
            errors.append(str(exc))
        try:
            from nsdk import AsyncClinet
        except ImportError as exc:
            errors.append(type(exc).__name__)
        print(json.dumps(errors))
        """
    )
    assert out == ["module 'nsdk' has no attribute 'Clinet'", "ImportError"]


@pytest.mark.parametrize(
    "value",
    [
        nsdk.Tokens("access-1", "refresh-1"),
        nsdk.RetryPolicy(max_attempts=2),
        nsdk.SessionState.ACTIVE,
        nsdk.APIConnectionError("connect failed: refused"),
        nsdk.TokenStoreBusyError("busy"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_pickles_load_in_an_interpreter_that_never_read_the_name(value: object):
    """A pickle names nsdk.<Class>; unpickling it in a fresh interpreter loads the class lazily."""
    data = pickle.dumps(value)
    strings = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
    assert "nsdk" in strings
    assert [s for s in strings if s.startswith("nsdk.")] == []
    out = _run(
        f"""
        import json, pickle
        value = pickle.loads({data!r})
        print(json.dumps([type(value).__module__, type(value).__name__, repr(value)]))
        """
    )
    assert out == ["nsdk", type(value).__name__, repr(value)]


def test_file_store_reads_without_importing_filelock(tmp_path: Path):
    """A FileTokenStore that only reads (``nsdk status``) never imports filelock; a lock does."""
    out = _run(
        f"""
        import json, sys
        import nsdk
        store = nsdk.FileTokenStore({str(tmp_path / "session.json")!r})
        empty = store.read().tokens is None
        after_read = "filelock" in sys.modules
        with store.refresh_lock():
            locked = "filelock" in sys.modules
        print(json.dumps([empty, after_read, locked]))
        """
    )
    assert out == [True, False, True]


@pytest.mark.parametrize(
    ("args", "code", "allowed"),
    [(["--help"], 0, set()), (["status"], 4, {"attrs"})],
    ids=["help", "status"],
)
def test_cli_start_imports_no_http_stack(
    tmp_path: Path, args: list[str], code: int, allowed: set[str]
):
    """``nsdk --help`` and ``nsdk status`` import neither httpx nor a client (bench figure 9)."""
    pytest.importorskip("click", reason="the cli extra is not installed")
    heavy = ["httpx", "attrs", "nsdk_api", "nsdk._client", "nsdk._async_client", "asyncio"]
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "NSDK_CONFIG_DIR": str(tmp_path / "nsdk"),
    }
    env.pop("NSDK_API_BASE_URL", None)
    env.pop("NSDK_PROFILE", None)
    script = textwrap.dedent(
        f"""
        import json, sys
        from nsdk.cli import main
        try:
            main({args!r})
        except SystemExit as exc:
            code = exc.code
        print(json.dumps([code, [m for m in {heavy!r} if m in sys.modules]]))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == [code, sorted(allowed, key=heavy.index)]
