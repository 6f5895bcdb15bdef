"""The network settings of a client, as httpx users know them: checked, then made a ``Network``.

``proxy``, ``verify``, ``cert``, ``trust_env``, ``limits`` and ``http2`` become what httpx's own
``Client`` would build its transports from (the proxy map, one TLS context, the transport
options), which ``_transport.build_transports`` then builds and wraps in nsdk's retry.
"""

from __future__ import annotations

import os
import ssl
from typing import NotRequired, TypedDict, cast

import httpx

from ._errors import ConfigurationError, InsecureTransportError, display_url

#: A client certificate for mutual TLS, as httpx takes it: a PEM file holding the certificate
#: and its key, ``(certificate, key)`` or ``(certificate, key, key password)``.
CertTypes = str | tuple[str, str] | tuple[str, str, str]

#: A proxy: its URL (credentials in it, as ``http://user:password@host:port``) or an httpx.Proxy.
ProxyTypes = str | httpx.URL | httpx.Proxy


def describe_value(value: object) -> str:
    """A bad argument for a message: short plain values as they are, anything else by type."""
    simple = value is None or isinstance(value, bool | int | float)
    if simple or (isinstance(value, str) and len(value) <= 40):
        return repr(value)
    return type(value).__name__


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
            raise ConfigurationError(f"{name} must be True or False, got {describe_value(value)}")
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
            f"checks), got {describe_value(verify)}"
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
            f"for httpx's default, got {describe_value(limits)}"
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
    if http2 and _missing("h2"):
        raise ConfigurationError(
            "http2=True needs the h2 package: pip install 'nsdk[http2]' (or 'httpx[http2]')"
        )


def _missing(module: str) -> bool:
    """Whether an optional module (h2, socksio) is not installed, without importing it."""
    import importlib.util  # only for http2 or a SOCKS proxy: a plain client does not pay for it

    return importlib.util.find_spec(module) is None


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
    if proxy.url.scheme.startswith("socks") and _missing("socksio"):
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


__all__ = [
    "CertTypes",
    "Network",
    "ProxyTypes",
    "TransportOptions",
    "check_network",
    "describe_value",
    "environment_proxies",
]
