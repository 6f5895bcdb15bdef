"""RedisTokenStore against a real redis-server and the reference server, over loopback.

The primitives (compare-and-set, the lease, its fencing and extension, Redis's clock), then the
outages: Redis down with a valid token, Redis down when a refresh is due, Redis restarted with
and without persistence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import nsdk
import pytest
from nsdk_server.testing import ServerHandle, run_server_in_thread

RedisServer = Any  # the handle of tests/redis/conftest.py (a conftest is not importable)

EMAIL, PASSWORD = "user@example.com", "demo-password"
PAIR = nsdk.Tokens("a.b.c", "refresh-secret")


@pytest.fixture(scope="module")
def live() -> Iterator[ServerHandle]:
    """A reference server (access TTL 300 s: expiry is forced with client.refresh())."""
    with run_server_in_thread(
        faults=True, scrypt_n=2**12, login_account_rate=None, login_address_rate=None
    ) as handle:
        yield handle


@pytest.fixture
def api(live: ServerHandle) -> ServerHandle:
    """The module's reference server with its counters reset."""
    live.reset_stats()
    return live


def test_compare_and_set_round_trip(redis_server: RedisServer):
    """Writes land only over the expected generation; the record reads back exactly."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:cas")
    assert store.read() == nsdk.StoredSession()
    record = nsdk.RefreshInFlight(started_at=1.5, deadline=9.0)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR, record))
    assert not store.compare_and_set(0, nsdk.StoredSession(1, None))
    assert store.read() == nsdk.StoredSession(1, PAIR, record)
    assert store.compare_and_set(1, nsdk.StoredSession(2, None, None, expired=True))
    assert store.read() == nsdk.StoredSession(2, None, None, expired=True)
    assert redis_server.client().hget("t:cas", "gen") == b"2"


def test_lease_is_exclusive_and_bounded(redis_server: RedisServer):
    """A second holder waits at most lock_timeout, then TokenStoreBusyError; release frees it."""
    first = nsdk.RedisTokenStore(redis_server.url, key="t:lease", lock_timeout=0.2)
    second = nsdk.RedisTokenStore(redis_server.url, key="t:lease", lock_timeout=0.2)
    busy = pytest.raises(nsdk.TokenStoreBusyError, match=r"more than 0\.2 s")
    with first.refresh_lock(), busy, second.refresh_lock():
        pass
    with second.refresh_lock() as lease:
        assert isinstance(lease, str) and len(lease) == 32
    assert redis_server.client().exists("t:lease:lease") == 0


def test_lost_lease_fences_the_write(redis_server: RedisServer):
    """A holder whose lease expired (a pause) cannot write, even with the right generation."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:fence", lease_ttl=0.3)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    with store.refresh_lock() as lease:
        redis_server.client().delete("t:fence:lease")  # the lease expired under a pause...
        other = nsdk.RedisTokenStore(redis_server.url, key="t:fence")
        with other.refresh_lock():  # ...and another host took it
            assert not store.compare_and_set(1, nsdk.StoredSession(2, None), lease)
            assert store.read().generation == 1  # the late write was dropped


def test_lease_is_extended_while_held(redis_server: RedisServer):
    """A refresh that outlives lease_ttl keeps its lease: extended every third of its life."""
    store = nsdk.RedisTokenStore(redis_server.url, key="t:extend", lease_ttl=0.3)
    other = nsdk.RedisTokenStore(redis_server.url, key="t:extend", lock_timeout=0.1)
    with store.refresh_lock():
        time.sleep(1.0)  # more than three lease lifetimes
        with pytest.raises(nsdk.TokenStoreBusyError), other.refresh_lock():
            pass
        assert 0 < redis_server.client().pttl("t:extend:lease") <= 300


def test_dead_holders_lease_expires_by_redis_time(redis_server: RedisServer):
    """A lease whose holder is gone (no extension) expires after lease_ttl, measured by Redis."""
    client = redis_server.client()
    client.set("t:dead:lease", "someone-dead", px=300)
    store = nsdk.RedisTokenStore(redis_server.url, key="t:dead", lock_timeout=2.0)
    started = time.monotonic()
    with store.refresh_lock():
        waited = time.monotonic() - started
    assert 0.1 < waited < 1.5


def test_now_is_redis_time(redis_server: RedisServer):
    """now() is Redis's TIME, whatever this host's clock says."""
    seconds, micros = redis_server.client().time()
    now = nsdk.RedisTokenStore(redis_server.url, key="t:time").now()
    assert abs(now - (seconds + micros / 1e6)) < 1.0


def test_repr_and_errors_never_show_the_password(redis_factory: Callable[..., RedisServer]):
    """With AUTH in the URL: the repr and a refused-auth error never show the password."""
    server = redis_factory(password="s3cret-redis-pw")
    good = nsdk.RedisTokenStore(server.url, key="t:auth")
    assert "s3cret" not in repr(good) and "t:auth" in repr(good)
    bad_url = server.url.replace("s3cret-redis-pw", "wrong-pw-123")
    bad = nsdk.RedisTokenStore(bad_url, key="t:auth")
    with pytest.raises(nsdk.TokenStoreError, match="Redis refused") as info:
        bad.read()
    assert "wrong-pw-123" not in str(info.value) + repr(bad)


def test_acl_without_a_needed_command_is_named(redis_factory: Callable[..., RedisServer]):
    """An ACL user that may not run scripts: a TokenStoreError that says which commands."""
    server = redis_factory(users={"app": "app-pw-1"}, acl_rules="~t:* +hmget +get +set")
    store = nsdk.RedisTokenStore(server.url_for("app"), key="t:acl")
    assert store.read() == nsdk.StoredSession()
    with pytest.raises(nsdk.TokenStoreError, match="EVALSHA"):
        store.compare_and_set(0, nsdk.StoredSession(1, PAIR))


def test_redis_down_a_valid_token_keeps_working(redis_server: RedisServer, api: ServerHandle):
    """Redis stopped: a valid access token keeps working; a refresh is retryably refused.

    TokenStoreUnavailableError, nothing sent; Redis back without persistence: the session is
    gone, and SessionExpiredError says so.
    """
    store = nsdk.RedisTokenStore(redis_server.url, key="t:down", socket_timeout=0.5)
    client = nsdk.Client(api.base_url, token_store=store)
    client.login(email=EMAIL, password=PASSWORD)
    redis_server.stop()
    for _ in range(20):
        assert client.me().email == EMAIL
    with pytest.raises(nsdk.TokenStoreUnavailableError, match="unreachable"):
        client.refresh()
    assert api.stats()["refresh_requests"] == 0 and client.state is nsdk.SessionState.ACTIVE
    redis_server.start()  # no persistence: the session is gone from Redis
    with pytest.raises(nsdk.SessionExpiredError, match="token store lost it"):
        client.refresh()
    assert api.stats()["refresh_requests"] == 0


def test_restart_with_persistence_carries_on(redis_persistent: RedisServer, api: ServerHandle):
    """Redis killed (SIGKILL) and restarted with AOF: the session is still there; no new login."""
    store = nsdk.RedisTokenStore(redis_persistent.url, key="t:aof")
    client = nsdk.Client(api.base_url, token_store=store)
    client.login(email=EMAIL, password=PASSWORD)
    client.refresh()
    redis_persistent.kill()
    redis_persistent.start()
    other = nsdk.Client(
        api.base_url, token_store=nsdk.RedisTokenStore(redis_persistent.url, key="t:aof")
    )
    assert other.me().email == EMAIL
    client.refresh()
    stats = api.stats()
    assert stats["requests"]["login"] == 1 and stats["refresh_ok"] == 2 and stats["replays"] == 0


async def test_async_and_sync_clients_share_one_redis_session(
    redis_server: RedisServer, api: ServerHandle
):
    """An AsyncClient and a Client on one key: one refresh, adopted by the other unsent."""
    sync = nsdk.Client(
        api.base_url, token_store=nsdk.RedisTokenStore(redis_server.url, key="t:mix")
    )
    sync.login(email=EMAIL, password=PASSWORD)
    async with nsdk.AsyncClient(
        api.base_url, token_store=nsdk.RedisTokenStore(redis_server.url, key="t:mix")
    ) as other:
        rotated = await other.refresh()
        assert sync.refresh() == rotated
    assert api.stats()["refresh_requests"] == 1


def test_threads_of_two_hosts_refresh_once(redis_server: RedisServer, api: ServerHandle):
    """16 threads on each of two clients (one 5 minutes ahead) force a refresh: exactly one."""
    url = redis_server.url
    a = nsdk.Client(api.base_url, token_store=nsdk.RedisTokenStore(url, key="t:herd"))
    a.login(email=EMAIL, password=PASSWORD)
    b = nsdk.Client(
        api.base_url,
        token_store=nsdk.RedisTokenStore(url, key="t:herd"),
        clock=lambda: time.time() + 300,
    )
    stale = a._config.core.current().access_token
    errors: list[BaseException] = []

    def force(client: nsdk.Client) -> None:
        try:
            client._auth.refresh(stale)  # what a 401 for the stale token does
        except nsdk.NsdkError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=force, args=(c,)) for c in (a, b) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = api.stats()
    assert stats["refresh_requests"] == 1 and stats["replays"] == 0
    assert a._config.core.current() == b._config.core.current()


def test_sealed_session_in_redis(redis_server: RedisServer, api: ServerHandle):
    """With a cipher, Redis holds neither token; another key is refused with TokenStoreKeyError."""
    key = nsdk.AesGcmCipher.generate_key()
    store = nsdk.RedisTokenStore(redis_server.url, key="t:sealed", cipher=nsdk.AesGcmCipher(key))
    client = nsdk.Client(api.base_url, token_store=store)
    client.login(email=EMAIL, password=PASSWORD)
    tokens = client.refresh()
    raw = redis_server.client().hget("t:sealed", "data")
    assert tokens.access_token.encode() not in raw and tokens.refresh_token.encode() not in raw
    same = nsdk.RedisTokenStore(redis_server.url, key="t:sealed", cipher=nsdk.AesGcmCipher(key))
    assert same.read().tokens == tokens
    other = nsdk.AesGcmCipher(nsdk.AesGcmCipher.generate_key())
    with pytest.raises(nsdk.TokenStoreKeyError):
        nsdk.Client(
            api.base_url,
            token_store=nsdk.RedisTokenStore(redis_server.url, key="t:sealed", cipher=other),
        )
    moved = redis_server.client()
    moved.copy("t:sealed", "t:elsewhere")  # a record copied under another key does not open
    with pytest.raises(nsdk.TokenStoreCorruptError):
        nsdk.RedisTokenStore(
            redis_server.url, key="t:elsewhere", cipher=nsdk.AesGcmCipher(key)
        ).read()
