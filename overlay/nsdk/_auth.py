"""The shells that execute the decision core: httpx ``Auth`` flows and the store steps.

They add nothing to the algorithms: they send what ``auth_steps`` yields, and run
``refresh_steps`` (inside the single-flight lock of this client, then the store's refresh critical
section), ``sign_in_steps`` and ``sign_out_steps`` against the token store. The async shell runs
every store call in a worker thread, so a lock wait or a file write never blocks the event loop.
Refresh is I/O under a lock, which is why they override ``sync_auth_flow`` and
``async_auth_flow`` (as the httpx docs describe for auth flows that do I/O).

A login or logout through ``client.api`` reaches the session here, in the auth flow, as the
overlay's own ``login()`` and ``logout()`` do: they send the same generated calls. The other
flavour's httpx client of ``client.api`` (async for a ``Client``, sync for an ``AsyncClient``)
sends through ``OtherFlavourTransport``, which refuses every request.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import httpx
from nsdk_api._operations import operation_for

from ._errors import ConfigurationError, NsdkError, TokenStoreError
from ._refresh import (
    ReadStore,
    SendRefresh,
    StoreClock,
    StoreStep,
    WriteStore,
    refresh_steps,
    sign_in_steps,
    sign_out_steps,
)
from ._session import Reload, SessionCore, SignIn, SignOut, auth_steps
from ._stores import TokenStore
from ._tokens import StoredSession, Tokens

logger = logging.getLogger("nsdk")

if TYPE_CHECKING:
    import asyncio  # imported when first needed: `import nsdk` stays free of asyncio

Steps = Generator[StoreStep, object, None]

#: Set while a shell sends its own refresh (``SendRefresh``, inside the store's critical
#: section): the one refresh ``auth_steps`` lets through. A context variable, so it marks only
#: the thread (sync) or task (async) that runs the refresh, never a concurrent caller's request.
_OWN_REFRESH: ContextVar[bool] = ContextVar("nsdk_own_refresh", default=False)


def _store_name(store: TokenStore) -> str:
    return type(store).__name__


def store_read(store: TokenStore) -> StoredSession:
    """``store.read()``, checked: a wrong value or a foreign exception becomes TokenStoreError."""
    try:
        value: object = store.read()
    except NsdkError:
        raise
    except Exception as exc:
        raise TokenStoreError(
            f"{_store_name(store)}.read() failed ({type(exc).__name__})", store=_store_name(store)
        ) from exc
    if not isinstance(value, StoredSession):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TokenStoreError(
            f"{_store_name(store)}.read() returned a {type(value).__name__}; it must return "
            "nsdk.StoredSession",
            store=_store_name(store),
        )
    return value


def store_now(store: TokenStore) -> float | None:
    """The store's clock (its optional ``now()``), or None when it keeps none."""
    now = getattr(store, "now", None)
    if now is None:
        return None
    try:
        value: object = now()
    except NsdkError:
        raise
    except Exception as exc:
        raise TokenStoreError(
            f"{_store_name(store)}.now() failed ({type(exc).__name__})", store=_store_name(store)
        ) from exc
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TokenStoreError(
            f"{_store_name(store)}.now() returned a {type(value).__name__}; it must return "
            "seconds since the epoch",
            store=_store_name(store),
        )
    return float(value)


def _store_write(store: TokenStore, step: WriteStore, lease: object | None) -> bool:
    try:
        written: object = store.compare_and_set(step.expected, step.new, lease)
    except NsdkError:
        raise
    except Exception as exc:
        raise TokenStoreError(
            f"{_store_name(store)}.compare_and_set() failed ({type(exc).__name__})",
            store=_store_name(store),
        ) from exc
    if not isinstance(written, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TokenStoreError(
            f"{_store_name(store)}.compare_and_set() returned a {type(written).__name__}; it "
            "must return True or False",
            store=_store_name(store),
        )
    return written


def _lock_failed(store: TokenStore, exc: Exception) -> TokenStoreError:
    return TokenStoreError(
        f"{_store_name(store)}.refresh_lock() failed ({type(exc).__name__})",
        store=_store_name(store),
    )


@contextlib.contextmanager
def _store_lock(store: TokenStore) -> Generator[object]:
    """The store's refresh critical section; a foreign error entering it is a TokenStoreError."""
    try:
        section = store.refresh_lock()
        lease = section.__enter__()
    except NsdkError:
        raise
    except Exception as exc:
        raise _lock_failed(store, exc) from exc
    try:
        yield lease
    finally:
        section.__exit__(None, None, None)


def _advance(steps: Steps, value: object, error: NsdkError | None) -> StoreStep | None:
    # The next step, given the last one's result or error; None when the algorithm is done.
    try:
        return steps.send(value) if error is None else steps.throw(error)
    except StopIteration:
        return None


def _skipped(error: TokenStoreError) -> None:
    logger.warning(
        "proactive refresh skipped, the access token is still valid and is sent: %s", error
    )


def _store_call(
    step: ReadStore | WriteStore | StoreClock, store: TokenStore, lease: object | None
) -> Callable[[], object]:
    # The store call a step asks for, ready to run here (sync) or in a worker thread (async).
    if isinstance(step, ReadStore):
        return lambda: store_read(store)
    if isinstance(step, WriteStore):
        return lambda: _store_write(store, step, lease)
    return lambda: store_now(store)


def run_steps(
    steps: Steps,
    store: TokenStore,
    send: Callable[[str], Tokens] | None,
    lease: object | None = None,
) -> None:
    """Execute store steps synchronously; errors of a step are thrown back into ``steps``."""
    value: object = None
    error: NsdkError | None = None
    while (step := _advance(steps, value, error)) is not None:
        value, error = None, None
        try:
            if not isinstance(step, SendRefresh):
                value = _store_call(step, store, lease)()
                continue
            assert send is not None, "a refresh step outside refresh_steps"
            mark = _OWN_REFRESH.set(True)
            try:
                value = send(step.refresh_token)
            finally:
                _OWN_REFRESH.reset(mark)
        except NsdkError as exc:
            error = exc


async def arun_steps(
    steps: Steps,
    store: TokenStore,
    send: Callable[[str], Awaitable[Tokens]] | None,
    lease: object | None = None,
) -> None:
    """Execute store steps from the event loop: store calls in a worker thread."""
    import asyncio

    value: object = None
    error: NsdkError | None = None
    while (step := _advance(steps, value, error)) is not None:
        value, error = None, None
        try:
            if not isinstance(step, SendRefresh):
                value = await asyncio.to_thread(_store_call(step, store, lease))
                continue
            assert send is not None, "a refresh step outside refresh_steps"
            mark = _OWN_REFRESH.set(True)
            try:
                value = await send(step.refresh_token)
            finally:
                _OWN_REFRESH.reset(mark)
        except NsdkError as exc:
            error = exc


class BearerAuth(httpx.Auth):
    """Bearer auth with single-flight refresh per session, for ``httpx.Client`` (threads)."""

    def __init__(
        self,
        core: SessionCore,
        origin: httpx.URL,
        store: TokenStore,
        refresh: Callable[[str], Tokens],
    ) -> None:
        self._core = core
        self._origin = origin
        self._store = store
        self._refresh = refresh
        self._refresh_lock = threading.Lock()  # single-flight refresh across this client's threads

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Run ``auth_steps`` for one request."""
        steps = auth_steps(self._core, request, self._origin, own_refresh=_OWN_REFRESH.get())
        try:
            step = next(steps)
            while True:
                if isinstance(step, httpx.Request):
                    response = yield step
                    step = steps.send(response)
                    continue
                if isinstance(step, Reload):
                    self.reload(quiet=True)
                elif isinstance(step, SignIn):
                    self.sign_in(step.tokens)
                elif isinstance(step, SignOut):
                    self.sign_out()
                else:
                    try:
                        self.refresh(step.stale)
                    except TokenStoreError as exc:
                        if not (step.proactive and self._core.usable(step.stale)):
                            raise
                        _skipped(exc)  # the token is still valid: send it
                step = steps.send(None)
        except StopIteration:
            return

    def refresh(self, stale: str) -> None:
        """Make sure the access token ``stale`` is replaced: once per session, not per client."""
        with self._refresh_lock:
            if self._core.replaced(stale):  # another thread of this client refreshed
                return
            with _store_lock(self._store) as lease:  # the session's critical section
                run_steps(refresh_steps(self._core, stale), self._store, self._refresh, lease)

    def sign_in(self, tokens: Tokens) -> None:
        """Store a login's pair and hold it."""
        run_steps(sign_in_steps(self._core, tokens), self._store, None)

    def sign_out(self) -> None:
        """Clear the stored session and the local one (local state even if the store fails)."""
        run_steps(sign_out_steps(self._core), self._store, None)

    def reload(self, *, quiet: bool = False) -> None:
        """Adopt what the store holds now (told that the session changed elsewhere).

        ``quiet``: only adopt a peer's pair when this client has no active session; never raise.
        """
        try:
            stored = store_read(self._store)
        except TokenStoreError as exc:
            if not quiet:
                raise
            logger.debug("no session here, and the token store cannot be read: %s", exc)
            return
        if quiet:
            self._core.reloaded(stored)
        else:
            self._core.follow(stored)

    def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Not supported: use ``AsyncBearerAuth`` with ``httpx.AsyncClient``."""
        raise RuntimeError("BearerAuth is for httpx.Client; use AsyncBearerAuth")


class AsyncBearerAuth(httpx.Auth):
    """Bearer auth with single-flight refresh per session, for ``httpx.AsyncClient`` (tasks)."""

    def __init__(
        self,
        core: SessionCore,
        origin: httpx.URL,
        store: TokenStore,
        refresh: Callable[[str], Awaitable[Tokens]],
    ) -> None:
        self._core = core
        self._origin = origin
        self._store = store
        self._refresh = refresh
        self._refresh_lock: asyncio.Lock | None = None  # single-flight across this client's tasks

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Run ``auth_steps`` for one request."""
        steps = auth_steps(self._core, request, self._origin, own_refresh=_OWN_REFRESH.get())
        try:
            step = next(steps)
            while True:
                if isinstance(step, httpx.Request):
                    response = yield step
                    step = steps.send(response)
                    continue
                if isinstance(step, Reload):
                    await self.reload(quiet=True)
                elif isinstance(step, SignIn):
                    await self.sign_in(step.tokens)
                elif isinstance(step, SignOut):
                    await self.sign_out()
                else:
                    try:
                        await self.refresh(step.stale)
                    except TokenStoreError as exc:
                        if not (step.proactive and self._core.usable(step.stale)):
                            raise
                        _skipped(exc)  # the token is still valid: send it
                step = steps.send(None)
        except StopIteration:
            return

    async def refresh(self, stale: str) -> None:
        """Make sure the access token ``stale`` is replaced: once per session, not per client."""
        import asyncio  # here, not at module level: sync users never pay for asyncio

        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:
            if self._core.replaced(stale):  # another task of this client refreshed
                return
            section = _store_lock(self._store)
            lease = await _enter_in_thread(section)
            try:
                await arun_steps(
                    refresh_steps(self._core, stale), self._store, self._refresh, lease
                )
            finally:
                await asyncio.to_thread(section.__exit__, None, None, None)

    async def sign_in(self, tokens: Tokens) -> None:
        """Store a login's pair and hold it."""
        await arun_steps(sign_in_steps(self._core, tokens), self._store, None)

    async def sign_out(self) -> None:
        """Clear the stored session and the local one (local state even if the store fails)."""
        await arun_steps(sign_out_steps(self._core), self._store, None)

    async def reload(self, *, quiet: bool = False) -> None:
        """Adopt what the store holds now (see ``BearerAuth.reload``)."""
        import asyncio

        try:
            stored = await asyncio.to_thread(store_read, self._store)
        except TokenStoreError as exc:
            if not quiet:
                raise
            logger.debug("no session here, and the token store cannot be read: %s", exc)
            return
        if quiet:
            self._core.reloaded(stored)
        else:
            self._core.follow(stored)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Not supported: use ``BearerAuth`` with ``httpx.Client``."""
        raise RuntimeError("AsyncBearerAuth is for httpx.AsyncClient; use BearerAuth")


class OtherFlavourTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The transport of the httpx client ``client.api`` must never use: refuses, sends nothing.

    A generated client builds the flavour it was not given on first use, as a plain httpx client:
    no bearer token, no refresh, no retry. So each shell gives it the other flavour too, sending
    through this transport: ``me.sync_detailed(client=async_client.api)`` (or
    ``me.asyncio_detailed(client=client.api)``) raises ``ConfigurationError`` naming the call to
    use, and no request leaves.
    """

    def __init__(self, owner: type, *, is_async: bool) -> None:
        self._owner = owner  # the overlay class whose methods the message may point to
        self._is_async = is_async  # the flavour of the client that owns client.api

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse: a sync call through an AsyncClient's ``client.api``."""
        raise self._refused(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse: an asyncio call through a Client's ``client.api``."""
        raise self._refused(request)

    def _refused(self, request: httpx.Request) -> ConfigurationError:
        op = operation_for(request)
        if self._is_async:
            owner, wrong, other, wait = "nsdk.AsyncClient", "synchronous", "nsdk.Client", "await "
            flavour, raw = "asyncio_detailed", "client.api.get_async_httpx_client()"
        else:
            owner, wrong, other, wait = "nsdk.Client", "asyncio", "nsdk.AsyncClient", ""
            flavour, raw = "sync_detailed", "client.api.get_httpx_client()"
        use = raw if op is None else f"{wait}{op.name}.{flavour}(client=client.api)"
        method = _method_call(self._owner, op.name) if op is not None else None
        if method is not None:
            use += f" or {wait}{method}"
        return ConfigurationError(
            f"client.api belongs to an {owner}: {wrong} calls through it would bypass the "
            f"session, so nothing was sent. Use {use} (for {wrong} code, create an {other})"
        )


def _method_call(owner: type, name: str) -> str | None:
    # How to call the client's own method for an operation (`client.me()`), if it has one.
    method = getattr(owner, name, None)
    if name.startswith("_") or not callable(method):
        return None
    import inspect  # on the error path only

    takes = [p for p in inspect.signature(method).parameters if p != "self"]
    return f"client.{name}({'...' if takes else ''})"


async def _enter_in_thread(section: AbstractContextManager[object]) -> object:
    """Enter a blocking context manager in a thread of its own, without leaking it on cancel.

    A thread of its own, not the loop's default executor: clients waiting for a lock must not
    take the workers that the lock's holder needs for its own store calls. If the waiting task
    is cancelled, the thread still finishes its wait, and leaves the section at once if it got
    in, so a cancelled waiter never keeps the lock.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    entered: asyncio.Future[object] = loop.create_future()

    def settle(value: object, error: BaseException | None) -> None:
        if entered.cancelled():
            if error is None:
                section.__exit__(None, None, None)
        elif error is not None:
            entered.set_exception(error)
        else:
            entered.set_result(value)

    def wait() -> None:
        value: object = None
        error: BaseException | None = None
        try:
            value = section.__enter__()
        except BaseException as exc:  # delivered to the waiting task
            error = exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop is closed: nobody will use the section
            if error is None:
                section.__exit__(None, None, None)

    threading.Thread(target=wait, name="nsdk-store-lock", daemon=True).start()
    return await entered


__all__ = [
    "AsyncBearerAuth",
    "BearerAuth",
    "OtherFlavourTransport",
    "arun_steps",
    "run_steps",
    "store_now",
    "store_read",
]
