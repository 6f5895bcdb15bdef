"""The httpx ``Auth`` shells that execute ``auth_steps``: sync (threads) and async (tasks).

They add nothing to the algorithm: they send what it yields and run the single-flight refresh
when it asks. Refresh is I/O under a lock, which is why they override ``sync_auth_flow`` and
``async_auth_flow`` (as the httpx docs describe for auth flows that do I/O).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING

import httpx

from ._errors import AuthenticationError, BadRequestError, MalformedResponseError, NsdkError
from ._session import SessionCore, auth_steps
from ._tokens import Tokens

if TYPE_CHECKING:
    import asyncio  # imported when first needed: `import nsdk` stays free of asyncio

#: Refresh outcomes that are definitive: the refresh token is dead, so the session fails closed.
#: (A 200 whose body cannot be parsed is included: the server rotated and the new pair is lost.)
DEFINITIVE_REFUSALS: tuple[type[NsdkError], ...] = (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
)


class BearerAuth(httpx.Auth):
    """Bearer auth with single-flight refresh, for ``httpx.Client`` (thread-safe)."""

    def __init__(
        self,
        core: SessionCore,
        origin: httpx.URL,
        refresh: Callable[[str], Tokens],
    ) -> None:
        self._core = core
        self._origin = origin
        self._refresh = refresh
        self._refresh_lock = threading.Lock()  # single-flight refresh across threads

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Run ``auth_steps`` for one request."""
        steps = auth_steps(self._core, request, self._origin)
        response: httpx.Response | None = None
        try:
            step = next(steps)
            while True:
                if isinstance(step, httpx.Request):
                    response = yield step
                else:
                    self.refresh(step.stale)
                    response = None
                step = steps.send(response)
        except StopIteration:
            return

    def refresh(self, stale: str) -> None:
        """Make sure the access token ``stale`` is replaced: single-flight across threads."""
        with self._refresh_lock:
            refresh_token = self._core.refresh_token_for(stale)  # re-check under the lock
            if refresh_token is None:
                return
            try:
                tokens = self._refresh(refresh_token)
            except DEFINITIVE_REFUSALS as exc:
                raise self._core.refresh_refused(exc) from exc
            self._core.refreshed(tokens)

    def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Not supported: use ``AsyncBearerAuth`` with ``httpx.AsyncClient``."""
        raise RuntimeError("BearerAuth is for httpx.Client; use AsyncBearerAuth")


class AsyncBearerAuth(httpx.Auth):
    """Bearer auth with single-flight refresh, for ``httpx.AsyncClient`` (task-safe)."""

    def __init__(
        self,
        core: SessionCore,
        origin: httpx.URL,
        refresh: Callable[[str], Awaitable[Tokens]],
    ) -> None:
        self._core = core
        self._origin = origin
        self._refresh = refresh
        self._refresh_lock: asyncio.Lock | None = None  # single-flight refresh across tasks

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Run ``auth_steps`` for one request."""
        steps = auth_steps(self._core, request, self._origin)
        response: httpx.Response | None = None
        try:
            step = next(steps)
            while True:
                if isinstance(step, httpx.Request):
                    response = yield step
                else:
                    await self.refresh(step.stale)
                    response = None
                step = steps.send(response)
        except StopIteration:
            return

    async def refresh(self, stale: str) -> None:
        """Make sure the access token ``stale`` is replaced: single-flight across tasks."""
        if self._refresh_lock is None:
            import asyncio  # here, not at module level: sync users never pay for asyncio

            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:
            refresh_token = self._core.refresh_token_for(stale)  # re-check under the lock
            if refresh_token is None:
                return
            try:
                tokens = await self._refresh(refresh_token)
            except DEFINITIVE_REFUSALS as exc:
                raise self._core.refresh_refused(exc) from exc
            self._core.refreshed(tokens)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Not supported: use ``BearerAuth`` with ``httpx.Client``."""
        raise RuntimeError("AsyncBearerAuth is for httpx.AsyncClient; use BearerAuth")


__all__ = ["DEFINITIVE_REFUSALS", "AsyncBearerAuth", "BearerAuth"]
