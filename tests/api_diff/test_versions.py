"""One version everywhere: the package, the API it was generated from, every request's User-Agent.

The User-Agent is asserted where a server operator sees it: at the reference server, which
counts the ``User-Agent`` of every API request in ``/_nsdk/stats``.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import nsdk
import nsdk_api
import pytest
import yaml

EMAIL, PASSWORD = "user@example.com", "demo-password"


def expected_user_agent() -> str:
    """The User-Agent nsdk documents, built here from independent sources."""
    return (
        f"nsdk/{version('nsdk')} (nsdk-api {nsdk_api.API_VERSION}; "
        f"python {platform.python_version()}; httpx {httpx.__version__})"
    )


def test_versions_agree(repo_root: Path) -> None:
    """nsdk.__version__ is pyproject's version; nsdk_api.API_VERSION is openapi.yaml's.

    The build writes pyproject's version into ``nsdk/_version.py`` (hatchling's version hook);
    the committed copy must say the same, so a bump without a rebuild fails here.
    """
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    source = (repo_root / "overlay" / "nsdk" / "_version.py").read_text(encoding="utf-8")
    assert f'__version__ = "{pyproject["project"]["version"]}"' in source.splitlines()
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    assert nsdk.__version__ == version("nsdk") == pyproject["project"]["version"]
    assert nsdk_api.API_VERSION == nsdk_api.__api_version__ == spec["info"]["version"]


def test_import_reads_no_metadata() -> None:
    """No package metadata is read, by ``import nsdk`` or the first client (a constant is).

    The User-Agent is built by the first client, not at import.
    """
    code = (
        "import sys, nsdk, nsdk._config as c\n"
        "assert 'importlib.metadata' not in sys.modules, 'metadata read at import'\n"
        "assert c.default_user_agent.cache_info().currsize == 0\n"
        "nsdk.Client('http://127.0.0.1:9')\n"
        "assert c.default_user_agent.cache_info().currsize == 1\n"
        "assert 'importlib.metadata' not in sys.modules, 'metadata read by the client'\n"
        "print(c.default_user_agent())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected_user_agent()


def test_user_agent_at_the_server_sync(nsdk_server_factory: Callable[..., Any]) -> None:
    """Every request of a sync session (login, me, refresh, logout) carries nsdk's User-Agent."""
    server = nsdk_server_factory()
    with nsdk.Client(server.base_url) as client:
        client.login(email=EMAIL, password=PASSWORD)  # login, then me to verify the session
        server.faults.add("me", status=401)  # the next me: 401, refresh, resend
        client.me()
        client.logout()
    stats = server.stats()
    assert stats["requests"] == {"login": 1, "refresh": 1, "me": 3, "logout": 1}
    assert stats["user_agents"] == {expected_user_agent(): 6}


async def test_user_agent_at_the_server_async(nsdk_server_factory: Callable[..., Any]) -> None:
    """The async client and its generated layer (``client.api``) send the same User-Agent."""
    from nsdk_api.api.auth import me

    server = nsdk_server_factory()
    async with nsdk.AsyncClient(server.base_url) as client:
        await client.login(email=EMAIL, password=PASSWORD)
        assert (await me.asyncio(client=client.api)).email == EMAIL
        view = client.with_options(timeout=5.0)
        await view.me()
        await client.logout()
    stats = server.stats()
    assert stats["requests"] == {"login": 1, "refresh": 0, "me": 3, "logout": 1}
    assert stats["user_agents"] == {expected_user_agent(): 5}


@pytest.mark.parametrize("key", ["User-Agent", "user-agent"])
def test_user_agent_override(nsdk_server_factory: Callable[..., Any], key: str) -> None:
    """A User-Agent in ``headers`` (any spelling) replaces nsdk's: the server sees only it."""
    server = nsdk_server_factory()
    with nsdk.Client(server.base_url, headers={key: "acme-billing/4.2"}) as client:
        client.login(email=EMAIL, password=PASSWORD)
        client.me()
    assert server.stats()["user_agents"] == {"acme-billing/4.2": 3}  # login, me, me


def test_server_counts_requests_without_user_agent(nsdk_server_factory: Callable[..., Any]) -> None:
    """A request with no User-Agent is counted under "" (the server records what it got)."""
    server = nsdk_server_factory()
    with httpx.Client(base_url=server.base_url) as raw:
        request = raw.build_request("GET", "/api/auth/me")
        del request.headers["User-Agent"]
        assert raw.send(request).status_code == 401
    stats = server.stats()
    assert stats["user_agents"] == {"": 1}
    server.reset_stats()
    assert server.stats()["user_agents"] == {}
