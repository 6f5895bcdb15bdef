"""Client configuration shared by ``Client`` and ``AsyncClient``: validation and wiring.

Everything that does not depend on sync versus async lives here, once: the checks of every
constructor argument (``ConfigurationError`` naming the argument and what it accepts; the base
URL's ``InsecureTransportError``), the session core, the error translation hook and the
generated client's settings. (``transport`` and ``sleep`` differ between the two clients: the
retry transports check them.) The network settings (``proxy``, ``verify``, ``cert``,
``trust_env``, ``limits``, ``http2``) become a ``Network``: what httpx's own ``Client`` would
build its transports from, which ``_transport.build_transports`` then builds and wraps.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import random as _random
import ssl
import time
from collections.abc import Callable, Mapping
from typing import NotRequired, TypedDict, cast

import httpx
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
    display_url,
    from_generated,
)
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

#: A client certificate for mutual TLS, as httpx takes it: a PEM file holding the certificate
#: and its key, ``(certificate, key)`` or ``(certificate, key, key password)``.
CertTypes = str | tuple[str, str] | tuple[str, str, str]

#: A proxy: its URL (credentials in it, as ``http://user:password@host:port``) or an httpx.Proxy.
ProxyTypes = str | httpx.URL | httpx.Proxy


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


def _got(value: object) -> str:
    """A bad argument for a message: short plain values as they are, anything else by type."""
    simple = value is None or isinstance(value, bool | int | float)
    if simple or (isinstance(value, str) and len(value) <= 40):
        return repr(value)
    return type(value).__name__


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
            f"${BASE_URL_ENV}, got {_got(base_url)}"
        )
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(
            f"retry must be an nsdk.RetryPolicy, or None for the default, got {_got(retry)}"
        )
    if not (
        timeout is None or isinstance(timeout, httpx.Timeout) or _seconds(timeout, above_zero=True)
    ):
        raise ConfigurationError(
            "timeout must be a number of seconds > 0, an httpx.Timeout, or None (the "
            f"default: 10 s, 5 s to connect), got {_got(timeout)}"
        )
    for name, value in (
        ("refresh_leeway", refresh_leeway),
        ("refresh_reuse_interval", refresh_reuse_interval),
    ):
        if not _seconds(value):
            hint = " (0: the server has no reuse interval)" if name != "refresh_leeway" else ""
            raise ConfigurationError(
                f"{name} must be a number of seconds >= 0{hint}, got {_got(value)}"
            )
    for name, value in (
        ("allow_insecure_http", allow_insecure_http),
        ("follow_redirects", follow_redirects),
    ):
        if not isinstance(value, bool):
            raise ConfigurationError(f"{name} must be True or False, got {_got(value)}")
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise ConfigurationError(
                f"headers must be a dict of str to str, or None, got {_got(headers)}"
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
                f"{name} must be a callable {like}, or None, got {_got(value)}"
            )


_NETWORK_DEFAULTS = "proxy, verify, cert, limits and http2"


def check_network(
    *,
    proxy: object,
    verify: object,
    cert: object,
    trust_env: object,
    limits: object,
    http2: object,
    allow_insecure_http: bool,
    transport_given: bool,
) -> None:
    """Refuse a wrong network argument with a ConfigurationError naming what it accepts.

    Raises:
        ConfigurationError: The first wrong argument; or one of them with ``transport=``, whose
            own settings they would silently not change.
        InsecureTransportError: ``verify=False`` without ``allow_insecure_http=True``.
    """
    for name, value in (("trust_env", trust_env), ("http2", http2)):
        if not isinstance(value, bool):
            raise ConfigurationError(f"{name} must be True or False, got {_got(value)}")
    if proxy is not None and not isinstance(proxy, str | httpx.URL | httpx.Proxy):
        raise ConfigurationError(
            "proxy must be a URL such as 'http://proxy.example.com:3128' (a str or httpx.URL), "
            "an httpx.Proxy, or None (then HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY "
            f"apply unless trust_env=False), got {type(proxy).__name__}"
        )
    if not isinstance(verify, bool | str | ssl.SSLContext):
        raise ConfigurationError(
            "verify must be True (the default CAs, or SSL_CERT_FILE / SSL_CERT_DIR), the path "
            "of a CA bundle (PEM) or directory, an ssl.SSLContext, or False (no certificate "
            f"checks), got {_got(verify)}"
        )
    if not _is_cert(cert):
        raise ConfigurationError(  # the value is not shown: a tuple may hold the key's password
            "cert must be the path of a PEM file with the client certificate and its key, a "
            "tuple (certificate path, key path) or (certificate path, key path, key password), "
            f"or None, got a {type(cert).__name__}"
        )
    if limits is not None and not isinstance(limits, httpx.Limits):
        raise ConfigurationError(
            "limits must be an httpx.Limits (e.g. httpx.Limits(max_connections=50)), or None "
            f"for httpx's default, got {_got(limits)}"
        )
    if transport_given:
        settings: tuple[tuple[str, object, object], ...] = (
            ("proxy", proxy, None),
            ("verify", verify, True),
            ("cert", cert, None),
            ("limits", limits, None),
            ("http2", http2, False),
        )
        given = [name for name, value, default in settings if value is not default]
        if given:
            raise ConfigurationError(
                f"{_NETWORK_DEFAULTS} configure the transport nsdk builds; with transport= "
                f"configure that transport instead (e.g. httpx.HTTPTransport(verify=..., "
                f"proxy=...)), got transport= with {', '.join(n + '=' for n in given)}"
            )
        return
    if verify is False and not allow_insecure_http:
        raise InsecureTransportError(
            "refusing verify=False: without certificate checks anyone on the path can read the "
            "tokens. For a private CA pass verify=<CA bundle path> or an ssl.SSLContext (or set "
            "SSL_CERT_FILE); or pass allow_insecure_http=True if this network is trusted"
        )
    if http2 and importlib.util.find_spec("h2") is None:
        raise ConfigurationError(
            "http2=True needs the h2 package: pip install 'nsdk[http2]' (or 'httpx[http2]')"
        )


def _is_cert(value: object) -> bool:
    """Whether ``value`` is None, a path, or a tuple of 2 or 3 str (``CertTypes``)."""
    if value is None or isinstance(value, str):
        return True
    parts = cast("tuple[object, ...]", value) if isinstance(value, tuple) else ()
    return len(parts) in (2, 3) and all(isinstance(part, str) for part in parts)


def environment_proxies() -> dict[str, str | None]:
    """The proxies httpx reads from the environment: URL pattern to proxy URL (None: direct).

    HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (and their lower-case forms) behave exactly
    as in httpx because this is httpx's own reading of them. It is a private httpx helper, the
    only one nsdk uses, isolated here: ``tests/overlay/test_network.py`` breaks loudly if httpx
    renames or changes it.
    """
    from httpx._utils import get_environment_proxies  # pyright: ignore[reportPrivateUsage]

    return get_environment_proxies()


def _proxy(value: ProxyTypes, origin: str) -> httpx.Proxy:
    """An httpx.Proxy for ``value``; ConfigurationError (never echoing credentials) if unusable."""
    if isinstance(value, httpx.Proxy):
        proxy = value
    else:
        try:
            proxy = httpx.Proxy(url=value)
        except (ValueError, httpx.InvalidURL) as exc:
            reason = "" if isinstance(exc, httpx.InvalidURL) else " (unknown scheme)"
            raise ConfigurationError(
                f"{origin}: the proxy URL is not usable{reason}; it must look like "
                "http://host:port, https://, socks5:// or socks5h://, with any credentials as "
                "user:password@host"
            ) from None
    if proxy.url.scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
        raise ConfigurationError(
            f"{origin}: the proxy {display_url(proxy.url)} is a SOCKS proxy, which needs the "
            "socksio package: pip install 'httpx[socks]'"
        )
    return proxy


def _ssl_context(
    verify: ssl.SSLContext | str | bool, cert: CertTypes | None, trust_env: bool
) -> ssl.SSLContext:
    """The TLS context httpx would build, without its deprecated ``verify=<str>`` / ``cert=``."""
    where = f"verify={verify!r}" if isinstance(verify, str) else "SSL_CERT_FILE / SSL_CERT_DIR"
    try:
        if isinstance(verify, str):
            ctx = (
                ssl.create_default_context(capath=verify)
                if os.path.isdir(verify)
                else ssl.create_default_context(cafile=verify)
            )
        else:  # True reads SSL_CERT_FILE / SSL_CERT_DIR when trust_env, as in httpx
            ctx = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
    except OSError as exc:  # ssl.SSLError is an OSError too
        raise ConfigurationError(
            f"{where}: cannot load CA certificates ({exc.strerror or exc}); give a PEM file of "
            "CA certificates, or a directory prepared with `openssl rehash`"
        ) from None
    if cert is not None:
        files = (cert,) if isinstance(cert, str) else cert
        try:
            ctx.load_cert_chain(*files)
        except OSError as exc:  # the password (files[2]) is never named
            names = " and ".join(repr(f) for f in files[:2])
            raise ConfigurationError(
                f"cert: cannot load the client certificate from {names} ({exc.strerror or exc}); "
                "give PEM files of the certificate and its key (and the key's password)"
            ) from None
    return ctx


class TransportOptions(TypedDict):
    """Keyword arguments of every httpx transport a client builds (direct and proxies)."""

    verify: ssl.SSLContext
    trust_env: bool
    http2: bool
    limits: NotRequired[httpx.Limits]  # absent: httpx's default


class Network:
    """What the transports are built from when no ``transport=`` is given, as httpx would.

    ``proxies`` is httpx's proxy map: URL pattern (``"https://"``, ``"all://*example.com"``) to
    the proxy for it, None for a pattern that goes direct (``NO_PROXY``). One TLS context serves
    the direct transport and every proxy's (httpx builds the same one for each).
    """

    def __init__(
        self,
        *,
        proxy: ProxyTypes | None,
        verify: ssl.SSLContext | str | bool,
        cert: CertTypes | None,
        trust_env: bool,
        limits: httpx.Limits | None,
        http2: bool,
    ) -> None:
        if proxy is not None:
            self.proxies: dict[str, httpx.Proxy | None] = {"all://": _proxy(proxy, "proxy=")}
        elif trust_env:
            self.proxies = {
                pattern: None if url is None else _proxy(url, "the proxy environment variables")
                for pattern, url in environment_proxies().items()
            }
        else:
            self.proxies = {}
        self.options = TransportOptions(
            verify=_ssl_context(verify, cert, trust_env), trust_env=trust_env, http2=http2
        )
        if limits is not None:
            self.options["limits"] = limits


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
    "CertTypes",
    "ClientConfig",
    "HttpxOptions",
    "Network",
    "ProxyTypes",
    "TransportOptions",
    "check_arguments",
    "check_network",
    "check_scope",
    "environment_proxies",
    "resolve_base_url",
]
