"""nsdk: the Python SDK for the NSDK authentication API.

Sign in, call protected APIs with a bearer token that rotates itself, and fail closed when the
session cannot be refreshed. ``Client`` is synchronous, ``AsyncClient`` its asyncio twin; both
expose the generated layer as ``client.api`` with the same behaviour.

Examples:
    >>> import nsdk
    >>> with nsdk.Client(base_url="https://api.example.com") as client:  # doctest: +SKIP
    ...     session = client.login(email="user@example.com", password=password)
    ...     print(session.tenant_id, client.me().email)
    ...     client.logout()
"""

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
    RateLimitError,
    ScopeMismatchError,
    ServerError,
    SessionError,
    SessionExpiredError,
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
    "RateLimitError",
    "RedisTokenStore",
    "RefreshInFlight",
    "RetryPolicy",
    "ScopeMismatchError",
    "ServerError",
    "Session",
    "SessionError",
    "SessionExpiredError",
    "SessionState",
    "StoredSession",
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
