"""``RedisTokenStore``: one session for the processes of many hosts, in Redis.

* The session is one hash (``gen``: the generation, ``data``: the serialized session, sealed when
  a cipher is given). ``read`` is one ``HMGET``.
* The refresh critical section is a lease: ``SET <key>:lease <owner> NX PX <ttl>`` with a random
  owner, extended from a thread while the refresh is in flight, released by a script that checks
  the owner. Its expiry is measured by Redis, so hosts with skewed clocks agree; so is ``now()``
  (``TIME``), which the clients use for refresh records and proactive refresh.
* The fencing step is one Lua script: write only if the lease is still ours (when written under
  it) and the generation is the one we read; a holder paused past its lease is fenced off.
* Redis unreachable or timing out: ``TokenStoreUnavailableError`` (retryable); a still-valid
  access token keeps working, since calls never touch the store.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from ._cipher import checked_cipher
from ._codec import encode_session, open_session, seal_session
from ._errors import (
    ConfigurationError,
    NsdkError,
    TokenStoreBusyError,
    TokenStoreCorruptError,
    TokenStoreError,
    TokenStoreUnavailableError,
)
from ._stores import DEFAULT_LOCK_TIMEOUT
from ._tokens import StoredSession

if TYPE_CHECKING:
    import redis

    from ._cipher import TokenCipher

T = TypeVar("T")

#: KEYS: session, lease. ARGV: expected generation, new generation, data, owner ("" outside a
#: lease). Returns 1 written, 0 the generation moved on, -1 the lease is no longer ours.
_COMPARE_AND_SET = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then return -1 end
local current = redis.call('HGET', KEYS[1], 'gen')
if (current or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'data', ARGV[3])
return 1
"""
#: KEYS: lease. ARGV: owner, ttl in ms. Extends the lease only if it is still ours.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
#: KEYS: lease. ARGV: owner. Releases the lease only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_REMEDY = "delete the key (redis-cli DEL) and sign in again"


class RedisTokenStore:
    """A session shared by every process of every host that reaches one Redis.

    Needs the ``redis`` extra: ``pip install 'nsdk[redis]'`` (redis-py). The async client runs
    the store's calls in worker threads, so one synchronous redis-py client serves both.

    Args:
        connection: A ``redis://`` or ``rediss://`` URL (``redis://:password@host:6379/0``, or
            with an ACL user ``redis://user:password@host``), or an existing ``redis.Redis``.
        key: The Redis key that names the session (the lease is ``<key>:lease``). Behind a
            cluster proxy, give it a hash tag (``{myapp}:session``) so both keys share a slot;
            a ``RedisCluster`` client is not supported.
        lock_timeout: How long a client waits for another host's refresh (seconds); past it,
            ``TokenStoreBusyError``.
        lease_ttl: The lease's lifetime (seconds): longer than a refresh can take (the default
            timeout, 10 s read and 5 s connect, plus a margin), and extended every third of it
            while the refresh is in flight. If its holder dies, another host takes over once it
            expires: to survive that, the server's reuse interval must be longer.
        cipher: Seal the session at rest (``nsdk.AesGcmCipher``); every client needs the key.
        socket_timeout: Seconds to wait for Redis on each command (with a URL).

    Examples:
        Every process of every host that builds its client like this shares one session:

            store = nsdk.RedisTokenStore("redis://cache:6379/0", key="billing:session")
            client = nsdk.Client(url, token_store=store, refresh_reuse_interval=30)
    """

    def __init__(
        self,
        connection: str | redis.Redis,
        *,
        key: str = "nsdk:session",
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        lease_ttl: float = 20.0,
        cipher: TokenCipher | None = None,
        socket_timeout: float = 2.0,
    ) -> None:
        try:
            import redis as redis_py
            from redis.exceptions import AuthorizationError, NoPermissionError, ReadOnlyError
        except ImportError:  # pragma: no cover - the extra is installed in the tests
            raise ConfigurationError(
                "RedisTokenStore needs the 'redis' extra: pip install 'nsdk[redis]'"
            ) from None
        if not lock_timeout > 0 or not lease_ttl > 0:
            raise ConfigurationError("lock_timeout and lease_ttl must be positive")
        if not key:
            raise ConfigurationError("key must name the session, e.g. 'myapp:session'")
        if isinstance(connection, str):
            try:
                client: redis.Redis = redis_py.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
                    connection,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_timeout,
                )
            except ValueError:
                # The URL is not echoed: it may carry a password.
                raise ConfigurationError(
                    "connection must be a redis:// or rediss:// URL (or a redis.Redis client)"
                ) from None
        elif isinstance(connection, redis_py.Redis):  # pyright: ignore[reportUnnecessaryIsInstance]
            client = connection
        else:
            raise ConfigurationError(
                f"connection must be a URL or a redis.Redis client, got "
                f"{type(connection).__name__} "
                "(an asyncio client is not needed: the async client runs store calls in threads)"
            )
        self._redis = client
        self._errors: tuple[type[Exception], ...] = (redis_py.RedisError,)
        # Unreachable for now, retryable: down, timing out, or a primary demoted to replica
        # (READONLY) during a failover reached by a plain URL.
        self._unreachable: tuple[type[Exception], ...] = (
            redis_py.ConnectionError,
            redis_py.TimeoutError,
            ReadOnlyError,
        )
        # Refusals that redis-py files under ConnectionError: wrong password, no permission.
        self._refused: tuple[type[Exception], ...] = (
            redis_py.AuthenticationError,
            AuthorizationError,
            NoPermissionError,
        )
        self.key = key
        self.lease_key = f"{key}:lease"
        self.lock_timeout = lock_timeout
        self.lease_ttl = lease_ttl
        self.cipher = None if cipher is None else checked_cipher(cipher)
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        service = getattr(pool, "service_name", None)  # a Sentinel-managed pool
        place = (
            f"sentinel service {service}"
            if service
            else f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
        )
        self._where = f"redis {place}/{kwargs.get('db', 0)} key {key!r}"
        self._cas = client.register_script(_COMPARE_AND_SET)
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        sealed = "" if self.cipher is None else f", cipher={self.cipher!r}"
        return f"RedisTokenStore({self._where}{sealed})"

    # -- the TokenStore primitives --------------------------------------------------------

    def read(self) -> StoredSession:
        """Read the stored session (one HMGET)."""
        gen, data = self._call("read the session", self._redis.hmget, self.key, ["gen", "data"])
        if gen is None and data is None:
            return StoredSession()
        if gen is None or data is None:
            raise TokenStoreCorruptError(
                f"{self._where}: the record is incomplete; nothing was changed: {_REMEDY}",
                store=self._where,
            )
        raw = data.encode() if isinstance(data, str) else bytes(data)
        session = self._decode(raw)
        if str(session.generation) != (gen.decode() if isinstance(gen, bytes) else str(gen)):
            raise TokenStoreCorruptError(
                f"{self._where}: the record's generation does not match its data; nothing was "
                f"changed: {_REMEDY}",
                store=self._where,
            )
        return session

    def compare_and_set(
        self, expected: int, new: StoredSession, lease: object | None = None
    ) -> bool:
        """Write ``new`` if the generation is ``expected`` (and, under a lease, it is ours)."""
        owner = lease if isinstance(lease, str) else ""
        outcome = self._call(
            "write the session",
            self._cas,
            keys=[self.key, self.lease_key],
            args=[str(expected), str(new.generation), self._encode(new), owner],
        )
        return bool(outcome == 1)

    def refresh_lock(self) -> AbstractContextManager[object]:
        """The refresh critical section: a lease in Redis, extended while it is held."""
        return self._lease()

    def now(self) -> float:
        """Redis's clock (``TIME``): the one time every host sharing the session agrees on."""
        clock = self._redis.time  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        seconds, micros = self._call("read the clock", clock)  # pyright: ignore[reportUnknownArgumentType]
        return float(seconds) + float(micros) / 1e6

    # -- helpers --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lease(self) -> Generator[str]:
        owner = secrets.token_hex(16)
        ttl_ms = max(1, int(self.lease_ttl * 1000))
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.005
        while not self._call("take the refresh lease", self._take, owner, ttl_ms):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TokenStoreBusyError(
                    f"{self._where}: another client held the refresh lease for more than "
                    f"{self.lock_timeout:g} s; retry, or raise lock_timeout",
                    store=self._where,
                )
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.1)
        stop = threading.Event()
        keeper = threading.Thread(
            target=self._keep, args=(owner, ttl_ms, stop), name="nsdk-redis-lease", daemon=True
        )
        keeper.start()
        try:
            yield owner
        finally:
            stop.set()
            keeper.join()
            # If Redis is gone the lease simply expires; the release is best effort.
            with contextlib.suppress(*self._errors):
                self._release(keys=[self.lease_key], args=[owner])

    def _take(self, owner: str, ttl_ms: int) -> bool:
        return bool(self._redis.set(self.lease_key, owner, nx=True, px=ttl_ms))

    def _keep(self, owner: str, ttl_ms: int, stop: threading.Event) -> None:
        # Extends the lease every third of its life while the refresh is in flight. A lease
        # that is no longer ours is left alone: the fencing script turns our write away.
        while not stop.wait(self.lease_ttl / 3):
            try:
                if not self._extend(keys=[self.lease_key], args=[owner, ttl_ms]):
                    return
            except self._errors:
                continue  # Redis unreachable for now: try again at the next beat

    def _call(self, doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except NsdkError:
            raise
        except self._refused as exc:
            raise self._refusal(doing, exc) from exc
        except self._unreachable as exc:
            raise TokenStoreUnavailableError(
                f"{self._where}: cannot {doing}: Redis is unreachable ({type(exc).__name__}); "
                "a valid access token keeps working; retry when Redis is back",
                store=self._where,
            ) from exc
        except self._errors as exc:
            raise self._refusal(doing, exc) from exc

    def _refusal(self, doing: str, exc: Exception) -> TokenStoreError:
        return TokenStoreError(
            f"{self._where}: cannot {doing}: Redis refused ({type(exc).__name__}); check the "
            "password, the ACL (on the key and its lease: HMGET, HGET, HSET, GET, SET, PEXPIRE, "
            "DEL, EVALSHA, SCRIPT LOAD, TIME, and SELECT for a database other than 0) and the "
            "key",
            store=self._where,
        )

    def _encode(self, session: StoredSession) -> bytes:
        if self.cipher is None:
            return encode_session(session)
        return seal_session(session, self.cipher, self._context(), self._where)

    def _decode(self, raw: bytes) -> StoredSession:
        return open_session(
            raw, self.cipher, self._context(), self._where, _REMEDY, what="the record"
        )

    def _context(self) -> bytes:
        return b"nsdk-redis:" + self.key.encode()


__all__ = ["RedisTokenStore"]
