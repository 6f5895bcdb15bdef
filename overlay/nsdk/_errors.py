"""The one exception tree of nsdk, and the boundary that translates lower-level errors into it.

::

    NsdkError                          root: catch this to catch everything nsdk raises
    ├── RetryableError                 try again later; also a second base of the classes marked [R]
    │   └── APIConnectionError         no usable response: connection refused, reset, dropped
    │       └── APITimeoutError        the request timed out
    ├── APIError                       the server answered with an error status
    │   ├── BadRequestError            400: the request payload shape is invalid (never retried)
    │   ├── AuthenticationError        401: credentials invalid, or the token rejected after refresh
    │   ├── PermissionDeniedError      403 (not documented by the spec)
    │   ├── NotFoundError              404 (not documented by the spec)
    │   ├── ConflictError              409 (not documented by the spec)
    │   ├── RateLimitError             [R] 429: retry_after says how long the server asked to wait
    │   └── ServerError                [R] 5xx: escalate with request_id and attempt_request_ids
    ├── TLSVerificationError           the server's certificate is not trusted (never retried)
    ├── ProxyError                     the proxy refused the tunnel: 407, 403 (never retried)
    ├── MalformedResponseError         a success response whose body does not match the spec
    ├── SessionError                   the client-side session cannot make the call
    │   ├── NotAuthenticatedError      a protected call before login (or after logout/expiry)
    │   ├── SessionExpiredError        refresh was refused: the session was cleared (fail closed)
    │   └── ScopeMismatchError         me() disagrees with login (user or tenant): session cleared
    ├── TokenStoreError                the token store could not be used; what it holds is untouched
    │   ├── TokenStoreBusyError        [R] the refresh critical section was not entered in time
    │   ├── TokenStoreUnavailableError [R] the store cannot be reached (Redis down, timing out)
    │   ├── TokenStoreCorruptError     the stored session cannot be read (torn, unknown, tampered)
    │   ├── TokenStoreKeyError         the record and the store's cipher disagree (key, or none)
    │   └── TokenStorePermissionError  the store is open to others or not ours (as ssh refuses)
    ├── ConfigurationError             the client was configured unsafely or wrongly (a ValueError)
    │   └── InsecureTransportError     http:// to a non-loopback host without explicit opt-in
    └── ClientClosedError              the client was closed; create a new one

The retryable base is also the second base of the classes marked [R], so one ``except`` clause
catches the failures where the same call may succeed later: the network, a rate limit, a failing
server, a busy or unreachable token store. The others fail the same way until something changes.
A proxy that could not reach the API (its 500, 502, 503 or 504 to ``CONNECT``) is a connection
failure like the others: retried, then raised as the retryable connection error naming the
proxy. An untrusted certificate, or a proxy refusing the tunnel, fails the same way every time
until the configuration changes: classes of their own, never retried.

The status -> class choice is one table (``_STATUS_CLASSES``); lower-level errors are translated
in two places only: ``from_generated`` (generated-layer errors) and ``from_transport`` (httpx).
Messages say what happened and what to do, name the request id once, and never contain a token,
a password or a body (of a body, only the error's ``detail``: the server's explanation).
"""

from __future__ import annotations

import copyreg
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

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

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle as the class, the message and the attributes (a worker's error reaches a parent).

        ``BaseException`` pickles as ``cls(*args)`` and then the attributes, which cannot pass the
        keyword-only arguments (``status_code``) some classes require. So the copy is built
        without ``__init__`` (``cls.__new__(cls, *args)``, which sets ``args``; pickle's own
        ``copyreg.__newobj__`` protocol) and gets the attributes back as they were, except the
        response headers that carry credentials (``Set-Cookie``, ``Authorization``): a pickle is
        written to queues and files, where a secret must not go.
        """
        state = dict(vars(self))
        headers = state.get("headers")
        if isinstance(headers, Mapping):
            state["headers"] = _without_credentials(cast("Mapping[str, str]", headers))
        return (_NEWOBJ, (type(self), *self.args), state or None)


class RetryableError(NsdkError):
    """Try again later: rate limited, the server failing, the network or the token store down.

    The base of ``APIConnectionError`` (and so ``APITimeoutError``), and a second base of
    ``RateLimitError``, ``ServerError``, ``TokenStoreBusyError`` and
    ``TokenStoreUnavailableError``. nsdk has already retried where its retry policy allows; the
    same call may succeed later. The other errors fail the same way every time until something
    changes (the request, the credentials, the configuration): retrying them is pointless.

    Attributes:
        retry_after: Seconds the server asked to wait (a ``RateLimitError`` with
            ``Retry-After``); None when nobody said.

    Examples:
        >>> try:  # doctest: +SKIP
        ...     me = client.me()
        ... except nsdk.RetryableError as exc:
        ...     log.warning("try again later: %s", exc)
        ...     schedule(retry_in=exc.retry_after or 30)
    """

    retry_after: float | None = None


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


class RateLimitError(APIError, RetryableError):
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


class ServerError(APIError, RetryableError):
    """5xx: the server failed, after the retry policy's attempts. Escalate with request_id."""


class APIConnectionError(RetryableError):
    """No usable response: the connection failed, was reset, or dropped mid-answer.

    Raised after the retry policy's attempts; the message names the operation, the URL (never
    its query), the attempts made and the time they took.

    Attributes:
        operation: The operation (e.g. ``"me"``), if the request was one of the spec's.
        url: The URL requested, without its query string (it could carry a secret).
        attempts: How many attempts were made, the first included.
        elapsed: Seconds from the first attempt to the failure, waits included (by the
            client's clock); None when not measured.
        request_id: The server's request id for the failed answer, when there was one (a
            body that could not be decoded); None when no answer arrived.
        attempt_request_ids: Request ids of the earlier attempts the server did answer (a 5xx
            before the connection failed), oldest first.
        proxy: The proxy the request went through, its URL without credentials; None when
            direct (or through a ``transport=`` of your own).
        proxy_status: The proxy's answer to ``CONNECT`` when it could not reach the API (502,
            503, 504); None otherwise.

    Examples:
        >>> try:  # doctest: +SKIP
        ...     client.me()
        ... except nsdk.APIConnectionError as exc:
        ...     log.warning("%s unreachable after %d attempts", exc.url, exc.attempts)
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        url: str | None = None,
        attempts: int = 1,
        elapsed: float | None = None,
        request_id: str | None = None,
        attempt_request_ids: Sequence[str] = (),
        proxy: str | None = None,
        proxy_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.url = url
        self.attempts = attempts
        self.elapsed = elapsed
        self.request_id = request_id
        self.attempt_request_ids = tuple(attempt_request_ids)
        self.proxy = proxy
        self.proxy_status = proxy_status


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or waiting for a pooled connection)."""


class TLSVerificationError(NsdkError):
    """The server's certificate is not trusted (unknown CA, wrong host name, expired).

    Nothing was sent, it is never retried (it would fail the same way), and nsdk never falls
    back to an unverified connection. For a private CA pass ``verify=`` (a CA bundle path or an
    ``ssl.SSLContext``) or set ``SSL_CERT_FILE``.

    Attributes:
        operation: The operation (e.g. ``"me"``), if the request was one of the spec's.
        url: The URL requested, without its query string.
        attempts: Attempts made: 1.
        proxy: The proxy the tunnel went through (URL without credentials), or None.

    Examples:
        >>> try:  # doctest: +SKIP
        ...     client.me()
        ... except nsdk.TLSVerificationError as exc:
        ...     log.error("check the CA bundle: %s", exc)
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        url: str | None = None,
        attempts: int = 1,
        proxy: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.url = url
        self.attempts = attempts
        self.proxy = proxy


class ProxyError(NsdkError):
    """The proxy refused the tunnel to the API: 407 (credentials) or 403 (its policy).

    Nothing reached the API, and it is never retried: the answer changes only when the
    credentials (in the proxy URL) or the proxy's policy do. A proxy that could not reach the
    API is another failure, retried: an ``APIConnectionError`` with ``proxy_status``.

    Attributes:
        status_code: The proxy's answer to ``CONNECT``: 407 or 403.
        proxy: The proxy's URL without credentials; None for a ``transport=`` of your own.
        operation: The operation (e.g. ``"me"``), if the request was one of the spec's.
        url: The URL requested, without its query string.
        attempts: Attempts made: 1.

    Examples:
        >>> try:  # doctest: +SKIP
        ...     client.me()
        ... except nsdk.ProxyError as exc:
        ...     log.error("the proxy %s said %d", exc.proxy, exc.status_code)
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        proxy: str | None = None,
        operation: str | None = None,
        url: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.proxy = proxy
        self.operation = operation
        self.url = url
        self.attempts = attempts


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


class TokenStoreBusyError(TokenStoreError, RetryableError):
    """Another client held the session's refresh critical section past the wait bound.

    Retryable: nothing was sent and nothing changed. The holder is refreshing the session (or is
    stuck); try again, or raise the store's ``lock_timeout``.
    """


class TokenStoreUnavailableError(TokenStoreError, RetryableError):
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


class ConfigurationError(NsdkError, ValueError):
    """The client was configured wrongly or unsafely: the message names the argument.

    Raised when the object is built (``Client``, ``AsyncClient``, ``RetryPolicy``, the stores,
    the ciphers), before anything is sent; and, without sending anything, for a misuse of
    ``client.api`` (a call of the other flavour, or a refresh outside ``client.refresh()``).
    Also a ``ValueError``: a bad argument value is what ``ValueError`` means, and code that
    caught the ``ValueError`` that ``RetryPolicy`` used to raise keeps working.
    """


class InsecureTransportError(ConfigurationError):
    """An ``http://`` base URL to a non-loopback host without ``allow_insecure_http=True``."""


class ClientClosedError(NsdkError):
    """The client was closed: create a new client (tokens stay in the token store)."""


#: ``copyreg.__newobj__(cls, *args)`` is ``cls.__new__(cls, *args)``; pickle (protocol 2 and up)
#: writes it as its NEWOBJ opcode, naming only the class (``nsdk.APIError``).
_NEWOBJ = cast("Callable[..., object]", vars(copyreg)["__newobj__"])

#: Response headers that carry credentials: never part of a pickled error.
_CREDENTIAL_HEADERS = frozenset({"set-cookie", "authorization", "proxy-authorization", "cookie"})


def _without_credentials(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The headers without those in ``_CREDENTIAL_HEADERS``, of the same type (httpx.Headers)."""
    if not any(key.lower() in _CREDENTIAL_HEADERS for key in headers):
        return headers
    import httpx

    if isinstance(headers, httpx.Headers):  # keeps repeated fields and the received spelling
        secret = {name.encode("latin-1") for name in _CREDENTIAL_HEADERS}
        kept = [(k, v) for k, v in headers.raw if k.lower() not in secret]
        return httpx.Headers(kept, encoding=headers.encoding)
    return {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}


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
    AuthenticationError: "the access token was refused even after a refresh: sign in again",
    RateLimitError: "slow down and retry later",
    ServerError: "retry later; if it persists, escalate with the request_id",
}

#: Advice by the operation's role where it differs from the class's (a 401 on login is about
#: the credentials, not the session).
_ROLE_ADVICE: Mapping[tuple[type[APIError], str | None], str] = {
    (AuthenticationError, "login"): "check the email and password",
}

#: Which timeout expired, by httpx exception name (the key in the request's timeout extension).
_TIMEOUT_KINDS: Mapping[str, str] = {
    "ConnectTimeout": "connect",
    "ReadTimeout": "read",
    "WriteTimeout": "write",
    "PoolTimeout": "pool",
}


#: What a proxy's answer to ``CONNECT`` means, and what to do: by status (None: any other).
_PROXY_ANSWERS: Mapping[int | None, tuple[str, str]] = {
    407: (
        "refused the tunnel",
        "put credentials in the proxy URL (http://user:password@host:port), or check them; "
        "not retried",
    ),
    403: (
        "refused the tunnel",
        "its policy does not let this client reach the API: ask its administrators, or bypass "
        "it with NO_PROXY; not retried",
    ),
    **dict.fromkeys(
        (502, 503, 504),
        (
            "could not reach the API",
            "the request never reached the API; retry later, and check that the API's host is "
            "reachable from the proxy",
        ),
    ),
    None: (
        "could not open a tunnel to the API",
        "the request never reached the API; retry later, and check the proxy",
    ),
}


def display_url(url: httpx.URL | str) -> str:
    """A URL for a message, repr or log line: without its credentials (``user:password@``)."""
    import httpx

    parsed = httpx.URL(url)
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    return str(parsed)


def seconds(value: float) -> str:
    """A duration for a message: ``"0.875 s"``, ``"12.3 s"``, ``"120 s"``."""
    return f"{value:.0f} s" if value >= 100 else f"{value:.3g} s"


def status_class(status_code: int) -> type[APIError]:
    """The APIError subclass for an HTTP status."""
    if status_code >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status_code, APIError)


def _body_detail(content: bytes) -> str | None:
    # An undocumented status (a 503 from the server or a proxy) may still carry the spec's error
    # body: keep its ``detail``, the server's explanation, and nothing else of the body.
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    detail = cast("dict[str, object]", data).get("detail")
    return detail if isinstance(detail, str) and detail else None


def from_generated(error: ApiResponseError, now: float) -> NsdkError:
    """Translate a generated-layer error into nsdk's tree (the generated Client's error_hook)."""
    from nsdk_api._operations import OPERATIONS
    from nsdk_api.errors import ErrorStatus, MalformedResponse, UnexpectedStatus

    from ._retry import ATTEMPT_IDS, RETRY_AFTER_CAPPED, parse_retry_after

    if isinstance(error, MalformedResponse):
        return MalformedResponseError(
            f"{error.operation}: the server's {error.status_code} response does not match the API "
            f"specification; report it with request_id={error.request_id}",
            status_code=error.status_code,
            request_id=error.request_id,
            operation=error.operation,
        )
    documented = not isinstance(error, UnexpectedStatus)
    detail: str | None = None
    if isinstance(error, ErrorStatus):
        detail = error.detail
    elif isinstance(error, UnexpectedStatus):
        detail = _body_detail(error.content)
    cls = status_class(error.status_code)
    extensions: Mapping[str, object] = error.response.extensions if error.response else {}
    ids = cast("Sequence[str]", extensions.get(ATTEMPT_IDS, ()))
    if not ids and error.request_id:
        ids = (error.request_id,)  # a single attempt
    op = OPERATIONS.get(error.operation)
    role = op.role if op is not None else None
    advice = _ROLE_ADVICE.get((cls, role)) or _ADVICE.get(cls, "see the status and detail")
    retry_after = None
    if cls is RateLimitError:
        retry_after = parse_retry_after(error.headers.get("Retry-After"), now)
        capped = cast("tuple[float, float] | None", extensions.get(RETRY_AFTER_CAPPED))
        if capped is not None:
            asked, cap = capped
            wait = seconds(asked)
            advice = (
                f"not retried: the server asked to wait {wait} (Retry-After), more than the "
                f"retry policy's max_retry_after of {seconds(cap)}; call again in {wait}, or "
                "raise max_retry_after"
            )
    attempts = f" after {len(ids)} attempts" if len(ids) > 1 else ""
    explanation = detail or ("no detail" if documented else "undocumented status")
    if detail and not documented:
        explanation += " (undocumented status)"
    message = (
        f"{error.operation}: HTTP {error.status_code}{attempts}: {explanation}; {advice} "
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
        exc.retry_after = retry_after
    return exc


def from_transport(
    error: httpx.HTTPError,
    what: str,
    *,
    operation: str | None = None,
    method: str | None = None,
    url: str | None = None,
    attempts: int = 1,
    elapsed: float | None = None,
    request_id: str | None = None,
    attempt_request_ids: Sequence[str] = (),
    timeouts: Mapping[str, float | None] | None = None,
    proxy: str | None = None,
) -> APIConnectionError | TLSVerificationError | ProxyError:
    """Translate an httpx error into nsdk's tree.

    Args:
        error: The httpx error that ended the request.
        what: What failed, first in the message: the operation, else method and path.
        operation: The spec's operation name, if the request was one.
        method: The request's method (named in the message with ``url``).
        url: The URL, without its query string.
        attempts: Attempts made, the first included.
        elapsed: Seconds from the first attempt to the failure; None when not measured.
        request_id: The request id of the failed answer, if one arrived (a body not decodable).
        attempt_request_ids: Request ids of the attempts the server answered, oldest first.
        timeouts: The request's httpx timeout extension (seconds per phase), to name the
            timeout that expired.
        proxy: The proxy the request went through, without credentials (``display_url``).
    """
    import httpx

    from ._retry import PROXY_REFUSALS, proxy_status, tls_verification_failure

    name = type(error).__name__
    request = f"{method} {url}" if method and url else ""
    target = f"{request} via the proxy {proxy}" if request and proxy else request
    tries = ""
    if elapsed is not None:
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''} in {seconds(elapsed)}"
    cls: type[APIConnectionError] = APIConnectionError
    not_trusted = tls_verification_failure(error) if isinstance(error, httpx.ConnectError) else None
    if isinstance(error, httpx.ProxyError):
        status = proxy_status(error)
        happened, advice = _PROXY_ANSWERS.get(status, _PROXY_ANSWERS[None])
        answer = str(error)[:80] or name  # the proxy's own words: "407 Proxy Authentication ..."
        message = (
            f"{what}: the proxy {proxy or '(of the transport)'} {happened} ({answer})"
            f"{' for ' + request if request else ''}{tries}; {advice}"
        )
        if status is not None and status in PROXY_REFUSALS:  # the retry policy's table
            return ProxyError(
                message,
                status_code=status,
                proxy=proxy,
                operation=operation,
                url=url,
                attempts=attempts,
            )
        return APIConnectionError(
            message,
            operation=operation,
            url=url,
            attempts=attempts,
            elapsed=elapsed,
            attempt_request_ids=attempt_request_ids,
            proxy=proxy,
            proxy_status=status,
        )
    if not_trusted is not None:
        reason = getattr(not_trusted, "verify_message", "") or str(not_trusted)
        subject = f" of {target}" if target else ""
        return TLSVerificationError(
            f"{what}: the server's certificate{subject} is not trusted{tries} ({reason}); for a "
            "private CA pass verify=<CA bundle path> or an ssl.SSLContext, or set "
            "SSL_CERT_FILE; nsdk never falls back to an unverified connection; not retried",
            operation=operation,
            url=url,
            attempts=attempts,
            proxy=proxy,
        )
    if isinstance(error, httpx.TimeoutException):
        cls = APITimeoutError
        kind = _TIMEOUT_KINDS.get(name, "")
        limit = (timeouts or {}).get(kind)
        cause = f"{name}, {kind} timeout {seconds(limit)} per attempt" if limit else name
        subject = f"{target} timed out" if target else "timed out"
        message = f"{subject}{tries} ({cause}); retry later, or raise the timeout"
    elif isinstance(error, httpx.DecodingError):
        subject = f"the response body of {target}" if target else "the response body"
        rid = f" (request_id={request_id})" if request_id else ""
        message = (
            f"{subject} could not be decoded ({name}: a broken Content-Encoding); report it "
            f"to the API's operators{rid}"
        )
    else:
        # A connect error's text comes from the OS or TLS (refused, no such host, a bad
        # certificate) and says what to fix; other texts may quote what the server sent.
        cause = name
        if isinstance(error, httpx.ConnectError) and str(error):
            cause = f"{name}: {error}"
        subject = f"no usable response to {target}" if target else "no usable response"
        message = f"{subject}{tries} ({cause}); check the network and base_url"
    return cls(
        f"{what}: {message}",
        operation=operation,
        url=url,
        attempts=attempts,
        elapsed=elapsed,
        request_id=request_id,
        attempt_request_ids=attempt_request_ids,
        proxy=proxy,
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
    "ProxyError",
    "RateLimitError",
    "RetryableError",
    "ScopeMismatchError",
    "ServerError",
    "SessionError",
    "SessionExpiredError",
    "TLSVerificationError",
    "TokenStoreBusyError",
    "TokenStoreCorruptError",
    "TokenStoreError",
    "TokenStoreKeyError",
    "TokenStorePermissionError",
    "TokenStoreUnavailableError",
    "display_url",
    "from_generated",
    "from_transport",
    "seconds",
    "status_class",
]
