"""Retry policy and the pure retry decision: what to do after each attempt's outcome.

Nothing here sleeps or sends. ``RetryPolicy`` is an immutable value (like urllib3's ``Retry``);
``RetryDecider`` is the per-request decision core: the sync and async transports
(``_transport.py``) feed it each outcome and perform what it decides.

What is retried (``max_attempts`` counts every attempt, the first included):

* 429: always safe to resend (the server refused before doing anything). Wait ``Retry-After``
  (delta-seconds or HTTP-date) when the policy honours it, else exponential backoff with jitter.
  A ``Retry-After`` above ``max_retry_after`` stops at once (the caller gets ``RateLimitError``).
* 500/502/503/504: only when the operation is ``x-nsdk-resend-safe`` in the spec.
* A connection that failed before the request was sent (connect error or timeout, pool
  timeout, a proxy that could not open the tunnel, e.g. its 500/502/503/504 to ``CONNECT``): any
  operation. A failure after the bytes may have left (read timeout, reset,
  dropped connection): only resend-safe operations. Refresh is not resend-safe: resending a
  refresh the server may have processed would be a replay that revokes the token family.
* Never, whatever the operation: a failure that resending cannot change (``FINAL_ERRORS``): the
  server's certificate not trusted (a retry storm would change nothing), a proxy refusing the
  tunnel (407 credentials, 403 its policy).
* Anything else (400, 401, other statuses) is returned as is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, cast

import attrs
import httpx
from nsdk_api._operations import RETRY_AFTER_HEADER, Operation

from ._errors import ConfigurationError

#: Response extension listing the request ids of every attempt, oldest first (set when the
#: retry policy had to decide; a first answer that nothing retries carries none).
ATTEMPT_IDS = "nsdk_attempt_request_ids"

#: Response extension set on a 429 handed over at once because its ``Retry-After`` exceeded
#: ``max_retry_after``: ``(seconds asked, max_retry_after)``, for the error's message.
RETRY_AFTER_CAPPED = "nsdk_retry_after_capped"

#: Transport errors that guarantee the request never reached the API. ``httpx.ProxyError`` is a
#: tunnel (``CONNECT``) the proxy did not open: nothing of the request was sent through it.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
)

#: A proxy's answers to ``CONNECT`` that resending will not change: its credentials (407) or its
#: policy (403). Its other answers to CONNECT (500/502/503/504: it could not reach the API) may
#: pass: they are retried.
PROXY_REFUSALS = frozenset({403, 407})

_PROXY_STATUS = re.compile(r"([1-5][0-9][0-9])(?: |$)")


def proxy_status(error: BaseException) -> int | None:
    """The status a proxy answered ``CONNECT`` with, from an ``httpx.ProxyError``; else None.

    httpcore words a refused tunnel as ``"<status> <reason>"`` (e.g. ``"407 Proxy
    Authentication Required"``); a SOCKS proxy's failures carry no status.
    """
    if not isinstance(error, httpx.ProxyError):
        return None
    found = _PROXY_STATUS.match(str(error))
    return int(found.group(1)) if found else None


def tls_verification_failure(error: BaseException) -> Exception | None:
    """The ``ssl.SSLCertVerificationError`` behind a connect error, or None if there is none.

    httpx raises ``ConnectError`` from httpcore's, itself raised from the ``ssl`` error: the
    chain of causes is walked (a few links at most).
    """
    import ssl  # only on this error path: `import nsdk` does not pay for it

    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _proxy_refused(error: httpx.TransportError) -> bool:
    return proxy_status(error) in PROXY_REFUSALS


def _tls_not_trusted(error: httpx.TransportError) -> bool:
    return isinstance(error, httpx.ConnectError) and tls_verification_failure(error) is not None


#: Transport failures never retried, whatever the operation: resending cannot change them.
FINAL_ERRORS: tuple[Callable[[httpx.TransportError], bool], ...] = (
    _tls_not_trusted,
    _proxy_refused,
)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value in either RFC 9110 form, or None if invalid.

    Args:
        value: The header value: delta-seconds (``"120"``) or an HTTP-date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: The current Unix time (injected, so tests control it).

    Returns:
        The wait in seconds (0 for a date in the past), or None when the value is unusable.

    Examples:
        >>> parse_retry_after("3", now=0.0)
        3.0
        >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=30.0)
        30.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # DIGIT is ASCII only; str.isdigit() accepts "²"
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # The asctime form carries no zone: every HTTP-date is GMT (RFC 9110 section 5.6.7).
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _number_from(low: float, high: float = math.inf) -> Callable[[object], bool]:
    """A predicate: a finite int or float from ``low`` to ``high`` (bool and NaN are not)."""

    def ok(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return math.isfinite(value) and low <= value <= high

    return ok


def _field_check(
    accepted: str, ok: Callable[[Any], bool]
) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator raising ConfigurationError that names the field and ``accepted``."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not ok(value):
            raise ConfigurationError(
                f"RetryPolicy.{attribute.name} must be {accepted}, got {value!r}"
            )

    return check


def _statuses(value: Iterable[int]) -> frozenset[int]:
    """The ``retry_statuses`` converter: a frozenset of 5xx statuses, else ConfigurationError."""
    try:
        statuses: frozenset[object] = frozenset(cast("Iterable[object]", value))
    except TypeError:  # not iterable, or unhashable items
        statuses = frozenset({None})
    if not all(
        isinstance(s, int) and not isinstance(s, bool) and 500 <= s <= 599 for s in statuses
    ):
        raise ConfigurationError(
            "RetryPolicy.retry_statuses must be a set of server statuses (ints from 500 to 599; "
            f"429 is always retried), got {value!r}"
        )
    return cast("frozenset[int]", statuses)


_SECONDS = "a number of seconds >= 0"


@attrs.frozen
class RetryPolicy:
    """How nsdk retries 429, 5xx and connection failures. Immutable; derive with ``evolve``.

    Args:
        max_attempts: Attempts per request, the first included (1 disables retries).
        initial_backoff: The first backoff wait in seconds.
        max_backoff: The longest backoff wait in seconds.
        multiplier: Growth of the backoff per attempt.
        jitter: Fraction of each backoff that is random (0: none, 1: full jitter).
        respect_retry_after: Wait what a 429's ``Retry-After`` says instead of backing off.
        max_retry_after: The longest ``Retry-After`` honoured; above it, raise at once.
        retry_statuses: Server statuses retried for resend-safe operations.

    Raises:
        ConfigurationError: A parameter out of its range (the message names it and the range).

    Examples:
        >>> import attrs, nsdk
        >>> policy = nsdk.RetryPolicy(max_attempts=5, max_retry_after=10.0)
        >>> policy.backoff(attempt=3, random=lambda: 0.5)  # full jitter: half the 2 s base
        1.0
        >>> attrs.evolve(policy, jitter=0.0).backoff(attempt=3, random=lambda: 0.5)
        2.0
    """

    max_attempts: int = attrs.field(
        default=4,
        validator=_field_check(
            "an int >= 1 (attempts per request, the first included; 1: no retries)",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        ),
    )
    initial_backoff: float = attrs.field(
        default=0.5, validator=_field_check(_SECONDS, _number_from(0))
    )
    max_backoff: float = attrs.field(default=8.0, validator=_field_check(_SECONDS, _number_from(0)))
    multiplier: float = attrs.field(
        default=2.0,
        validator=_field_check("a number >= 1", _number_from(1)),
    )
    jitter: float = attrs.field(
        default=1.0,
        validator=_field_check(
            "a number from 0 to 1 (0: no jitter, 1: full jitter)",
            _number_from(0, 1),
        ),
    )
    respect_retry_after: bool = attrs.field(
        default=True, validator=_field_check("True or False", lambda v: isinstance(v, bool))
    )
    max_retry_after: float = attrs.field(
        default=60.0, validator=_field_check(_SECONDS, _number_from(0))
    )
    retry_statuses: frozenset[int] = attrs.field(
        default=frozenset({500, 502, 503, 504}), converter=_statuses
    )

    def backoff(self, attempt: int, random: Callable[[], float]) -> float:
        """The wait before attempt ``attempt + 1`` after ``attempt`` failed (never sleeps).

        The base is ``initial_backoff * multiplier ** (attempt - 1)`` capped at ``max_backoff``;
        ``jitter`` of it is replaced by a uniform random share (``random()`` in [0, 1)).
        """
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter) + base * self.jitter * random()

    def may_retry_status(self, status: int) -> bool:
        """Whether an answer with ``status`` could be retried at all (429 or a retry status).

        Lets the transports skip building a ``RetryDecider`` for the common final answer.
        """
        return status == 429 or status in self.retry_statuses

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)


@attrs.define
class RetryDecider:
    """The decision core for one request: feed it outcomes, it says wait-and-resend or stop.

    Not thread-safe and not shared: one per request. Pure apart from its own counters.
    """

    policy: RetryPolicy
    operation: Operation | None
    method: str
    clock: Callable[[], float]
    random: Callable[[], float]
    attempt: int = 0
    request_ids: list[str] = attrs.field(factory=list[str])
    waited: float = 0.0
    #: Set when a 429's Retry-After (in seconds) exceeded max_retry_after, so it was not waited.
    capped_retry_after: float | None = None

    def _resend_safe(self) -> bool:
        if self.operation is not None:
            return self.operation.resend_safe
        # An operation unknown to the spec: fall back to the method's semantics (RFC 9110 9.2.2).
        return self.method in {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}

    def _room(self) -> bool:
        return self.attempt < self.policy.max_attempts

    def started(self) -> int:
        """Count a new attempt and return its number (1-based)."""
        self.attempt += 1
        return self.attempt

    def after_response(
        self, status: int, headers: httpx.Headers, request_id: str | None
    ) -> float | None:
        """Return the wait before resending, or None to hand this response to the caller."""
        if request_id:
            self.request_ids.append(request_id)
        if not self._room():
            return None
        if status == 429:
            if self.policy.respect_retry_after:
                hinted = parse_retry_after(headers.get(RETRY_AFTER_HEADER), self.clock())
                if hinted is not None:
                    if hinted > self.policy.max_retry_after:
                        self.capped_retry_after = hinted  # for the error's message
                        return None  # longer than we are willing to wait: raise at once
                    return self._wait(hinted)
            return self._wait(self.policy.backoff(self.attempt, self.random))
        if status in self.policy.retry_statuses and self._resend_safe():
            return self._wait(self.policy.backoff(self.attempt, self.random))
        return None

    def after_error(self, error: httpx.TransportError) -> float | None:
        """Return the wait before resending after a transport error, or None to raise it."""
        if not self._room() or any(final(error) for final in FINAL_ERRORS):
            return None
        if isinstance(error, NOT_SENT_ERRORS) or self._resend_safe():
            return self._wait(self.policy.backoff(self.attempt, self.random))
        return None

    def _wait(self, seconds: float) -> float:
        seconds = 0.0 if math.isnan(seconds) else max(0.0, seconds)
        self.waited += seconds
        return seconds


__all__ = [
    "ATTEMPT_IDS",
    "FINAL_ERRORS",
    "NOT_SENT_ERRORS",
    "PROXY_REFUSALS",
    "RETRY_AFTER_CAPPED",
    "RetryDecider",
    "RetryPolicy",
    "parse_retry_after",
    "proxy_status",
    "tls_verification_failure",
]
