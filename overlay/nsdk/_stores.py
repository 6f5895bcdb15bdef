"""Where a session lives: the ``TokenStore`` protocol, the memory store, the 0.1 store adapter.

A store is the coordination point of every client that shares a session. It offers four
primitives and no policy (the refresh algorithm is ``_refresh.refresh_steps``, once):

* ``read()``: a consistent snapshot, ``StoredSession`` (pair, generation, refresh in flight);
* ``compare_and_set(expected, new, lease)``: write ``new`` only if the stored generation is still
  ``expected`` (the fencing step); return whether it was written;
* ``refresh_lock()``: the refresh critical section, a context manager whose wait is bounded
  (``TokenStoreBusyError`` when it times out); what it yields is passed back as ``lease`` to the
  writes made inside it (a Redis store checks it; the memory and file stores ignore it);
* optionally ``now()``: the store's clock (seconds since the epoch), for stores shared by hosts
  whose clocks may disagree: refresh records and proactive refresh then use the store's time.

Stores written for nsdk 0.1 (``load``/``save``/``clear``) keep working through an adapter that
coordinates the clients of one process; sharing across processes needs a store with the
primitives above (``FileTokenStore``).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import weakref
from collections.abc import Generator
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from ._errors import ConfigurationError, TokenStoreBusyError, TokenStoreError
from ._tokens import StoredSession, Tokens

#: How long a client waits for another client's refresh by default (seconds).
DEFAULT_LOCK_TIMEOUT = 30.0


@runtime_checkable
class TokenStore(Protocol):
    """Where clients keep and coordinate a session. All methods must be safe from many threads.

    Examples:
        A store over a database table with one row per session (sketch):

            class RowStore:
                def read(self) -> nsdk.StoredSession:
                    return decode(db.fetch("SELECT * FROM session WHERE id = ?", key))

                def compare_and_set(self, expected, new, lease=None) -> bool:
                    cur = db.execute(
                        "UPDATE session SET generation = ?, data = ? "
                        "WHERE id = ? AND generation = ?",
                        (new.generation, encode(new), key, expected),
                    )
                    return cur.rowcount == 1

                def refresh_lock(self):
                    return db_advisory_lock(key, timeout=30)  # raise TokenStoreBusyError on timeout
    """

    def read(self) -> StoredSession:
        """Return a consistent snapshot of the stored session (generation 0 if never written)."""
        ...

    def compare_and_set(
        self, expected: int, new: StoredSession, lease: object | None = None
    ) -> bool:
        """Atomically store ``new`` if the stored generation is ``expected``; return whether."""
        ...

    def refresh_lock(self) -> AbstractContextManager[object]:
        """The refresh critical section (bounded wait; ``TokenStoreBusyError`` on timeout)."""
        ...


@runtime_checkable
class BasicTokenStore(Protocol):
    """The three-method store protocol of nsdk 0.1, still accepted (coordinated per process).

    Examples:
        A store that persists the pair in an application's keyring:

            class KeyringStore:
                def load(self) -> nsdk.Tokens | None: ...
                def save(self, tokens: nsdk.Tokens) -> None: ...
                def clear(self) -> None: ...
    """

    def load(self) -> Tokens | None:
        """Return the stored tokens, or None."""
        ...

    def save(self, tokens: Tokens) -> None:
        """Store ``tokens``, replacing what was there."""
        ...

    def clear(self) -> None:
        """Forget the stored tokens."""
        ...


class _Record:
    """One in-memory record with its write lock and refresh lock (memory store and adapter)."""

    def __init__(self, tokens: Tokens | None, lock_timeout: float, name: str) -> None:
        if not lock_timeout > 0:
            raise ConfigurationError(f"lock_timeout must be positive, got {lock_timeout!r}")
        self.value = StoredSession(1 if tokens is not None else 0, tokens)
        self.write_lock = threading.Lock()  # makes compare-and-set atomic
        self._refresh = threading.Lock()  # the refresh critical section
        self._timeout = lock_timeout
        self._name = name

    @contextlib.contextmanager
    def refresh_lock(self) -> Generator[None]:
        # A plain Lock, not an RLock: the async client enters and leaves it from worker threads.
        if not self._refresh.acquire(timeout=self._timeout):
            raise TokenStoreBusyError(
                f"{self._name}: another client held the session's refresh lock for more than "
                f"{self._timeout:g} s; retry, or raise lock_timeout",
                store=self._name,
            )
        try:
            yield None
        finally:
            self._refresh.release()


class MemoryTokenStore:
    """The default store: the session lives in this process's memory.

    Share one store between clients (threads, tasks, sync and async) and they share one session:
    one refresh per expiry, whoever notices it first.

    Args:
        tokens: A pair to start with (e.g. from the application's own storage).
        lock_timeout: How long a client waits for another client's refresh (seconds).

    Examples:
        Two clients, one session:

            store = nsdk.MemoryTokenStore()
            first = nsdk.Client(url, token_store=store)
            first.login(email=email, password=password)
            second = nsdk.Client(url, token_store=store)
            second.me()  # signed in; a refresh by either is adopted by the other

        >>> store = MemoryTokenStore(Tokens(access_token="a.b.c", refresh_token="r"))
        >>> store
        MemoryTokenStore(generation=1, holding_tokens=True)
    """

    def __init__(
        self, tokens: Tokens | None = None, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> None:
        self._record = _Record(tokens, lock_timeout, self._store_name())

    def _store_name(self) -> str:
        # The name errors give the store (the adapter names the store it adapts).
        return "MemoryTokenStore"

    @property
    def tokens(self) -> Tokens | None:
        """The stored pair, or None."""
        return self._record.value.tokens

    def read(self) -> StoredSession:
        """Return the stored session."""
        return self._record.value

    def compare_and_set(
        self, expected: int, new: StoredSession, lease: object | None = None
    ) -> bool:
        """Store ``new`` if the stored generation is ``expected``."""
        with self._record.write_lock:
            old = self._record.value
            if old.generation != expected:
                return False
            self._written(old, new)
            self._record.value = new
            return True

    def _written(self, old: StoredSession, new: StoredSession) -> None:
        # Called under the write lock before ``new`` is recorded (the adapter writes through).
        return None

    def refresh_lock(self) -> AbstractContextManager[object]:
        """The refresh critical section (threads and tasks of this process)."""
        return self._record.refresh_lock()

    def __repr__(self) -> str:
        value = self._record.value
        return (
            f"MemoryTokenStore(generation={value.generation}, "
            f"holding_tokens={value.tokens is not None})"
        )


class BasicStoreAdapter(MemoryTokenStore):
    """A ``TokenStore`` over a 0.1-style ``load``/``save``/``clear`` store (one process).

    The session is coordinated in memory, for the clients of this process that share the store
    object; every change of the pair is written through with ``save`` or ``clear``.
    """

    def __init__(self, basic: BasicTokenStore, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self._basic = basic
        self._name = type(basic).__name__
        loaded: object = basic.load()
        if loaded is not None and not isinstance(loaded, Tokens):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TokenStoreError(
                f"{self._name}.load() returned a {type(loaded).__name__}; it must return "
                "nsdk.Tokens or None",
                store=self._name,
            )
        super().__init__(loaded, lock_timeout=lock_timeout)

    def _store_name(self) -> str:
        return self._name

    def _written(self, old: StoredSession, new: StoredSession) -> None:
        if new.tokens is not old.tokens:
            if new.tokens is None:
                self._basic.clear()
            else:
                self._basic.save(new.tokens)

    def __repr__(self) -> str:
        return f"BasicStoreAdapter({self._name})"


_NEW = ("read", "compare_and_set", "refresh_lock")
_BASIC = ("load", "save", "clear")
# One adapter per 0.1 store object, so clients sharing that object share one coordination.
_adapters: weakref.WeakKeyDictionary[object, BasicStoreAdapter] = weakref.WeakKeyDictionary()
_adapters_lock = threading.Lock()


def _check_methods(store: object, names: tuple[str, ...]) -> None:
    for name in names:
        method = getattr(store, name)
        if not callable(method):
            raise ConfigurationError(f"token_store.{name} is not callable")
        if inspect.iscoroutinefunction(method):
            raise ConfigurationError(
                f"token_store.{name} is a coroutine function; token stores are synchronous "
                "(the async client runs them in a worker thread)"
            )


def as_token_store(store: object) -> TokenStore:
    """Validate ``token_store=`` and return the ``TokenStore`` the client uses.

    Raises:
        ConfigurationError: The object has neither the store methods nor the 0.1 ones, or they
            are coroutine functions.
    """
    if all(hasattr(store, name) for name in _NEW):
        _check_methods(store, _NEW)
        return store  # type: ignore[return-value]  # checked above, method by method
    if all(hasattr(store, name) for name in _BASIC):
        _check_methods(store, _BASIC)
        with _adapters_lock:
            try:
                adapter = _adapters.get(store)
            except TypeError:  # not weak-referenceable: an adapter per client
                return BasicStoreAdapter(store)  # type: ignore[arg-type]
            if adapter is None:
                adapter = BasicStoreAdapter(store)  # type: ignore[arg-type]
                _adapters[store] = adapter
            return adapter
    raise ConfigurationError(
        f"token_store must implement nsdk.TokenStore ({', '.join(_NEW)}) or the 0.1 protocol "
        f"({', '.join(_BASIC)}); got {type(store).__name__}"
    )


__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "BasicStoreAdapter",
    "BasicTokenStore",
    "MemoryTokenStore",
    "TokenStore",
    "as_token_store",
]
