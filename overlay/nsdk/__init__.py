"""nsdk: the Python SDK for the NSDK authentication API.

Sign in, call protected APIs with a bearer token that rotates itself, and fail closed when the
session cannot be refreshed. ``Client`` is synchronous, ``AsyncClient`` its asyncio twin; both
expose the generated layer as ``client.api`` with the same behaviour. ``nsdk.__version__`` is
the installed distribution's version, read from its metadata on first access (so ``import nsdk``
does not pay for ``importlib.metadata``).

Examples:
    >>> import nsdk
    >>> with nsdk.Client(base_url="https://api.example.com") as client:  # doctest: +SKIP
    ...     session = client.login(email="user@example.com", password=password)
    ...     print(session.tenant_id, client.me().email)
    ...     client.logout()
"""

from typing import TYPE_CHECKING

from ._async_client import AsyncClient
from ._cipher import AesGcmCipher, TokenCipher
from ._client import Client
from ._config import BASE_URL_ENV
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
from ._file_store import FileTokenStore
from ._redis_store import RedisTokenStore
from ._retry import RetryPolicy, parse_retry_after
from ._session import Session, SessionState
from ._stores import BasicTokenStore, MemoryTokenStore, TokenStore
from ._tokens import RefreshInFlight, StoredSession, Tokens

if TYPE_CHECKING:
    # What type checkers see instead of __getattr__, so a misspelt nsdk.<name> stays an error.
    __version__: str
else:

    def __getattr__(name: str) -> str:
        """Compute ``__version__`` on first access, from the installed package's metadata."""
        if name != "__version__":
            raise AttributeError(f"module 'nsdk' has no attribute {name!r}")
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("nsdk")
        except PackageNotFoundError:
            raise AttributeError(
                "nsdk.__version__: nsdk is imported from a source tree that is not installed, "
                "so it has no package metadata; install it (pip install .) to get a version"
            ) from None
        globals()["__version__"] = value  # later reads are ordinary attribute lookups
        return value


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
# pickles and help(), as httpx does in its ``__init__``. Constants cannot carry a module.
def _report_public_module() -> None:
    namespace = globals()
    for name in __all__:
        public = namespace.get(name)  # None for a name served by __getattr__ (__version__)
        if callable(public):
            setattr(public, "__module__", __name__)  # noqa: B010 (not on the static type)


_report_public_module()
del _report_public_module
