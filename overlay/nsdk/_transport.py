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

#: Response extension listing the request ids of every attempt, oldest first.
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
    return RetryDecider(
        policy=policy,
        operation=operation_for(request),
        method=request.method,
        clock=clock,
        random=random,
    )


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
        decider = _decider(request, self._policy, self._clock, self._random)
        while True:
            attempt = decider.started()
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
                wait = decider.after_error(exc)
                _log(request, attempt, type(exc).__name__, None, wait)
                if wait is None:
                    raise from_transport(exc, _what(request)) from exc
            else:
                rid = response.headers.get(REQUEST_ID_HEADER)
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
        decider = _decider(request, self._policy, self._clock, self._random)
        while True:
            attempt = decider.started()
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
                wait = decider.after_error(exc)
                _log(request, attempt, type(exc).__name__, None, wait)
                if wait is None:
                    raise from_transport(exc, _what(request)) from exc
            else:
                rid = response.headers.get(REQUEST_ID_HEADER)
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
