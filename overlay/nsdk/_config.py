"""Client configuration shared by ``Client`` and ``AsyncClient``: validation and wiring.

Everything that does not depend on sync versus async lives here, once: the checks of every
constructor argument (``ConfigurationError`` naming the argument and what it accepts; the base
URL's ``InsecureTransportError``), the session core, the error translation hook and the
generated client's settings. (``transport`` and ``sleep`` differ between the two clients: the
retry transports check them.) The network settings are checked and turned into a ``Network`` in
``_network.py``.
"""

from __future__ import annotations

import ipaddress
import math
import os
import random as _random
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from functools import cache
from typing import TypedDict, cast

import httpx
from nsdk_api import API_VERSION
from nsdk_api import Client as ApiClient
from nsdk_api.errors import ApiResponseError
from nsdk_api.models import LoginResponse, Me

from ._errors import (
    ClientClosedError,
    ConfigurationError,
    InsecureTransportError,
    NsdkError,
    ScopeMismatchError,
    SessionExpiredError,
    from_generated,
)
from ._network import CertTypes, Network, ProxyTypes, check_network, describe_value
from ._retry import RetryPolicy
from ._session import Session, SessionCore, SessionState, resign
from ._stores import BasicTokenStore, MemoryTokenStore, TokenStore, as_token_store
from ._tokens import Tokens

BASE_URL_ENV = "NSDK_API_BASE_URL"
"""The environment variable a client reads its base URL from when no ``base_url`` is given.

Examples:
    >>> import nsdk
    >>> nsdk.BASE_URL_ENV
    'NSDK_API_BASE_URL'
    >>> os.environ[nsdk.BASE_URL_ENV] = "https://api.example.com"  # doctest: +SKIP
    >>> client = nsdk.Client()  # doctest: +SKIP
"""

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@cache
def default_user_agent() -> str:
    """The ``User-Agent`` every request carries unless ``headers`` sets one.

    It names nsdk's version, the API version the generated layer was built from (openapi.yaml's
    ``info.version``), Python's and httpx's, e.g.
    ``nsdk/0.1.0 (nsdk-api 1.0.0; python 3.11.7; httpx 0.28.1)``. Computed at the first client's
    construction, then cached.
    """
    from ._version import __version__ as version

    python = ".".join(str(part) for part in sys.version_info[:3])
    return f"nsdk/{version} (nsdk-api {API_VERSION}; python {python}; httpx {httpx.__version__})"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_base_url(base_url: str | None, allow_insecure_http: bool) -> httpx.URL:
    """Return the validated base URL (argument, else ``$NSDK_API_BASE_URL``).

    Raises:
        ConfigurationError: No base URL, or not an absolute http(s) URL.
        InsecureTransportError: ``http://`` to a non-loopback host without the explicit opt-in.
    """
    raw = base_url if base_url is not None else os.environ.get(BASE_URL_ENV)
    if not raw:
        raise ConfigurationError(f"no base_url: pass base_url=... or set ${BASE_URL_ENV}")
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"base_url is not a valid URL: {exc}") from None
    if url.userinfo:  # checked first: the message below echoes the URL
        raise ConfigurationError("base_url must not carry credentials (user:password@)")
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url must be an absolute http(s) URL, got {raw!r}")
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        raise InsecureTransportError(
            f"refusing http:// to {url.host}: tokens would travel in clear text. Use https://, "
            "or pass allow_insecure_http=True if this network is trusted"
        )
    return url


def _seconds(value: object, *, above_zero: bool = False) -> bool:
    """Whether ``value`` is a finite number of seconds >= 0 (> 0 with ``above_zero``)."""
    # bool is an int to Python, never a duration to us; NaN and infinities are refused too.
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return value > 0 if above_zero else value >= 0


def check_arguments(
    *,
    base_url: object,
    retry: object,
    timeout: object,
    refresh_leeway: object,
    refresh_reuse_interval: object,
    allow_insecure_http: object,
    follow_redirects: object,
    headers: object,
    callables: Mapping[str, tuple[object, str]],
) -> None:
    """Refuse a wrong constructor argument with a ConfigurationError naming what it accepts.

    Checked at run time for callers without a type checker: a wrong value would otherwise fail
    later, at the first request, as a raw ``TypeError`` from deep inside httpx (or never).

    Args:
        base_url: Checked for its type here; its content by ``resolve_base_url``.
        retry: An ``nsdk.RetryPolicy`` or None.
        timeout: A number of seconds > 0, an ``httpx.Timeout``, or None.
        refresh_leeway: A number of seconds >= 0.
        refresh_reuse_interval: A number of seconds >= 0.
        allow_insecure_http: True or False.
        follow_redirects: True or False.
        headers: A mapping of str to str, or None.
        callables: ``name -> (value, what it should be like)`` for the optional callables.

    Raises:
        ConfigurationError: The first wrong argument, named with the values it accepts.
    """
    if base_url is not None and not isinstance(base_url, str | httpx.URL):
        raise ConfigurationError(
            f"base_url must be a str such as 'https://api.example.com', or None to read "
            f"${BASE_URL_ENV}, got {describe_value(base_url)}"
        )
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(
            "retry must be an nsdk.RetryPolicy, or None for the default, got "
            f"{describe_value(retry)}"
        )
    if not (
        timeout is None or isinstance(timeout, httpx.Timeout) or _seconds(timeout, above_zero=True)
    ):
        raise ConfigurationError(
            "timeout must be a number of seconds > 0, an httpx.Timeout, or None (the "
            f"default: 10 s, 5 s to connect), got {describe_value(timeout)}"
        )
    for name, value in (
        ("refresh_leeway", refresh_leeway),
        ("refresh_reuse_interval", refresh_reuse_interval),
    ):
        if not _seconds(value):
            hint = " (0: the server has no reuse interval)" if name != "refresh_leeway" else ""
            raise ConfigurationError(
                f"{name} must be a number of seconds >= 0{hint}, got {describe_value(value)}"
            )
    for name, value in (
        ("allow_insecure_http", allow_insecure_http),
        ("follow_redirects", follow_redirects),
    ):
        if not isinstance(value, bool):
            raise ConfigurationError(f"{name} must be True or False, got {describe_value(value)}")
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise ConfigurationError(
                f"headers must be a dict of str to str, or None, got {describe_value(headers)}"
            )
        for key, value in cast("Mapping[object, object]", headers).items():
            if not isinstance(key, str):
                raise ConfigurationError(
                    f"headers must be a dict of str to str; a key is of type {type(key).__name__}"
                )
            if not isinstance(value, str):  # the value is not shown: it may be a secret
                raise ConfigurationError(
                    f"headers must be a dict of str to str; the value of {key!r} is of type "
                    f"{type(value).__name__}"
                )
    for name, (value, like) in callables.items():
        if value is not None and not callable(value):
            raise ConfigurationError(
                f"{name} must be a callable {like}, or None, got {describe_value(value)}"
            )


class HttpxOptions(TypedDict):
    """Keyword arguments shared by the sync and async httpx clients."""

    base_url: httpx.URL
    headers: dict[str, str]
    timeout: httpx.Timeout | float
    follow_redirects: bool


class ClientConfig:
    """The parts of a client that are the same for sync and async."""

    def __init__(
        self,
        *,
        base_url: str | None,
        retry: RetryPolicy | None,
        token_store: TokenStore | BasicTokenStore | None,
        on_tokens_refreshed: Callable[[Tokens], None] | None,
        on_session_expired: Callable[[SessionExpiredError], None] | None,
        timeout: httpx.Timeout | float | None,
        refresh_leeway: float,
        refresh_reuse_interval: float,
        allow_insecure_http: bool,
        follow_redirects: bool,
        headers: dict[str, str] | None,
        clock: Callable[[], float] | None,
        random: Callable[[], float] | None,
        proxy: ProxyTypes | None = None,
        verify: ssl.SSLContext | str | bool = True,
        cert: CertTypes | None = None,
        trust_env: bool = True,
        limits: httpx.Limits | None = None,
        http2: bool = False,
        transport_given: bool = False,
    ) -> None:
        check_arguments(
            base_url=base_url,
            retry=retry,
            timeout=timeout,
            refresh_leeway=refresh_leeway,
            refresh_reuse_interval=refresh_reuse_interval,
            allow_insecure_http=allow_insecure_http,
            follow_redirects=follow_redirects,
            headers=headers,
            callables={
                "clock": (clock, "returning the current Unix time (like time.time)"),
                "random": (random, "returning a float in [0, 1) (like random.random)"),
                "on_tokens_refreshed": (on_tokens_refreshed, "taking the new nsdk.Tokens"),
                "on_session_expired": (on_session_expired, "taking the SessionExpiredError"),
            },
        )
        check_network(
            proxy=proxy,
            verify=verify,
            cert=cert,
            trust_env=trust_env,
            limits=limits,
            http2=http2,
            allow_insecure_http=allow_insecure_http,
            transport_given=transport_given,
        )
        self.base_url = resolve_base_url(base_url, allow_insecure_http)
        #: None when the caller gave a transport: it is used as given (as httpx does).
        self.network = (
            None
            if transport_given
            else Network(
                proxy=proxy,
                verify=verify,
                cert=cert,
                trust_env=trust_env,
                limits=limits,
                http2=http2,
            )
        )
        self.retry = retry if retry is not None else RetryPolicy()
        self.clock = clock if clock is not None else time.time
        self.random = random if random is not None else _random.random
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.follow_redirects = follow_redirects
        self.headers = dict(headers or {})
        if any(k.lower() == "authorization" for k in self.headers):
            raise ConfigurationError("do not set Authorization in headers: nsdk manages the token")
        if not any(k.lower() == "user-agent" for k in self.headers):  # the caller's one wins
            self.headers = {"User-Agent": default_user_agent(), **self.headers}
        self.store: TokenStore = (
            MemoryTokenStore() if token_store is None else as_token_store(token_store)
        )
        from ._auth import store_now, store_read  # the checked calls the shells use

        self.core = SessionCore(
            stored=store_read(self.store),
            clock=self.clock,
            refresh_leeway=refresh_leeway,
            refresh_reuse_interval=refresh_reuse_interval,
            refresh_deadline=_refresh_budget(self.timeout, self.retry),
            on_tokens_refreshed=on_tokens_refreshed,
            on_session_expired=on_session_expired,
        )
        self.core.observe_store_clock(store_now(self.store))

    def ensure_open(self) -> None:
        """Raise ClientClosedError if the client was closed (before httpx can raise its own)."""
        if self.core.state is SessionState.CLOSED:
            raise ClientClosedError("the client is closed: create a new client")

    def error_hook(self, error: ApiResponseError) -> NsdkError:
        """Translate generated-layer errors (the generated Client's ``error_hook``)."""
        return from_generated(error, self.clock())

    def api_client(self) -> ApiClient:
        """The generated-layer client with our settings (its httpx client is set by the shell)."""
        return ApiClient(
            base_url=str(self.base_url),
            headers=self.headers,
            timeout=self.timeout,
            follow_redirects=self.follow_redirects,
            error_hook=self.error_hook,
        )

    def httpx_options(self) -> HttpxOptions:
        """The settings of the httpx client each shell builds (besides transport and auth)."""
        return HttpxOptions(
            base_url=self.base_url,
            headers=self.headers,
            timeout=self.timeout,
            follow_redirects=self.follow_redirects,
        )

    def resign(self, request: httpx.Request) -> None:
        """Before a resend: the request carries the current token (the transports' hook)."""
        resign(self.core, request, self.base_url)

    def verify_session(
        self, result: LoginResponse, me: Me, expected_tenant_id: str | None
    ) -> Session | ScopeMismatchError:
        """Finish login: the verified Session, or the error to raise after signing out."""
        problem = check_scope(result, me, expected_tenant_id)
        if problem is not None:
            return ScopeMismatchError(f"{problem}; the session was cleared")
        session = Session(user_id=me.user_id, tenant_id=me.tenant_id, email=me.email)
        self.core.verified(session)
        return session


def _refresh_budget(timeout: httpx.Timeout | float, retry: RetryPolicy) -> float:
    """How long one refresh can take at most (the in-flight record's deadline), in seconds."""
    t = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
    parts = [t.connect, t.write, t.read, t.pool]
    per_attempt = sum(p if p is not None else 60.0 for p in parts)
    waits = max(retry.max_backoff, retry.max_retry_after) * (retry.max_attempts - 1)
    return per_attempt * retry.max_attempts + waits


def check_scope(login: LoginResponse, me: Me, expected_tenant_id: str | None) -> str | None:
    """Why ``me`` does not confirm the login's scope, or None when it does."""
    if me.user_id != login.user_id:
        return f"me() returned user {me.user_id!r}, login returned {login.user_id!r}"
    if me.tenant_id != login.tenant_id:
        return f"me() returned tenant {me.tenant_id!r}, login returned {login.tenant_id!r}"
    if expected_tenant_id is not None and me.tenant_id != expected_tenant_id:
        return f"the session is for tenant {me.tenant_id!r}, expected {expected_tenant_id!r}"
    return None


__all__ = [
    "BASE_URL_ENV",
    "ClientConfig",
    "HttpxOptions",
    "check_arguments",
    "check_scope",
    "default_user_agent",
    "resolve_base_url",
]
