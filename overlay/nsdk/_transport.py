"""Sync and async transports that retry per ``RetryPolicy``: thin shells over ``RetryDecider``.

They wrap the real httpx transport, so every request (overlay methods and generated calls made
through ``client.api`` alike) gets the same backoff. They only send, sleep and log; every decision
is ``RetryDecider``'s. httpx transport errors that end the loop are translated here, at one
boundary, into ``APIConnectionError`` / ``APITimeoutError``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
from nsdk_api._operations import REQUEST_ID_HEADER, operation_for

from ._errors import from_transport
from ._retry import RetryDecider, RetryPolicy

logger = logging.getLogger("nsdk")

#: Response extension listing the request ids of every attempt, oldest first (set when the
#: retry policy had to decide; a first answer that nothing retries carries none).
ATTEMPT_IDS = "nsdk_attempt_request_ids"


def _what(request: httpx.Request) -> str:
    # The path only: a query string could carry a secret.
    return f"{request.method} {request.url.path}"


def _log(
    request: httpx.Request, attempt: int, outcome: str, rid: str | None, wait: float | None
) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s attempt=%d -> %s request_id=%s%s",
            _what(request),
            attempt,
            outcome,
            rid or "-",
            "" if wait is None else f" retry_in={wait:.3f}s",
        )


def _decider(
    request: httpx.Request,
    policy: RetryPolicy,
    clock: Callable[[], float],
    random: Callable[[], float],
) -> RetryDecider:
    # Built on the first outcome that needs a decision (the decider counts that attempt).
    return RetryDecider(
        policy=policy,
        operation=operation_for(request),
        method=request.method,
        clock=clock,
        random=random,
        attempt=1,
    )


def _first_and_final(policy: RetryPolicy, request: httpx.Request, response: httpx.Response) -> bool:
    """The common case, settled without a decider: a first answer that no policy retries.

    Its response gets no ATTEMPT_IDS (a single attempt's id is its own request id header).
    """
    if policy.may_retry_status(response.status_code):
        return False
    if logger.isEnabledFor(logging.DEBUG):
        rid = response.headers.get(REQUEST_ID_HEADER)
        _log(request, 1, str(response.status_code), rid, None)
    return True


class RetryTransport(httpx.BaseTransport):
    """An httpx transport that resends per the retry policy (sync shell)."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        random: Callable[[], float],
        before_resend: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._before_resend = before_resend  # e.g. put the current bearer token on the request

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, resending while the decider says so."""
        decider: RetryDecider | None = None
        while True:
            attempt = 1 if decider is None else decider.started()
            response: httpx.Response | None = None
            try:
                response = self._inner.handle_request(request)
                # Read here, inside the retry boundary: a body cut short is a transport
                # failure the decider can judge, and a decoding error is translated here.
                response.read()
            except httpx.DecodingError as exc:
                if response is not None:
                    response.close()
                raise from_transport(exc, _what(request)) from exc
            except httpx.TransportError as exc:
                decider = decider or _decider(request, self._policy, self._clock, self._random)
                wait = decider.after_error(exc)
                _log(request, attempt, type(exc).__name__, None, wait)
                if wait is None:
                    raise from_transport(exc, _what(request)) from exc
            else:
                if decider is None and _first_and_final(self._policy, request, response):
                    return response
                rid = response.headers.get(REQUEST_ID_HEADER)
                decider = decider or _decider(request, self._policy, self._clock, self._random)
                wait = decider.after_response(response.status_code, response.headers, rid)
                _log(request, attempt, str(response.status_code), rid, wait)
                if wait is None:
                    response.extensions = {
                        **response.extensions,
                        ATTEMPT_IDS: tuple(decider.request_ids),
                    }
                    return response
                response.close()
            self._sleep(wait)
            if self._before_resend is not None:
                self._before_resend(request)

    def close(self) -> None:
        """Close the wrapped transport."""
        self._inner.close()


class AsyncRetryTransport(httpx.AsyncBaseTransport):
    """An httpx transport that resends per the retry policy (async shell)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        random: Callable[[], float],
        before_resend: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._before_resend = before_resend  # e.g. put the current bearer token on the request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, resending while the decider says so."""
        decider: RetryDecider | None = None
        while True:
            attempt = 1 if decider is None else decider.started()
            response: httpx.Response | None = None
            try:
                response = await self._inner.handle_async_request(request)
                # Read here, inside the retry boundary: a body cut short is a transport
                # failure the decider can judge, and a decoding error is translated here.
                await response.aread()
            except httpx.DecodingError as exc:
                if response is not None:
                    await response.aclose()
                raise from_transport(exc, _what(request)) from exc
            except httpx.TransportError as exc:
                decider = decider or _decider(request, self._policy, self._clock, self._random)
                wait = decider.after_error(exc)
                _log(request, attempt, type(exc).__name__, None, wait)
                if wait is None:
                    raise from_transport(exc, _what(request)) from exc
            else:
                if decider is None and _first_and_final(self._policy, request, response):
                    return response
                rid = response.headers.get(REQUEST_ID_HEADER)
                decider = decider or _decider(request, self._policy, self._clock, self._random)
                wait = decider.after_response(response.status_code, response.headers, rid)
                _log(request, attempt, str(response.status_code), rid, wait)
                if wait is None:
                    response.extensions = {
                        **response.extensions,
                        ATTEMPT_IDS: tuple(decider.request_ids),
                    }
                    return response
                await response.aclose()
            await self._sleep(wait)
            if self._before_resend is not None:
                self._before_resend(request)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


__all__ = ["ATTEMPT_IDS", "AsyncRetryTransport", "RetryTransport"]
