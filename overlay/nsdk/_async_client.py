"""``AsyncClient``: the asyncio twin of ``Client`` (same parts, awaited I/O).

Kept next to ``_client.py`` line for line: only the I/O calls differ. Everything that decides
lives in the shared parts (``_config``, ``_session``, ``_retry``).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import attrs
import httpx
from nsdk_api import Client as ApiClient
from nsdk_api.api.auth import login as _login
from nsdk_api.api.auth import logout as _logout
from nsdk_api.api.auth import me as _me
from nsdk_api.api.auth import refresh as _refresh
from nsdk_api.models import LoginRequest, Me, RefreshRequest

from ._auth import AsyncBearerAuth, OtherFlavourTransport
from ._base import Boundary, ClientBase, logger
from ._config import ClientConfig
from ._errors import NsdkError, ScopeMismatchError, SessionExpiredError
from ._network import CertTypes, ProxyTypes
from ._retry import RetryPolicy
from ._session import Session, SessionState
from ._stores import BasicTokenStore, TokenStore
from ._tokens import Tokens
from ._transport import AsyncRetryTransport, Transports, build_transports


async def _asyncio_sleep(seconds: float) -> None:
    # asyncio is imported on first use, not with nsdk: `import nsdk` stays free of it.
    import asyncio

    await asyncio.sleep(seconds)


class AsyncClient(ClientBase):
    """An asyncio NSDK API client with a session: login, me, logout, automatic refresh.

    Args:
        base_url: The API's base URL; defaults to ``$NSDK_API_BASE_URL``. ``http://`` is refused
            for non-loopback hosts unless ``allow_insecure_http=True``.
        retry: The retry policy for 429, 5xx and connection failures.
        token_store: Where the session lives (default: this client's memory). Clients sharing a
            store share one session and one refresh per expiry: ``MemoryTokenStore`` for
            threads and tasks, ``FileTokenStore`` for processes of one host.
        on_tokens_refreshed: Called with the new ``Tokens`` after each rotation this client
            performs (automatic or ``refresh()``); not after ``login`` (read ``tokens``), nor
            when it adopts a pair another client sharing the store rotated.
        on_session_expired: Called with the ``SessionExpiredError`` when the session fails closed.
        timeout: httpx timeout per attempt (default: 10 s, 5 s to connect).
        refresh_leeway: Refresh a JWT access token this many seconds before its ``exp``
            (capped at half its lifetime).
        refresh_reuse_interval: The server's refresh-token reuse interval in seconds (0: it has
            none). Above 0, a refresh whose answer was lost (or whose process died) is presented
            again within it; at 0 such a session fails closed with ``SessionExpiredError``.
        allow_insecure_http: Allow ``http://`` to non-loopback hosts.
        follow_redirects: Follow redirects (off by default).
        headers: Extra headers for every request (not ``Authorization``). A ``User-Agent``
            here replaces nsdk's, which names nsdk's version, the API version, Python's and
            httpx's: ``nsdk/0.1.0 (nsdk-api 1.0.0; python 3.11.7; httpx 0.28.1)``.
        transport: The httpx transport to send through (default: httpx's connection pool,
            built from the network settings below, which it excludes).
        proxy: The proxy for every request (``http://user:password@host:port``; credentials
            are never printed). Default: ``HTTPS_PROXY`` and the other proxy variables, as
            httpx reads them (``NO_PROXY`` included), unless ``trust_env=False``.
        verify: Check the server's certificate: True (the default CAs, or ``SSL_CERT_FILE`` /
            ``SSL_CERT_DIR``), a CA bundle path (a private CA), or an ``ssl.SSLContext``.
            False only with ``allow_insecure_http=True``.
        cert: A client certificate for mutual TLS: a PEM file with the certificate and key,
            or ``(certificate, key)`` or ``(certificate, key, password)``.
        trust_env: Read the proxy and ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` variables, as httpx.
        limits: The connection pool's ``httpx.Limits`` (default: httpx's).
        http2: Use HTTP/2 where the server offers it (``pip install 'nsdk[http2]'``).
        clock: Returns the current Unix time (injectable for tests).
        sleep: Awaitable sleep between retries (injectable for tests).
        random: Returns a float in [0, 1) for backoff jitter (injectable for tests).

    Examples:
        >>> async with nsdk.AsyncClient(base_url=url) as client:  # doctest: +SKIP
        ...     session = await client.login(email="user@example.com", password=password)
        ...     me = await client.me()
        ...     await client.logout()
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        token_store: TokenStore | BasicTokenStore | None = None,
        on_tokens_refreshed: Callable[[Tokens], None] | None = None,
        on_session_expired: Callable[[SessionExpiredError], None] | None = None,
        timeout: httpx.Timeout | float | None = None,
        refresh_leeway: float = 30.0,
        refresh_reuse_interval: float = 0.0,
        allow_insecure_http: bool = False,
        follow_redirects: bool = False,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        proxy: ProxyTypes | None = None,
        verify: ssl.SSLContext | str | bool = True,
        cert: CertTypes | None = None,
        trust_env: bool = True,
        limits: httpx.Limits | None = None,
        http2: bool = False,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self._config = ClientConfig(
            base_url=base_url,
            retry=retry,
            token_store=token_store,
            on_tokens_refreshed=on_tokens_refreshed,
            on_session_expired=on_session_expired,
            timeout=timeout,
            refresh_leeway=refresh_leeway,
            refresh_reuse_interval=refresh_reuse_interval,
            allow_insecure_http=allow_insecure_http,
            follow_redirects=follow_redirects,
            headers=headers,
            clock=clock,
            random=random,
            proxy=proxy,
            verify=verify,
            cert=cert,
            trust_env=trust_env,
            limits=limits,
            http2=http2,
            transport_given=transport is not None,
        )
        cfg = self._config
        self._api = cfg.api_client()
        pause = sleep or _asyncio_sleep

        def wrap(inner: httpx.AsyncBaseTransport, proxy: str | None) -> AsyncRetryTransport:
            return AsyncRetryTransport(
                inner,
                cfg.retry,
                sleep=pause,
                clock=cfg.clock,
                random=cfg.random,
                before_resend=cfg.resign,
                proxy=proxy,
            )

        # Every transport httpx would build (direct, and one per proxy) is wrapped: proxied or
        # not, each request is retried and signed the same way.
        self._transports: Transports[AsyncRetryTransport] = build_transports(
            cfg.network, transport, httpx.AsyncHTTPTransport, wrap
        )
        self._auth = AsyncBearerAuth(cfg.core, cfg.base_url, cfg.store, self._refresh_call)
        self._api.set_async_httpx_client(
            httpx.AsyncClient(
                transport=self._transports.direct,
                mounts=self._transports.mounts,
                auth=self._auth,
                **cfg.httpx_options(),
            )
        )
        # Its sync calls would otherwise get a plain httpx client: no token, refresh or retry.
        refuse = OtherFlavourTransport(type(self), is_async=True)
        self._api.set_httpx_client(
            httpx.Client(transport=refuse, trust_env=False, **cfg.httpx_options())
        )

    def _view_api(self, config: ClientConfig) -> ApiClient:
        # A with_options view: as Client._view_api, with the async httpx client.
        views = self._transports.map(lambda shared: shared.with_policy(config.retry))
        api = attrs.evolve(self._api, timeout=config.timeout)
        api.set_httpx_client(self._api.get_httpx_client())  # the other flavour's, as the client's
        return api.set_async_httpx_client(
            httpx.AsyncClient(
                transport=views.direct,
                mounts=views.mounts,
                auth=self._auth,
                **config.httpx_options(),
            )
        )

    async def _refresh_call(self, refresh_token: str) -> Tokens:
        pair = await _refresh.asyncio(
            client=self._api, body=RefreshRequest(refresh_token=refresh_token)
        )
        return Tokens(access_token=pair.access_token, refresh_token=pair.refresh_token)

    async def login(
        self, *, email: str, password: str, expected_tenant_id: str | None = None
    ) -> Session:
        """Sign in, keep the tokens, and verify user and tenant with ``me``.

        Raises:
            BadRequestError: The payload was refused (e.g. an empty email).
            AuthenticationError: Wrong email or password.
            ScopeMismatchError: ``me`` disagrees with the login or ``expected_tenant_id``;
                the session was cleared.
        """
        self._config.ensure_open()
        with Boundary("login"):
            result = await _login.asyncio(
                client=self._api, body=LoginRequest(email=email, password=password)
            )
            del password  # not kept beyond the request; the auth flow signed in with the pair
            me = await _me.asyncio(client=self._api)
        verified = self._config.verify_session(result, me, expected_tenant_id)
        if isinstance(verified, ScopeMismatchError):
            await self._auth.sign_out()
            raise verified
        return verified

    async def me(self) -> Me:
        """Return the signed-in user and tenant (refreshing the token if needed)."""
        self._config.ensure_open()
        with Boundary("me"):
            return await _me.asyncio(client=self._api)

    async def refresh(self) -> Tokens:
        """Rotate the tokens now (normally automatic). Fails closed like an automatic refresh."""
        self._config.ensure_open()
        core = self._config.core
        with Boundary("refresh"):
            await self._auth.refresh(core.current().access_token)
        return core.current()

    async def reload_session(self) -> SessionState:
        """Adopt what the token store holds now, when told the session changed elsewhere.

        Not needed for correctness (a client re-reads the store before every refresh and after a
        401); useful to pick up a login or logout made by another process at once.

        Raises:
            SessionExpiredError: The store says another client's refresh was refused.
            NotAuthenticatedError: The store holds no session (another client signed out).
        """
        self._config.ensure_open()
        await self._auth.reload()
        return self._config.core.state

    async def logout(self) -> bool:
        """Sign out: revoke the session on the server and always clear local state.

        Returns:
            True if the server confirmed the revocation, False if it could not (the error is
            logged with its request_id); local state is cleared either way.
        """
        core = self._config.core
        if core.state is not SessionState.ACTIVE and core.state is not SessionState.CLOSED:
            await self._auth.reload(quiet=True)  # a peer sharing the store may be signed in
        if core.state is not SessionState.ACTIVE:
            core.signed_out()
            return False
        confirmed = False
        try:
            with Boundary("logout"):
                await _logout.asyncio(client=self._api)  # on its 2xx the auth flow signs out
            confirmed = True
            return True
        except NsdkError as exc:
            logger.warning("logout: the server did not confirm the revocation: %s", exc)
            return False
        finally:
            if not confirmed:  # cleared all the same (a new generation: see sign_out_steps)
                await self._auth.sign_out()

    async def aclose(self) -> None:
        """Close connections. Tokens stay in the token store."""
        self._config.core.closed()
        await self._api.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = ["AsyncClient"]
