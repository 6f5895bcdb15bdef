"""The Redis fixture itself: a real server that stops, crashes, restarts, persists, authenticates.

The store tests build on these behaviours (an outage is ``stop()``, a crash is ``kill()``, a
restart keeps its port), so each is checked here against the real process.
"""

from __future__ import annotations

import socket

import pytest
import redis

# Long enough for the secret ledger (8+ characters), and awkward for URLs and redis.conf quoting.
PASSWORD = 'fixture pass:w@rd/#"\\'


def test_server_answers_ping_set_get(redis_server) -> None:
    """A started server answers PING, SET and GET on 127.0.0.1 at the port its URL names."""
    client = redis_server.client()
    assert client.ping() is True
    assert client.set("k", "v") is True
    assert client.get("k") == b"v"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis.Redis.from_url(redis_server.url).get("k") == b"v"


def test_stopped_server_refuses_connections(redis_server) -> None:
    """After stop() the port refuses connections, to redis-py and to a plain socket."""
    client = redis_server.client()
    client.ping()
    redis_server.stop()
    assert not redis_server.running
    with pytest.raises(redis.ConnectionError):
        client.ping()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", redis_server.port), timeout=2).close()


def test_restart_without_persistence_comes_back_empty(redis_server) -> None:
    """Without persistence, a server started again on the same port has lost its data."""
    client = redis_server.client()
    client.set("k", "v")
    port = redis_server.port
    redis_server.stop()
    redis_server.start()
    assert redis_server.port == port
    assert client.get("k") is None  # the same client reconnects: same port
    assert client.dbsize() == 0


def test_restart_with_persistence_keeps_data(redis_persistent) -> None:
    """With the AOF, a server stopped and started again on the same port has its data back."""
    client = redis_persistent.client()
    client.set("k", "v")
    port = redis_persistent.port
    redis_persistent.stop()
    redis_persistent.start()
    assert redis_persistent.port == port
    assert client.get("k") == b"v"


def test_sigkill_with_aof_always_keeps_every_acknowledged_write(redis_persistent) -> None:
    """With appendfsync always, a SIGKILL right after writes loses none that were acknowledged."""
    client = redis_persistent.client()
    for i in range(100):
        client.set(f"k{i}", i)
    client.incr("counter")
    redis_persistent.kill()
    assert not redis_persistent.running
    redis_persistent.start()
    assert client.mget([f"k{i}" for i in range(100)]) == [str(i).encode() for i in range(100)]
    assert client.get("counter") == b"1"


def test_auth_refuses_clients_without_the_password(redis_factory) -> None:
    """With a password, a client without it (or with a wrong one) is refused; with it, it works."""
    server = redis_factory(password=PASSWORD)
    with pytest.raises((redis.AuthenticationError, redis.ResponseError), match=r"NOAUTH|uthentic"):
        server.client(password=None).ping()
    with pytest.raises(redis.AuthenticationError):
        server.client(password="not-the-password").ping()
    assert server.client().set("k", "v") is True
    assert redis.Redis.from_url(server.url).get("k") == b"v"  # the URL carries it, quoted


def test_acl_user_is_limited_to_its_rules(redis_factory) -> None:
    """An ACL user authenticates by its URL and may touch only the keys its rules allow."""
    server = redis_factory(users={"nsdk": PASSWORD}, acl_rules="~nsdk:* +@all")
    client = redis.Redis.from_url(server.url_for("nsdk"))
    assert client.set("nsdk:session", "v") is True
    with pytest.raises(redis.exceptions.NoPermissionError):  # NOPERM
        client.get("other")


def test_repr_and_logs_hide_the_password(redis_factory) -> None:
    """The handle's repr masks the password, and so does logs(); only .url carries it."""
    server = redis_factory(password=PASSWORD, persistence=True)
    assert PASSWORD not in repr(server)
    assert f"redis://:***@127.0.0.1:{server.port}/0" in repr(server)
    server.kill()
    server.start()
    assert "Ready to accept connections" in server.logs()
    assert PASSWORD not in server.logs()
    assert server.client().ping() is True


def test_a_server_that_cannot_start_fails_with_its_log(redis_factory) -> None:
    """A server that cannot start fails fast with the log's tail, its passwords masked."""
    with pytest.raises(RuntimeError, match="exited with code") as failure:
        redis_factory(users={"nsdk": PASSWORD}, acl_rules="+@no-such-category")
    message = str(failure.value)
    assert "last log lines" in message
    assert "no-such-category" in message
    assert PASSWORD not in message
