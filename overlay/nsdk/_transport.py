"""Sync and async transports that retry per ``RetryPolicy``: thin shells over ``RetryDecider``.

They wrap the real httpx transport, so every request (overlay methods and generated calls made
through ``client.api`` alike) gets the same backoff. The shells only send, read, sleep and close;
what follows from each outcome is ``_Attempts``' (shared by both), and in the end
``RetryDecider``'s. httpx transport errors that end the loop are translated here, at one
boundary, into ``APIConnectionError`` / ``APITimeoutError`` (``TLSVerificationError``,
``ProxyError``), with what only this loop knows: the operation, the URL, the proxy, the attempts,
the time they took and the request ids of the answered ones.

``build_transports`` builds what httpx's ``Client`` would (the direct transport, and one per
proxy mounted by URL pattern) and wraps every one of them in a shell, so a proxied request is
retried and signed exactly as a direct one.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, Self, TypeVar, cast

import attrs
import httpx
from nsdk_api._operations import REQUEST_ID_HEADER, operation_for

from ._errors import ConfigurationError, NsdkError, display_url, from_transport
from ._network import Network
from ._retry import ATTEMPT_IDS, RETRY_AFTER_CAPPED, RetryDecider, RetryPolicy

logger = logging.getLogger("nsdk")


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


class _Attempts:
    """One request's attempts: each outcome goes to the decider and the log (for both shells).

    The common case, a first answer that no policy retries, is settled without building a
    ``RetryDecider``; its response carries no ATTEMPT_IDS (its own request id header is the one).
    """

    __slots__ = (
        "_clock",
        "_decider",
        "_policy",
        "_proxy",
        "_random",
        "_started",
        "attempt",
        "request",
    )

    def __init__(
        self,
        request: httpx.Request,
        policy: RetryPolicy,
        clock: Callable[[], float],
        random: Callable[[], float],
        proxy: str | None,
    ) -> None:
        self.request = request
        self.attempt = 1
        self._proxy = proxy  # the proxy's URL without credentials, when sent through one
        self._policy = policy
        self._clock = clock
        self._random = random
        self._decider: RetryDecider | None = None
        self._started = clock()  # for the time spent, named when the attempts fail

    def _get_decider(self) -> RetryDecider:
        if self._decider is None:
            self._decider = RetryDecider(
                policy=self._policy,
                operation=operation_for(self.request),
                method=self.request.method,
                clock=self._clock,
                random=self._random,
                attempt=self.attempt,
            )
        return self._decider

    def resending(self) -> None:
        """Count the next attempt."""
        self.attempt = self._get_decider().started()

    def after_response(self, response: httpx.Response) -> float | None:
        """The wait before resending, or None: hand ``response`` (its body read) to the caller."""
        if response.status_code == 407 and self._proxy is not None:
            # Only a proxy answers 407: here to a plain http:// request it would have forwarded.
            # Judged and worded as its 407 to CONNECT is (the API never saw the request).
            refused = httpx.ProxyError(f"407 {response.reason_phrase}", request=self.request)
            return self.after_error(refused)
        if self._decider is None and not self._policy.may_retry_status(response.status_code):
            if logger.isEnabledFor(logging.DEBUG):
                rid = response.headers.get(REQUEST_ID_HEADER)
                _log(self.request, 1, str(response.status_code), rid, None)
            return None
        decider = self._get_decider()
        rid = response.headers.get(REQUEST_ID_HEADER)
        wait = decider.after_response(response.status_code, response.headers, rid)
        _log(self.request, self.attempt, str(response.status_code), rid, wait)
        if wait is None:
            extensions = {**response.extensions, ATTEMPT_IDS: tuple(decider.request_ids)}
            if decider.capped_retry_after is not None:
                capped = (decider.capped_retry_after, self._policy.max_retry_after)
                extensions[RETRY_AFTER_CAPPED] = capped
            response.extensions = extensions
        return wait

    def after_error(self, error: httpx.TransportError) -> float:
        """The wait before resending after a transport error; raise the nsdk error when done."""
        wait = self._get_decider().after_error(error)
        _log(self.request, self.attempt, type(error).__name__, None, wait)
        if wait is None:
            raise self.failed(error) from error
        return wait

    def failed(self, error: httpx.HTTPError, response: httpx.Response | None = None) -> NsdkError:
        """The nsdk error for ``error`` ending these attempts (``response``: one not decodable)."""
        operation = operation_for(self.request)
        ids = list(self._decider.request_ids) if self._decider is not None else []
        rid = response.headers.get(REQUEST_ID_HEADER) if response is not None else None
        if rid:
            ids.append(rid)
        url = self.request.url
        # httpx puts {"connect": s, "read": s, "write": s, "pool": s} on every request it sends.
        timeouts = cast("Mapping[str, float | None] | None", self.request.extensions.get("timeout"))
        return from_transport(
            error,
            operation.name if operation is not None else _what(self.request),
            operation=operation.name if operation is not None else None,
            method=self.request.method,
            # Scheme, host, port and path: never the query (it could carry a secret).
            url=f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}",
            attempts=self.attempt,
            elapsed=max(0.0, self._clock() - self._started),
            request_id=rid,
            attempt_request_ids=ids,
            timeouts=timeouts,
            proxy=self._proxy,
        )


class _Shell:
    """What both transports hold: the policy, the injected clock and randomness, the hook."""

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Callable[[], float],
        random: Callable[[], float],
        before_resend: Callable[[httpx.Request], None] | None,
        proxy: str | None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._random = random
        self._before_resend = before_resend  # e.g. put the current bearer token on the request
        self._proxy = proxy if proxy is None else display_url(proxy)  # never its credentials
        self._borrowed = False  # a with_policy view: the connections are another shell's

    def with_policy(self, policy: RetryPolicy) -> Self:
        """This shell with another retry policy over the same connections (``with_options``).

        Closing the view leaves the connections open: they close with the shell they came from.
        """
        view = copy.copy(self)
        view._policy = policy
        view._borrowed = True
        return view

    @property
    def proxy(self) -> str | None:
        """The URL of the proxy this transport sends through (no credentials), or None."""
        return self._proxy

    def _attempts(self, request: httpx.Request) -> _Attempts:
        return _Attempts(request, self._policy, self._clock, self._random, self._proxy)

    def _resending(self, attempts: _Attempts) -> None:
        attempts.resending()
        if self._before_resend is not None:
            self._before_resend(attempts.request)


def _check_sleep(sleep: object, like: str) -> None:
    # The clients' own arguments, checked here: the shells are where they arrive.
    if not callable(sleep):
        raise ConfigurationError(
            f"sleep must be a callable taking seconds (like {like}), or None, got {_got(sleep)}"
        )


def _got(value: object) -> str:
    # Plain numbers as they are, anything else by type (a transport or sleep is never echoed).
    simple = value is None or isinstance(value, bool | int | float)
    return repr(value) if simple else type(value).__name__


class RetryTransport(_Shell, httpx.BaseTransport):
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
        proxy: str | None = None,
    ) -> None:
        if not isinstance(inner, httpx.BaseTransport):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                "transport must be an httpx.BaseTransport (e.g. httpx.HTTPTransport or "
                f"httpx.MockTransport), or None, got {_got(inner)}"
            )
        _check_sleep(sleep, "time.sleep")
        super().__init__(policy, clock, random, before_resend, proxy)
        self._inner = inner
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, resending while the decider says so."""
        attempts = self._attempts(request)
        while True:
            wait: float | None
            response: httpx.Response | None = None
            try:
                response = self._inner.handle_request(request)
                # Read here, inside the retry boundary: a body cut short is a transport
                # failure the decider can judge, and a decoding error is translated here.
                response.read()
            except httpx.DecodingError as exc:
                if response is not None:
                    response.close()
                raise attempts.failed(exc, response) from exc
            except httpx.TransportError as exc:
                wait = attempts.after_error(exc)
            else:
                wait = attempts.after_response(response)
                if wait is None:
                    return response
                response.close()
            self._sleep(wait)
            self._resending(attempts)

    def close(self) -> None:
        """Close the wrapped transport (unless it is borrowed: see ``with_policy``)."""
        if not self._borrowed:
            self._inner.close()


class AsyncRetryTransport(_Shell, httpx.AsyncBaseTransport):
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
        proxy: str | None = None,
    ) -> None:
        if not isinstance(inner, httpx.AsyncBaseTransport):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                "transport must be an httpx.AsyncBaseTransport for AsyncClient (e.g. "
                "httpx.AsyncHTTPTransport or httpx.MockTransport), or None, "
                f"got {_got(inner)}"
            )
        if sleep is time.sleep:  # type: ignore[comparison-overlap]
            raise ConfigurationError(
                "sleep must return an awaitable for AsyncClient (like asyncio.sleep), "
                "got time.sleep, which would block the event loop"
            )
        _check_sleep(sleep, "asyncio.sleep")
        super().__init__(policy, clock, random, before_resend, proxy)
        self._inner = inner
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, resending while the decider says so."""
        attempts = self._attempts(request)
        while True:
            wait: float | None
            response: httpx.Response | None = None
            try:
                response = await self._inner.handle_async_request(request)
                await response.aread()  # inside the retry boundary, as in the sync shell
            except httpx.DecodingError as exc:
                if response is not None:
                    await response.aclose()
                raise attempts.failed(exc, response) from exc
            except httpx.TransportError as exc:
                wait = attempts.after_error(exc)
            else:
                wait = attempts.after_response(response)
                if wait is None:
                    return response
                await response.aclose()
            pause = self._sleep(wait)
            if not hasattr(pause, "__await__"):  # e.g. a sync sleep: it already blocked
                raise ConfigurationError(
                    "sleep must return an awaitable for AsyncClient (like asyncio.sleep), "
                    f"got {_got(pause)} from it"
                )
            await pause
            self._resending(attempts)

    async def aclose(self) -> None:
        """Close the wrapped transport (unless it is borrowed: see ``with_policy``)."""
        if not self._borrowed:
            await self._inner.aclose()


_Inner = TypeVar("_Inner")  # an httpx transport, sync or async
_Outer = TypeVar("_Outer")  # the shell around it
_View = TypeVar("_View")


@attrs.frozen
class Transports(Generic[_Outer]):
    """A client's transports, as httpx's ``transport=`` and ``mounts=`` take them.

    Attributes:
        direct: The transport for every URL no mount matches.
        mounts: URL pattern (``"https://"``, ``"all://*.example.com"``) to the transport for it;
            None sends those URLs through ``direct`` (a ``NO_PROXY`` entry).
    """

    direct: _Outer
    mounts: Mapping[str, _Outer | None]

    def map(self, view: Callable[[_Outer], _View]) -> Transports[_View]:
        """The same layout with ``view`` of each transport (a ``with_options`` view's shells)."""
        mounts = {k: None if t is None else view(t) for k, t in self.mounts.items()}
        return Transports(view(self.direct), mounts)


def build_transports(
    network: Network | None,
    given: _Inner | None,
    make: Callable[..., _Inner],
    wrap: Callable[[_Inner, str | None], _Outer],
) -> Transports[_Outer]:
    """The transports httpx's Client would build (``_init_transport``, one per proxy), wrapped.

    Args:
        network: The client's network settings; None when the caller gave ``given``.
        given: The caller's ``transport=``, used as it is (then, as in httpx, no proxies from
            the environment).
        make: ``httpx.HTTPTransport`` or ``httpx.AsyncHTTPTransport``.
        wrap: Builds the retry shell around a transport, given the proxy URL it goes through
            (credentials removed).
    """
    if network is None:
        if given is None:  # pragma: no cover - ClientConfig builds a Network without transport=
            raise AssertionError("no transport and no network settings")
        return Transports(wrap(given, None), {})
    mounts = {
        pattern: None
        if proxy is None
        else wrap(make(proxy=proxy, **network.options), display_url(proxy.url))
        for pattern, proxy in network.proxies.items()
    }
    return Transports(wrap(make(**network.options), None), mounts)


__all__ = ["AsyncRetryTransport", "RetryTransport", "Transports", "build_transports"]
