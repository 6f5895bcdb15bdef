"""What ``nox -s mutation`` found unpinned in RedisTokenStore, against a real redis-server.

Each test pins one behaviour a surviving mutant changed: the defaults (key, lease lifetime,
socket timeouts), the store's name in reprs and messages for each kind of connection, each
error's type, exact message and ``store``, the record's layout in Redis and its associated data
(records written by another nsdk version must open), a client with ``decode_responses``, Redis's
clock, and the lease keeper's beat and its perseverance through a failed extension.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import nsdk
import pytest
import redis
from _secret_scan import LEDGER

RedisServer = Any  # the handle of tests/redis/conftest.py (a conftest is not importable)

PAIR = nsdk.Tokens("a.b.c", "refresh-secret")
REMEDY = "delete the key (redis-cli DEL) and sign in again"
#: The record encode_session writes for StoredSession(1, PAIR).
RECORD = (
    b'{"format":"nsdk-session","version":1,"generation":1,'
    b'"tokens":{"access_token":"a.b.c","refresh_token":"refresh-secret"},'
    b'"refreshing":null,"expired":false}'
)
KEY = bytes([7]) * 32
for _form in (KEY.hex(), base64.urlsafe_b64encode(KEY).decode(), base64.b64encode(KEY).decode()):
    LEDGER.secret(_form)
REFUSED = (
    "check the password, the ACL (on the key and its lease: HMGET, HGET, HSET, GET, SET, "
    "PEXPIRE, DEL, EVALSHA, SCRIPT LOAD, TIME, and SELECT for a database other than 0) and the key"
)


def _where(server: RedisServer, key: str) -> str:
    return f"redis 127.0.0.1:{server.port}/0 key {key!r}"


class _Failing:
    """A TokenCipher whose seal fails (a KMS that is down)."""

    key_id = "kms-1"

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        raise ConnectionError("KMS down")

    def open(self, sealed: bytes, context: bytes) -> bytes:
        raise ConnectionError("KMS down")


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lock_timeout": 0}, "lock_timeout and lease_ttl must be positive"),
        ({"lease_ttl": 0}, "lock_timeout and lease_ttl must be positive"),
        ({"key": ""}, "key must name the session, e.g. 'myapp:session'"),
    ],
)
def test_bad_options_have_the_exact_message(options: dict[str, Any], message: str) -> None:
    """A zero lock_timeout or lease_ttl, or an empty key: ConfigurationError, exact message."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.RedisTokenStore("redis://127.0.0.1:9/0", **options)
    assert str(info.value) == message


def test_bad_connections_have_the_exact_message() -> None:
    """A URL of another scheme, or neither a URL nor a redis.Redis: exact messages."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.RedisTokenStore("http://127.0.0.1:9/0")
    assert str(info.value) == (
        "connection must be a redis:// or rediss:// URL (or a redis.Redis client)"
    )
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.RedisTokenStore(42)  # type: ignore[arg-type]
    assert str(info.value) == (
        "connection must be a URL or a redis.Redis client, got int (an asyncio client is not "
        "needed: the async client runs store calls in threads)"
    )


def test_without_redis_py_the_store_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py not installed: ConfigurationError naming the extra to install."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.RedisTokenStore("redis://127.0.0.1:9/0")
    assert str(info.value) == "RedisTokenStore needs the 'redis' extra: pip install 'nsdk[redis]'"


def test_socket_timeouts_of_a_url_store() -> None:
    """From a URL: 2 s to connect and per command by default, both set by socket_timeout."""
    default = nsdk.RedisTokenStore("redis://127.0.0.1:9/0")
    kwargs = default._redis.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2.0, 2.0)
    short = nsdk.RedisTokenStore("redis://127.0.0.1:9/0", socket_timeout=0.5)
    kwargs = short._redis.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.5, 0.5)


@pytest.mark.parametrize(
    ("make", "where"),
    [
        (lambda: redis.Redis(host="10.0.0.9", port=6380, db=3), "redis 10.0.0.9:6380/3"),
        (lambda: redis.Redis(unix_socket_path="/run/r.sock"), "redis /run/r.sock:/0"),
        (lambda: redis.Redis(connection_pool=redis.ConnectionPool()), "redis ?:/0"),
    ],
    ids=["tcp", "unix", "bare-pool"],
)
def test_the_store_is_named_by_its_connection(make: Callable[[], redis.Redis], where: str) -> None:
    """The name in reprs and messages: host:port/db, a socket path, or '?' when neither is known."""
    store = nsdk.RedisTokenStore(make(), key="k")
    assert repr(store) == f"RedisTokenStore({where} key 'k')"


def test_a_sentinel_pool_is_named_by_its_service() -> None:
    """A Sentinel-managed pool (it has a service_name) is named by its service, not an address."""
    pool = redis.ConnectionPool(host="10.0.0.9", port=26379)
    pool.service_name = "mymaster"  # type: ignore[attr-defined]
    store = nsdk.RedisTokenStore(redis.Redis(connection_pool=pool), key="k")
    assert repr(store) == "RedisTokenStore(redis sentinel service mymaster/0 key 'k')"


def test_repr_with_and_without_a_cipher(redis_server: RedisServer) -> None:
    """repr: the store's name; with a cipher, the cipher's repr (its key id) after it."""
    plain = nsdk.RedisTokenStore(redis_server.url, key="t:repr")
    assert repr(plain) == f"RedisTokenStore({_where(redis_server, 't:repr')})"
    cipher = nsdk.AesGcmCipher(KEY)
    sealed = nsdk.RedisTokenStore(redis_server.url, key="t:repr", cipher=cipher)
    assert repr(sealed) == (f"RedisTokenStore({_where(redis_server, 't:repr')}, cipher={cipher!r})")


# --- the record in Redis ------------------------------------------------------------------------


def test_default_key_and_lease(redis_server: RedisServer) -> None:
    """Without key=: the hash "nsdk:session" and the lease "nsdk:session:lease", 20 s long."""
    store = nsdk.RedisTokenStore(redis_server.url)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    client = redis_server.client()
    assert client.hgetall("nsdk:session") == {b"gen": b"1", b"data": RECORD}
    with store.refresh_lock():
        assert 19_000 < client.pttl("nsdk:session:lease") <= 20_000
    assert client.exists("nsdk:session:lease") == 0


def test_the_lease_expires_after_lease_ttl(redis_server: RedisServer) -> None:
    """The lease is set with its lifetime (PX lease_ttl): a dead holder's lease would expire."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:ttl", lease_ttl=0.5)
    with store.refresh_lock():
        assert 0 < redis_server.client().pttl("t:ttl:lease") <= 500


def test_a_record_sealed_for_the_key_by_hand_opens(redis_server: RedisServer) -> None:
    """The associated data is b"nsdk-session-sealed/1", NUL, b"nsdk-redis:" and the key.

    A record sealed with exactly that (as any nsdk version writes it) opens.
    """
    cipher = nsdk.AesGcmCipher(KEY)
    sealed = cipher.seal(RECORD, b"nsdk-session-sealed/1\x00nsdk-redis:t:golden")
    envelope = {
        "format": "nsdk-session-sealed",
        "version": 1,
        "key_id": cipher.key_id,
        "sealed": base64.b64encode(sealed).decode(),
    }
    redis_server.client().hset("t:golden", mapping={"gen": "1", "data": json.dumps(envelope)})
    store = nsdk.RedisTokenStore(redis_server.url, key="t:golden", cipher=cipher)
    assert store.read() == nsdk.StoredSession(1, PAIR)


def test_a_client_with_decode_responses_works(redis_server: RedisServer) -> None:
    """A redis.Redis that decodes responses to str: writes and reads work the same."""
    client = redis_server.client(decode_responses=True)
    store = nsdk.RedisTokenStore(client, key="t:str")
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    assert store.read() == nsdk.StoredSession(1, PAIR)
    assert store.compare_and_set(1, nsdk.StoredSession(2, None, None, expired=True))
    assert store.read() == nsdk.StoredSession(2, None, None, expired=True)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"gen": "1"}, "the record is incomplete"),
        ({"data": RECORD}, "the record is incomplete"),
        ({"gen": "5", "data": RECORD}, "the record's generation does not match its data"),
    ],
    ids=["gen-only", "data-only", "mismatch"],
)
def test_inconsistent_records_are_corrupt(
    redis_server: RedisServer, fields: dict[str, Any], why: str
) -> None:
    """Half a record, or a generation that disagrees with the data: corrupt, exact message."""
    redis_server.client().hset("t:bad", mapping=fields)
    store = nsdk.RedisTokenStore(redis_server.url, key="t:bad")
    with pytest.raises(nsdk.TokenStoreCorruptError) as info:
        store.read()
    where = _where(redis_server, "t:bad")
    assert str(info.value) == f"{where}: {why}; nothing was changed: {REMEDY}"
    assert info.value.store == where


@pytest.mark.parametrize("sealed", [False, True], ids=["clear", "sealed"])
def test_unreadable_data_names_the_record(redis_server: RedisServer, sealed: bool) -> None:
    """Data that is not JSON: corrupt, speaking of "the record" of this key, exact message."""
    redis_server.client().hset("t:torn", mapping={"gen": "1", "data": "{"})
    cipher = nsdk.AesGcmCipher(KEY) if sealed else None
    store = nsdk.RedisTokenStore(redis_server.url, key="t:torn", cipher=cipher)
    with pytest.raises(nsdk.TokenStoreCorruptError) as info:
        store.read()
    where = _where(redis_server, "t:torn")
    assert str(info.value) == (
        f"{where}: the record is not valid JSON (torn or corrupt); nothing was changed: {REMEDY}"
    )
    assert info.value.store == where


def test_a_failing_cipher_names_the_store(redis_server: RedisServer) -> None:
    """The cipher fails to seal: TokenStoreError naming this store; nothing written."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:kms", cipher=_Failing())
    with pytest.raises(nsdk.TokenStoreError) as info:
        store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    where = _where(redis_server, "t:kms")
    assert str(info.value) == (
        f"{where}: the cipher could not seal the session (ConnectionError); nothing was written"
    )
    assert redis_server.client().exists("t:kms") == 0


# --- Redis refusing, Redis gone -----------------------------------------------------------------


def _assert_read_refused(store: nsdk.RedisTokenStore, where: str, error: str) -> None:
    """``store.read()`` raises exactly TokenStoreError (not retryable), naming what to check."""
    with pytest.raises(nsdk.TokenStoreError) as info:
        store.read()
    assert type(info.value) is nsdk.TokenStoreError
    refused = f"Redis refused ({error}); {REFUSED}"
    assert str(info.value) == f"{where}: cannot read the session: {refused}"
    assert info.value.store == where


def test_wrong_password_is_refused_with_the_exact_message(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """A wrong password: TokenStoreError (not retryable), naming what to check."""
    server = redis_factory(password="s3cret-redis-pw")
    bad = nsdk.RedisTokenStore(server.url.replace("s3cret-redis-pw", "wrong-pw-123"), key="t:a")
    _assert_read_refused(bad, _where(server, "t:a"), "AuthenticationError")


def test_another_redis_error_is_a_refusal(redis_server: RedisServer) -> None:
    """The key holds another type (WRONGTYPE): TokenStoreError, the same advice, exact message."""
    redis_server.client().set("t:string", "not a hash")
    store = nsdk.RedisTokenStore(redis_server.url, key="t:string")
    _assert_read_refused(store, _where(redis_server, "t:string"), "ResponseError")


def test_redis_down_messages_say_what_could_not_be_done(redis_server: RedisServer) -> None:
    """Redis stopped: read, write and clock each raise TokenStoreUnavailableError, exact message."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:gone", socket_timeout=0.5)
    redis_server.stop()
    where = _where(redis_server, "t:gone")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("read the session", store.read),
        ("write the session", lambda: store.compare_and_set(0, nsdk.StoredSession(1, PAIR))),
        ("read the clock", store.now),
    ]
    for doing, call in calls:
        with pytest.raises(nsdk.TokenStoreUnavailableError) as info:
            call()
        assert str(info.value) == (
            f"{where}: cannot {doing}: Redis is unreachable (ConnectionError); a valid access "
            "token keeps working; retry when Redis is back"
        )
        assert info.value.store == where


# --- the clock and the lease keeper -------------------------------------------------------------


def test_now_adds_the_microseconds() -> None:
    """now() is TIME's seconds plus its microseconds / 10**6, exactly."""

    class FixedTime(redis.Redis):
        def time(self) -> tuple[int, int]:  # type: ignore[override]
            return (1_700_000_000, 999_999)

    store = nsdk.RedisTokenStore(FixedTime(host="127.0.0.1", port=9), key="k")
    assert store.now() == 1_700_000_000 + 999_999 / 1e6


def test_the_lease_is_extended_every_third_of_its_life(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keeper thread waits lease_ttl / 3 between extensions."""
    waits: list[float | None] = []
    wait = threading.Event.wait

    def recording(self: threading.Event, timeout: float | None = None) -> bool:
        if threading.current_thread().name == "nsdk-redis-lease":
            waits.append(timeout)
        return wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", recording)
    store = nsdk.RedisTokenStore(redis_server.url, key="t:beat", lease_ttl=0.3)
    with store.refresh_lock():
        deadline = time.monotonic() + 10
        while not waits and time.monotonic() < deadline:
            time.sleep(0.01)
    assert waits and waits[0] == pytest.approx(0.1)


def test_the_keeper_goes_on_after_a_failed_extension(redis_server: RedisServer) -> None:
    """An extension that fails (Redis unreachable for a moment) is tried again at the next beat."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:retry", lease_ttl=0.06)
    extend = store._extend
    calls: list[str] = []

    def flaky(**kwargs: Any) -> object:
        calls.append("failed" if not calls else "extended")
        if len(calls) == 1:
            raise redis.ConnectionError("gone for a moment")
        return extend(**kwargs)

    store._extend = flaky  # type: ignore[method-assign]
    with store.refresh_lock():
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert calls[:3] == ["failed", "extended", "extended"]


# --- taking the lease ---------------------------------------------------------------------------


def test_waiting_for_the_lease_backs_off_from_5_ms_to_100_ms(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another host holds the lease: waits of 5, 10, 20, 40, 80 ms, then 100 ms at most."""
    redis_server.client().set("t:wait:lease", "someone-else", px=60_000)
    store = nsdk.RedisTokenStore(redis_server.url, key="t:wait", lock_timeout=0.5)
    sleeps: list[float] = []
    sleep = time.sleep

    def recording(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread():
            sleeps.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording)
    with pytest.raises(nsdk.TokenStoreBusyError) as info, store.refresh_lock():
        pass
    assert sleeps[:5] == [0.005, 0.01, 0.02, 0.04, 0.08]
    assert len(sleeps) > 6 and max(sleeps) == 0.1
    where = _where(redis_server, "t:wait")
    assert str(info.value) == (
        f"{where}: another client held the refresh lease for more than 0.5 s; retry, or raise "
        "lock_timeout"
    )
    assert info.value.store == where


def test_a_tiny_lease_ttl_is_still_one_millisecond(redis_server: RedisServer) -> None:
    """lease_ttl below 1 ms is taken as PX 1 (Redis refuses 0), not more."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:tiny", lease_ttl=0.0001)
    taken: list[int] = []
    take = store._take

    def recording(owner: str, ttl_ms: int) -> bool:
        taken.append(ttl_ms)
        return take(owner, ttl_ms)

    store._take = recording  # type: ignore[method-assign]
    with store.refresh_lock():
        pass
    assert taken == [1]


def test_the_lease_keeper_is_a_daemon_thread(redis_server: RedisServer) -> None:
    """The keeper thread never keeps the interpreter alive at exit."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:daemon")
    with store.refresh_lock():
        [keeper] = [t for t in threading.enumerate() if t.name == "nsdk-redis-lease"]
        assert keeper.daemon


def test_redis_down_when_taking_the_lease(redis_server: RedisServer) -> None:
    """Redis stopped: taking the lease raises TokenStoreUnavailableError, exact message."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:nolease", socket_timeout=0.5)
    redis_server.stop()
    with pytest.raises(nsdk.TokenStoreUnavailableError) as info, store.refresh_lock():
        pass
    assert str(info.value) == (
        f"{_where(redis_server, 't:nolease')}: cannot take the refresh lease: Redis is "
        "unreachable (ConnectionError); a valid access token keeps working; retry when Redis "
        "is back"
    )
