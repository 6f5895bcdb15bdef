"""Exercises the public API as a user would; checked by ``mypy --strict`` (``nox -s typing``).

Not collected by pytest and never run: it only has to type-check. A change that breaks a user's
typed code breaks this file first.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import nsdk
from nsdk_api.api.auth import me as me_op
from nsdk_api.models import Me
from nsdk_api.types import Response


class FileStore:
    """A user-defined store: satisfies nsdk.TokenStore structurally."""

    def __init__(self) -> None:
        self.saved: nsdk.Tokens | None = None

    def load(self) -> nsdk.Tokens | None:
        return self.saved

    def save(self, tokens: nsdk.Tokens) -> None:
        self.saved = tokens

    def clear(self) -> None:
        self.saved = None


def on_refreshed(tokens: nsdk.Tokens) -> None:
    _: str = tokens.refresh_token


def on_expired(error: nsdk.SessionExpiredError) -> None:
    _: str = str(error)


def sync_usage(password: str) -> str:
    policy = nsdk.RetryPolicy(max_attempts=3, max_retry_after=5.0)
    store: nsdk.BasicTokenStore = FileStore()  # the 0.1 protocol is still accepted
    with nsdk.Client(
        base_url="https://api.example.com",
        retry=policy,
        token_store=store,
        on_tokens_refreshed=on_refreshed,
        on_session_expired=on_expired,
        timeout=httpx.Timeout(5.0),
    ) as client:
        session: nsdk.Session = client.login(email="user@example.com", password=password)
        me: Me = client.me()
        detailed: Response[Me] = me_op.sync_detailed(client=client.api)
        state: nsdk.SessionState = client.state
        try:
            client.me()
        except nsdk.RateLimitError as exc:
            wait: float | None = exc.retry_after
            del wait
        except nsdk.ServerError as exc:
            ids: tuple[str, ...] = exc.attempt_request_ids
            rid: str | None = exc.request_id
            del ids, rid
        except nsdk.APIError as exc:
            status: int = exc.status_code
            del status
        except nsdk.NsdkError:
            pass
        revoked: bool = client.logout()
        del revoked, state
        return session.tenant_id + me.email + detailed.parsed.user_id


def network_usage() -> None:
    context = ssl.create_default_context(cafile="/etc/ssl/private-ca.pem")
    with nsdk.Client(
        "https://api.example.com",
        proxy="http://user:password@proxy.example.com:3128",
        verify=context,
        cert=("client.crt", "client.key"),
        trust_env=False,
        limits=httpx.Limits(max_connections=10),
        http2=True,
    ) as client:
        try:
            client.me()
        except nsdk.ProxyError as exc:
            status: int = exc.status_code
            proxy: str | None = exc.proxy
            del status, proxy
        except nsdk.TLSVerificationError as exc:
            attempts: int = exc.attempts
            del attempts
        except nsdk.APIConnectionError as exc:
            answer: int | None = exc.proxy_status
            del answer
    nsdk.AsyncClient(
        "https://api.example.com",
        proxy=httpx.Proxy("http://proxy.example.com:3128"),
        verify="/etc/ssl/private-ca.pem",
        cert="client.pem",
    )


def surface_usage() -> str:
    version: str = nsdk.__version__
    with nsdk.Client("https://api.example.com") as client:
        url: httpx.URL = client.base_url
        tokens: nsdk.Tokens | None = client.tokens
        maybe: nsdk.Session | None = client.session
        fast: nsdk.Client = client.with_options(timeout=2.0, retry=nsdk.RetryPolicy.no_retries())
        slow: nsdk.Client = fast.with_options(timeout=httpx.Timeout(60.0, connect=5.0))
        parsed: Me = me_op.sync_detailed(client=slow.api).parsed
        del tokens, maybe
        return version + str(url) + fast.me().email + parsed.email


async def async_surface_usage() -> str:
    async with nsdk.AsyncClient("https://api.example.com") as client:
        view: nsdk.AsyncClient = client.with_options(retry=nsdk.RetryPolicy(max_attempts=2))
        tokens: nsdk.Tokens | None = view.tokens
        state: nsdk.SessionState = view.state
        me: Me = await view.me()
        await client.aclose()
        del tokens, state
        return str(view.base_url) + me.email


def shared_usage(path: Path) -> int:
    store: nsdk.TokenStore = nsdk.FileTokenStore(path, lock_timeout=5.0)
    memory: nsdk.TokenStore = nsdk.MemoryTokenStore()
    snapshot: nsdk.StoredSession = store.read()
    record: nsdk.RefreshInFlight | None = snapshot.refreshing
    del record, memory
    with nsdk.Client(
        base_url="https://api.example.com", token_store=store, refresh_reuse_interval=10.0
    ) as client:
        state: nsdk.SessionState = client.reload_session()
        del state
    try:
        with store.refresh_lock():
            pass
    except nsdk.TokenStoreBusyError as exc:
        where: str = exc.store
        del where
    return snapshot.generation


def fleet_usage() -> float:
    cipher: nsdk.TokenCipher = nsdk.AesGcmCipher(nsdk.AesGcmCipher.generate_key())
    store: nsdk.TokenStore = nsdk.RedisTokenStore(
        "redis://127.0.0.1:6379/0", key="myapp:session", lease_ttl=10.0, cipher=cipher
    )
    sealed_file = nsdk.FileTokenStore("/tmp/s.json", cipher=nsdk.AesGcmCipher.from_env())
    del sealed_file
    try:
        store.read()
    except nsdk.TokenStoreUnavailableError as exc:
        where: str = exc.store
        del where
    except nsdk.TokenStoreKeyError:
        pass
    return nsdk.RedisTokenStore("redis://127.0.0.1:6379/0").now()


async def async_usage(password: str) -> str:
    async with nsdk.AsyncClient(base_url="https://api.example.com") as client:
        session = await client.login(
            email="user@example.com", password=password, expected_tenant_id="2001"
        )
        me = await client.me()
        parsed: Me = (await me_op.asyncio_detailed(client=client.api)).parsed
        tokens: nsdk.Tokens = await client.refresh()
        await client.logout()
        return session.user_id + me.tenant_id + parsed.email + str(tokens.expires_at)


def main() -> None:
    asyncio.run(async_usage("pw"))
    sync_usage("pw")
