"""nsdk: the Python SDK for the NSDK authentication API.

Sign in, call protected APIs with a bearer token that rotates itself, and fail closed when the
session cannot be refreshed. ``Client`` is synchronous, ``AsyncClient`` its asyncio twin; both
expose the generated layer as ``client.api`` with the same behaviour. ``nsdk.__version__`` is
the package's version (pyproject.toml's, written into ``nsdk._version`` at build time, so reading
it needs no ``importlib.metadata``). Every name but the exceptions is imported when first used:
``import nsdk`` alone loads neither httpx nor the clients, and a program that never touches
``AsyncClient`` or ``RedisTokenStore`` never imports them.

Examples:
    >>> import nsdk
    >>> with nsdk.Client(base_url="https://api.example.com") as client:  # doctest: +SKIP
    ...     session = client.login(email="user@example.com", password=password)
    ...     print(session.tenant_id, client.me().email)
    ...     client.logout()
"""

from typing import TYPE_CHECKING

from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    InsecureTransportError,
    MalformedResponseError,
    NotAuthenticatedError,
    NotFoundError,
    NsdkError,
    PermissionDeniedError,
    ProxyError,
    RateLimitError,
    RetryableError,
    ScopeMismatchError,
    ServerError,
    SessionError,
    SessionExpiredError,
    TLSVerificationError,
    TokenStoreBusyError,
    TokenStoreCorruptError,
    TokenStoreError,
    TokenStoreKeyError,
    TokenStorePermissionError,
    TokenStoreUnavailableError,
)
from ._version import __version__ as __version__

# Everything else is imported on first access (PEP 562), so ``import nsdk`` costs the exception
# tree only: no httpx, attrs or generated layer until a program touches a client, a store or a
# value class, and a program that never builds an AsyncClient or a Redis store never imports them.
# Type checkers read the imports below instead; they see no module __getattr__, so a misspelt
# nsdk.<name> stays an error for them as it does at run time.
_LAZY: dict[str, str] = {
    "AsyncClient": "_async_client",
    "AesGcmCipher": "_cipher",
    "TokenCipher": "_cipher",
    "Client": "_client",
    "BASE_URL_ENV": "_config",
    "FileTokenStore": "_file_store",
    "RedisTokenStore": "_redis_store",
    "RetryPolicy": "_retry",
    "parse_retry_after": "_retry",
    "Session": "_session",
    "SessionState": "_session",
    "BasicTokenStore": "_stores",
    "MemoryTokenStore": "_stores",
    "TokenStore": "_stores",
    "RefreshInFlight": "_tokens",
    "StoredSession": "_tokens",
    "Tokens": "_tokens",
}

if TYPE_CHECKING:
    from ._async_client import AsyncClient
    from ._cipher import AesGcmCipher, TokenCipher
    from ._client import Client
    from ._config import BASE_URL_ENV
    from ._file_store import FileTokenStore
    from ._redis_store import RedisTokenStore
    from ._retry import RetryPolicy, parse_retry_after
    from ._session import Session, SessionState
    from ._stores import BasicTokenStore, MemoryTokenStore, TokenStore
    from ._tokens import RefreshInFlight, StoredSession, Tokens

else:

    def __getattr__(name: str) -> object:
        """Import a public name's module on first access."""
        module = _LAZY.get(name)
        if module is not None:
            from importlib import import_module

            value = getattr(import_module(f".{module}", __name__), name)
            _report_public_module()  # the module (and what it imported) names nsdk too
            globals()[name] = value  # later reads are ordinary attribute lookups
            return value
        raise AttributeError(f"module 'nsdk' has no attribute {name!r}")

    def __dir__() -> list[str]:
        """The module's names, the ones not imported yet included (for dir() and completion)."""
        return sorted({*globals(), *__all__})


del TYPE_CHECKING  # not part of the public namespace

__all__ = [
    "BASE_URL_ENV",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AesGcmCipher",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "BasicTokenStore",
    "Client",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "FileTokenStore",
    "InsecureTransportError",
    "MalformedResponseError",
    "MemoryTokenStore",
    "NotAuthenticatedError",
    "NotFoundError",
    "NsdkError",
    "PermissionDeniedError",
    "ProxyError",
    "RateLimitError",
    "RedisTokenStore",
    "RefreshInFlight",
    "RetryPolicy",
    "RetryableError",
    "ScopeMismatchError",
    "ServerError",
    "Session",
    "SessionError",
    "SessionExpiredError",
    "SessionState",
    "StoredSession",
    "TLSVerificationError",
    "TokenCipher",
    "TokenStore",
    "TokenStoreBusyError",
    "TokenStoreCorruptError",
    "TokenStoreError",
    "TokenStoreKeyError",
    "TokenStorePermissionError",
    "TokenStoreUnavailableError",
    "Tokens",
    "parse_retry_after",
]


# Last in the file, so it covers every name above: public names report their public module
# (``nsdk.APIConnectionError``, not ``nsdk._errors.APIConnectionError``) in tracebacks, reprs,
# pickles and help(), as httpx does in its ``__init__``. Constants cannot carry a module. The
# lazily imported names get the same when their module is first imported through __getattr__
# (which runs this again), so a class reached before its own name was read (a Tokens from a
# Client) reports nsdk too.
def _report_public_module() -> None:
    import sys

    namespace = globals()
    for name in __all__:
        public = namespace.get(name)
        if public is None and name in _LAZY:  # not imported through nsdk yet: maybe by a sibling
            public = getattr(sys.modules.get(f"{__name__}.{_LAZY[name]}"), name, None)
        if callable(public) and getattr(public, "__module__", __name__) != __name__:
            setattr(public, "__module__", __name__)  # noqa: B010 (not on the static type)


_report_public_module()
