"""The public surface: ``nsdk.__all__`` is exactly what the package exports, each name documented.

The second half checks that the surface grows from the spec alone: an endpoint added to
openapi.yaml works through ``client.api`` after regeneration, with no overlay edit.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nsdk
import yaml

# The private modules on disk, not the ones in vars(nsdk): most are imported on first use only
# (and not __main__, which would run the command line).
PRIVATE_MODULES = [
    m.name
    for m in pkgutil.iter_modules(nsdk.__path__)
    if m.name.startswith("_") and not m.name.startswith("__")
]


def _isort_key(name: str) -> tuple[int, str]:
    # ruff RUF022's "isort-style": SCREAMING_SNAKE_CASE, then CamelCase, then everything else.
    if name.isupper():
        return (0, name)
    return (1 if name[0].isupper() else 2, name)


def test_all_is_sorted():
    """nsdk.__all__ is sorted isort-style (constants, classes, functions) without duplicates."""
    assert nsdk.__all__ == sorted(set(nsdk.__all__), key=_isort_key)


def test_all_is_exactly_the_public_namespace():
    """Every public non-module name in nsdk is in __all__, and every __all__ name exists.

    Read through dir() and getattr(): the names served lazily are in vars(nsdk) only once used.
    """
    public = {
        name
        for name in dir(nsdk)
        if not name.startswith("_") and not isinstance(getattr(nsdk, name), types.ModuleType)
    }
    assert set(nsdk.__all__) == public


def test_private_modules_declare_all():
    """Each private module has __all__, and nsdk re-exports only names from those lists."""
    assert PRIVATE_MODULES, "expected nsdk's private submodules in its namespace"
    declared: set[str] = set()
    for name in PRIVATE_MODULES:
        module = importlib.import_module(f"nsdk.{name}")
        assert name.startswith("_"), name
        assert all(hasattr(module, n) for n in module.__all__), name
        declared.update(module.__all__)
    assert set(nsdk.__all__) <= declared


def _constant_doc(name: str) -> str | None:
    """The ``#:`` comment above a module-level constant, or the docstring right below it."""
    for module_name in PRIVATE_MODULES:
        module = importlib.import_module(f"nsdk.{module_name}")
        if name not in getattr(module, "__all__", ()):
            continue
        lines = inspect.getsource(module).splitlines()
        for i, line in enumerate(lines):
            if not re.match(rf"{name}\s*(:[^=]*)?=", line):
                continue
            if i and lines[i - 1].startswith("#:"):
                return lines[i - 1][2:].strip()
            if i + 1 < len(lines) and lines[i + 1].startswith('"""'):
                return lines[i + 1].strip('"').strip() or lines[i + 2]
    return None


def test_every_public_name_has_a_docstring():
    """Classes and functions have their own docstring; constants a ``#:`` doc comment."""
    missing = []
    for name in nsdk.__all__:
        obj = getattr(nsdk, name)
        if inspect.isclass(obj):
            doc = vars(obj).get("__doc__")
        elif callable(obj):
            doc = obj.__doc__
        else:
            doc = _constant_doc(name)
        if not doc or not doc.strip():
            missing.append(name)
    assert missing == []


def test_import_sets_up_nothing():
    """Importing nsdk adds no log handlers and does no configuration at import time."""
    code = (
        "import logging, nsdk; "
        "assert logging.getLogger('nsdk').handlers == [], 'handlers'; "
        "assert logging.getLogger().handlers == [], 'root handlers'"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


# --- the surface grows from the spec -------------------------------------------------------

NEW_ENDPOINT_SCRIPT = """
import asyncio, json, sys
import httpx, nsdk, nsdk_api
from nsdk_api._operations import OPERATIONS, operation_for
from nsdk_api.api.auth import list_sessions

assert nsdk_api.__file__.startswith(sys.argv[1]), nsdk_api.__file__
seq, sleeps, script = [], [], []

def handler(request):
    op = operation_for(request)
    seq.append([op.name if op else request.url.path, request.headers.get("Authorization")])
    ids = {"userId": "1005", "tenantId": "2001"}
    if op.name == "login":
        return httpx.Response(200, json={"accessToken": "a1", "refreshToken": "r1", **ids})
    if op.name == "refresh":
        return httpx.Response(200, json={"accessToken": "a2", "refreshToken": "r2"})
    if op.name == "me":
        return httpx.Response(200, json={**ids, "email": "user@example.com"})
    if script:
        return httpx.Response(script.pop(0), json={"detail": "x", "request_id": "r"})
    return httpx.Response(200, json={"sessions": ["s1", "s2"]})

async def ahandler(request):
    return handler(request)

async def asleep(seconds):
    sleeps.append(seconds)

def run_sync():
    with nsdk.Client("https://api.example.com", transport=httpx.MockTransport(handler),
                     sleep=sleeps.append, random=lambda: 0.5) as client:
        client.login(email="user@example.com", password="pw")
        return list_sessions.sync_detailed(client=client.api).parsed.sessions

async def run_async():
    async with nsdk.AsyncClient("https://api.example.com", transport=httpx.MockTransport(ahandler),
                                sleep=asleep, random=lambda: 0.5) as client:
        await client.login(email="user@example.com", password="pw")
        return (await list_sessions.asyncio_detailed(client=client.api)).parsed.sessions

out = {"op": {k: getattr(OPERATIONS["list_sessions"], k)
              for k in ("method", "path", "authenticated", "resend_safe", "role")},
       "by_route": operation_for(httpx.Request("GET", "https://h/api/auth/sessions")).name}
for name, run in (("sync", run_sync), ("async", lambda: asyncio.run(run_async()))):
    seq.clear(); sleeps.clear(); script[:] = [401, 500]
    out[name] = {"parsed": run(), "seq": list(seq), "sleeps": list(sleeps)}
print(json.dumps(out))
"""


def _add_list_sessions(spec: dict[str, Any]) -> None:
    """Add an authenticated, resend-safe GET /api/auth/sessions with a new response schema."""
    ref = {
        "401": "Unauthorized",
        "429": "TooManyRequests",
        "500": "InternalError",
    }
    spec["paths"]["/api/auth/sessions"] = {
        "get": {
            "tags": ["auth"],
            "operationId": "listSessions",
            "summary": "List the user's active sessions.",
            "description": "Returns the ids of the signed-in user's active sessions.",
            "security": [{"bearerAuth": []}],
            "x-nsdk-role": "call",
            "x-nsdk-resend-safe": True,
            "responses": {
                "200": {
                    "description": "The active sessions.",
                    "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/SessionList"}}
                    },
                },
                **{code: {"$ref": f"#/components/responses/{name}"} for code, name in ref.items()},
            },
        }
    }
    spec["components"]["schemas"]["SessionList"] = {
        "type": "object",
        "description": "The user's active sessions.",
        "required": ["sessions"],
        "properties": {
            "sessions": {"type": "array", "items": {"type": "string"}, "description": "Ids."}
        },
    }


def test_new_endpoint_works_through_client_api_after_regeneration(
    tmp_path: Path, repo_root: Path, generator_cli: Callable[..., Any]
):
    """An endpoint added to openapi.yaml gets refresh and retry via client.api, no overlay edit."""
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    _add_list_sessions(spec)
    spec_path = tmp_path / "openapi.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    generated = generator_cli("--spec", str(spec_path), "--dest", str(tmp_path / "nsdk_api"))
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert (tmp_path / "nsdk_api" / "api" / "auth" / "list_sessions.py").is_file()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    run = subprocess.run(
        [sys.executable, "-c", NEW_ENDPOINT_SCRIPT, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["op"] == {
        "method": "GET",
        "path": "/api/auth/sessions",
        "authenticated": True,
        "resend_safe": True,
        "role": "call",
    }
    assert out["by_route"] == "list_sessions"
    for kind in ("sync", "async"):
        assert out[kind] == {
            "parsed": ["s1", "s2"],
            "seq": [
                ["login", None],
                ["me", "Bearer a1"],
                ["list_sessions", "Bearer a1"],  # 401
                ["refresh", None],
                ["list_sessions", "Bearer a2"],  # 500: resend-safe per the spec, retried
                ["list_sessions", "Bearer a2"],
            ],
            "sleeps": [0.25],
        }, kind
