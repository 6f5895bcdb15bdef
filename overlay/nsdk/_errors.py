"""The one exception tree of nsdk, and the boundary that translates lower-level errors into it.

::

    NsdkError                          root: catch this to catch everything nsdk raises
    ├── APIError                       the server answered with an error status
    │   ├── BadRequestError            400: the request payload shape is invalid (never retried)
    │   ├── AuthenticationError        401: credentials invalid, or the token rejected after refresh
    │   ├── PermissionDeniedError      403 (not documented by the spec)
    │   ├── NotFoundError              404 (not documented by the spec)
    │   ├── ConflictError              409 (not documented by the spec)
    │   ├── RateLimitError             429: retry_after says how long the server asked to wait
    │   └── ServerError                5xx: request_id (and earlier attempts' ids) to escalate with
    ├── APIConnectionError             no usable response: connection refused, reset, dropped
    │   └── APITimeoutError            the request timed out
    ├── MalformedResponseError         a success response whose body does not match the spec
    ├── SessionError                   the client-side session cannot make the call
    │   ├── NotAuthenticatedError      a protected call before login (or after logout/expiry)
    │   ├── SessionExpiredError        refresh was refused: the session was cleared (fail closed)
    │   └── ScopeMismatchError         me() disagrees with login (user or tenant): session cleared
    ├── TokenStoreError                the token store could not be used; what it holds is untouched
    │   ├── TokenStoreBusyError        the refresh critical section was not entered in time (retry)
    │   ├── TokenStoreUnavailableError the store cannot be reached (Redis down, timing out; retry)
    │   ├── TokenStoreCorruptError     the stored session cannot be read (torn, unknown, tampered)
    │   ├── TokenStoreKeyError         the record and the store's cipher disagree (key, or none)
    │   └── TokenStorePermissionError  the store is open to others or not ours (as ssh refuses)
    ├── ConfigurationError             the client was configured unsafely or wrongly
    │   └── InsecureTransportError     http:// to a non-loopback host without explicit opt-in
    └── ClientClosedError              the client was closed; create a new one

The status -> class choice is one table (``_STATUS_CLASSES``); lower-level errors are translated
in two places only: ``from_generated`` (generated-layer errors) and ``from_transport`` (httpx).
Messages say what happened and what to do, and never contain a token, a password or a body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._retry import ATTEMPT_IDS, parse_retry_after

if TYPE_CHECKING:
    import httpx
    from nsdk_api.errors import ApiResponseError


class NsdkError(Exception):
    """Root of every exception nsdk raises.

    Examples:
        >>> try:  # doctest: +SKIP
        ...     client.me()
        ... except nsdk.SessionExpiredError:
        ...     redirect_to_sign_in()
        ... except nsdk.NsdkError as exc:
        ...     log.error("the API call failed: %s", exc)
    """


class APIError(NsdkError):
    """The server answered with an error status.

    Attributes:
        status_code: The HTTP status.
        detail: The server's explanation (the error body's ``detail``), if any.
        request_id: The server's request id for this answer; quote it when you escalate.
        operation: The operation (e.g. ``"me"``) that failed.
        documented: Whether the spec documents this status for the operation.
        attempt_request_ids: Request ids of every attempt, oldest first (retries included).

    Examples:
        >>> try:  # doctest: +SKIP
        ...     client.me()
        ... except nsdk.APIError as exc:
        ...     log.error("%s failed: %s %s (request_id=%s)",
        ...               exc.operation, exc.status_code, exc.detail, exc.request_id)
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        detail: str | None = None,
        request_id: str | None = None,
        operation: str | None = None,
        documented: bool = True,
        attempt_request_ids: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.request_id = request_id
        self.operation = operation
        self.documented = documented
        self.attempt_request_ids = tuple(attempt_request_ids)
        self.headers: Mapping[str, str] = headers or {}


class BadRequestError(APIError):
    """400: the request payload shape is invalid. Fix the request; it is never retried."""


class AuthenticationError(APIError):
    """401: credentials invalid, or the access token was rejected even after a refresh."""


class PermissionDeniedError(APIError):
    """403: the server refused the call (not a documented status of the API)."""


class NotFoundError(APIError):
    """404: no such resource (not a documented status of the API)."""


class ConflictError(APIError):
    """409: the request conflicts with the server's state (not a documented status)."""


class RateLimitError(APIError):
    """429: rate limited, after the retry policy's attempts (or a wait above its cap).

    Attributes:
        retry_after: Seconds the server asked to wait (from ``Retry-After``), if it said.

    Examples:
        >>> try:  # doctest: +SKIP
        ...     client.me()
        ... except nsdk.RateLimitError as exc:
        ...     time.sleep(exc.retry_after or 30)
    """

    retry_after: float | None = None


class ServerError(APIError):
    """5xx: the server failed, after the retry policy's attempts. Escalate with request_id."""


class APIConnectionError(NsdkError):
    """No usable response: the connection failed, was reset, or dropped mid-answer."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or waiting for a pooled connection)."""


class MalformedResponseError(NsdkError):
    """A success response whose body is not JSON or does not match the API specification.

    Attributes:
        status_code: The HTTP status of the response.
        request_id: The server's request id, if the header was present.
        operation: The operation whose response it was.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.operation = operation


class SessionError(NsdkError):
    """The client-side session cannot make this call."""


class NotAuthenticatedError(SessionError):
    """A protected call without a session: call ``login`` first. No request was sent."""


class SessionExpiredError(SessionError):
    """The refresh was refused, so the session was cleared (fail closed). Sign in again.

    Raised by the call that needed the refresh; ``on_session_expired`` receives it too. Later
    protected calls raise ``NotAuthenticatedError`` without sending, until ``login`` succeeds.

    Examples:
        >>> try:  # doctest: +SKIP
        ...     me = client.me()
        ... except nsdk.SessionExpiredError:
        ...     client.login(email=email, password=ask_password())
        ...     me = client.me()
    """


class ScopeMismatchError(SessionError):
    """``me`` disagrees with the login (user or tenant), so the session was cleared."""


class TokenStoreError(NsdkError):
    """The token store could not be read or written; what it holds was left as it was.

    Attributes:
        store: A description of the store (e.g. its path), never its content.
    """

    def __init__(self, message: str, *, store: str = "") -> None:
        super().__init__(message)
        self.store = store


class TokenStoreBusyError(TokenStoreError):
    """Another client held the session's refresh critical section past the wait bound.

    Retryable: nothing was sent and nothing changed. The holder is refreshing the session (or is
    stuck); try again, or raise the store's ``lock_timeout``.
    """


class TokenStoreUnavailableError(TokenStoreError):
    """The store cannot be reached (Redis down or timing out). Retryable.

    Nothing was sent and nothing changed: a refresh is never made without the store's critical
    section. Calls with a still-valid access token keep working, since they never touch the
    store; retry once the store is back.
    """


class TokenStoreCorruptError(TokenStoreError):
    """The stored session cannot be read: torn, corrupt, empty, or written by an unknown version.

    Also a sealed record that does not authenticate under the store's key: tampered with, or
    copied from another store. Nothing was deleted. Remove the file (or whatever the store
    names) and sign in again.
    """


class TokenStoreKeyError(TokenStoreError):
    """The stored record and the store's cipher disagree: another key, or sealed and clear mixed.

    Three cases, each named in the message: the record was sealed with another key (both key
    ids are given, never the keys); it is sealed and the store has no cipher; or it is in clear
    text and the store has a cipher, which refuses it (anyone able to write the store could have
    planted it). Nothing was changed. Give the store the key the record was sealed with, or
    delete the record and sign in again.

    Attributes:
        record_key_id: The ``key_id`` the record was sealed with; None if it is not sealed.
        key_id: The ``key_id`` of the store's cipher; None if it has none.

    Examples:
        >>> try:  # doctest: +SKIP
        ...     client = nsdk.Client(url, token_store=nsdk.FileTokenStore(path, cipher=cipher))
        ... except nsdk.TokenStoreKeyError as exc:
        ...     log.error("session sealed with key %s, we have %s", exc.record_key_id, exc.key_id)
    """

    def __init__(
        self,
        message: str,
        *,
        store: str = "",
        record_key_id: str | None = None,
        key_id: str | None = None,
    ) -> None:
        super().__init__(message, store=store)
        self.record_key_id = record_key_id
        self.key_id = key_id


class TokenStorePermissionError(TokenStoreError):
    """The store file is open to others, its directory writable by others, or either not ours.

    Refused, as ssh does. Fix the permissions (``chmod 600`` the file, ``chmod 700`` its
    directory) or the owner.
    """


class ConfigurationError(NsdkError):
    """The client was configured wrongly or unsafely."""


class InsecureTransportError(ConfigurationError):
    """An ``http://`` base URL to a non-loopback host without ``allow_insecure_http=True``."""


class ClientClosedError(NsdkError):
    """The client was closed: create a new client (tokens stay in the token store)."""


# One table decides the class for a status; 5xx is handled as a range below it.
_STATUS_CLASSES: Mapping[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}

_ADVICE: Mapping[type[APIError], str] = {
    BadRequestError: "fix the request payload",
    AuthenticationError: "check the credentials, or sign in again",
    RateLimitError: "slow down and retry later",
    ServerError: "retry later; if it persists, escalate with the request_id",
}


def status_class(status_code: int) -> type[APIError]:
    """The APIError subclass for an HTTP status."""
    if status_code >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status_code, APIError)


def from_generated(error: ApiResponseError, now: float) -> NsdkError:
    """Translate a generated-layer error into nsdk's tree (the generated Client's error_hook)."""
    from nsdk_api.errors import ErrorStatus, MalformedResponse, UnexpectedStatus

    if isinstance(error, MalformedResponse):
        return MalformedResponseError(
            f"{error.operation}: the server's {error.status_code} response does not match the API "
            f"specification; report it with request_id={error.request_id}",
            status_code=error.status_code,
            request_id=error.request_id,
            operation=error.operation,
        )
    detail = error.detail if isinstance(error, ErrorStatus) else None
    documented = not isinstance(error, UnexpectedStatus)
    cls = status_class(error.status_code)
    ids: Sequence[str] = ()
    if error.response is not None:
        ids = error.response.extensions.get(ATTEMPT_IDS, ())
    if not ids and error.request_id:
        ids = (error.request_id,)  # a single attempt
    advice = _ADVICE.get(cls, "see the status and detail")
    attempts = f" after {len(ids)} attempts" if len(ids) > 1 else ""
    message = (
        f"{error.operation}: HTTP {error.status_code}{attempts}: "
        f"{detail or ('undocumented status' if not documented else 'no detail')}; {advice} "
        f"(request_id={error.request_id})"
    )
    exc = cls(
        message,
        status_code=error.status_code,
        detail=detail,
        request_id=error.request_id,
        operation=error.operation,
        documented=documented,
        attempt_request_ids=ids,
        headers=error.headers,
    )
    if isinstance(exc, RateLimitError):
        exc.retry_after = parse_retry_after(error.headers.get("Retry-After"), now)
    return exc


def from_transport(error: httpx.HTTPError, what: str) -> NsdkError:
    """Translate an httpx error into nsdk's tree; ``what`` names the request (method and path)."""
    import httpx

    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(
            f"{what}: timed out ({type(error).__name__}); retry, or raise the timeout"
        )
    return APIConnectionError(
        f"{what}: no usable response ({type(error).__name__}); check the network and base_url"
    )


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "InsecureTransportError",
    "MalformedResponseError",
    "NotAuthenticatedError",
    "NotFoundError",
    "NsdkError",
    "PermissionDeniedError",
    "RateLimitError",
    "ScopeMismatchError",
    "ServerError",
    "SessionError",
    "SessionExpiredError",
    "TokenStoreBusyError",
    "TokenStoreCorruptError",
    "TokenStoreError",
    "TokenStoreKeyError",
    "TokenStorePermissionError",
    "TokenStoreUnavailableError",
    "from_generated",
    "from_transport",
    "status_class",
]
