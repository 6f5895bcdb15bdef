"""FileTokenStore on a real file: atomic writes, permissions, bad content, lock bounds, no hot I/O.

Against the reference server over loopback (in a thread of this process); the lock holder in
the lock-timeout test is a real second process holding a real kernel lock.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import nsdk
import pytest
from nsdk_server.testing import ServerHandle, run_server_in_thread

EMAIL, PASSWORD = "user@example.com", "demo-password"
PAIR = nsdk.Tokens("a.b.c", "refresh-secret")


@pytest.fixture(scope="module")
def live() -> Iterator[ServerHandle]:
    """A reference server with a long access TTL (expiry is forced with client.refresh())."""
    with run_server_in_thread(
        faults=True, scrypt_n=2**12, login_account_rate=None, login_address_rate=None
    ) as handle:
        yield handle


@pytest.fixture
def server(live: ServerHandle) -> ServerHandle:
    """The module's server with its counters reset."""
    live.reset_stats()
    return live


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_round_trip_and_compare_and_set(tmp_path: Path):
    """Writes land only over the expected generation; the file holds exactly what was written."""
    store = nsdk.FileTokenStore(tmp_path / "s.json")
    assert store.read() == nsdk.StoredSession()  # no file yet: never signed in
    record = nsdk.RefreshInFlight(started_at=1.5, deadline=9.0)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR, record))
    assert not store.compare_and_set(0, nsdk.StoredSession(1, None))  # fenced off
    assert store.read() == nsdk.StoredSession(1, PAIR, record)
    assert store.compare_and_set(1, nsdk.StoredSession(2, None, None, expired=True))
    assert store.read() == nsdk.StoredSession(2, None, None, expired=True)
    assert "refresh-secret" not in repr(store) + repr(store.read())


def test_created_private_even_under_umask_000(tmp_path: Path):
    """File 0600, directory 0700, lock files 0600, whatever the umask; lock files stay."""
    path = tmp_path / "deep" / "dir" / "s.json"
    old = os.umask(0)
    try:
        store = nsdk.FileTokenStore(path)
        assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
        with store.refresh_lock():
            pass
    finally:
        os.umask(old)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert _mode(path.parent.parent) == 0o700
    for lock in ("s.json.lock", "s.json.write.lock"):
        assert _mode(path.parent / lock) == 0o600  # released, never deleted
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "s.json",
        "s.json.lock",
        "s.json.write.lock",
    ]  # no temporary file left behind


def _valid(tmp_path: Path) -> bytes:
    store = nsdk.FileTokenStore(tmp_path / "valid.json")
    store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    return (tmp_path / "valid.json").read_bytes()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "empty"),
        (b"\n  \n", "empty"),
        (b"\x00\xffgarbage", "not valid JSON"),
        (None, "not valid JSON"),  # a torn write: the first half of a valid file
        (b"[1, 2]", "not an nsdk session record"),
        (b'{"format": "nsdk-session", "version": 2}', "format version 2"),
        (b'{"format": "nsdk-session", "version": 1, "generation": -1}', "generation"),
        (
            b'{"format":"nsdk-session","version":1,"generation":1,"expired":false,'
            b'"tokens":{"access_token":"x"},"refreshing":null}',
            "tokens are invalid",
        ),
    ],
)
def test_bad_content_is_a_typed_error_naming_the_path(
    tmp_path: Path, content: bytes | None, why: str
):
    """Empty, corrupt, torn, foreign or future files: TokenStoreCorruptError, file untouched."""
    path = tmp_path / "s.json"
    raw = content if content is not None else _valid(tmp_path)[: len(_valid(tmp_path)) // 2]
    path.write_bytes(raw)
    path.chmod(0o600)
    with pytest.raises(nsdk.TokenStoreCorruptError, match=why) as info:
        nsdk.Client("http://127.0.0.1:9", token_store=nsdk.FileTokenStore(path))
    assert str(path) in str(info.value) and info.value.store == str(path)
    assert "refresh-secret" not in str(info.value)
    assert path.read_bytes() == raw  # nothing deleted, nothing rewritten


@pytest.mark.parametrize(
    ("target", "mode", "match"),
    [
        ("file", 0o644, r"file is accessible by other users \(mode 0644\); run chmod 600"),
        ("file", 0o640, r"mode 0640"),
        ("directory", 0o777, r"directory is accessible by other users \(mode 0777\)"),
        ("directory", 0o775, r"mode 0775"),
    ],
)
def test_group_or_world_access_is_refused(tmp_path: Path, target: str, mode: int, match: str):
    """Like ssh: a store others can read or replace is refused with a typed error, untouched."""
    path = tmp_path / "d" / "s.json"
    store = nsdk.FileTokenStore(path)
    store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    (path if target == "file" else path.parent).chmod(mode)
    with pytest.raises(nsdk.TokenStorePermissionError, match=match):
        store.read()
    with pytest.raises(nsdk.TokenStorePermissionError):
        store.compare_and_set(1, nsdk.StoredSession(2, None))
    path.parent.chmod(0o700)
    path.chmod(0o600)
    assert store.read() == nsdk.StoredSession(1, PAIR)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_file_owned_by_another_user_is_refused(tmp_path: Path):
    """A store file owned by another uid is refused (as root, whose uid differs from the file's)."""
    path = tmp_path / "s.json"
    store = nsdk.FileTokenStore(path)
    store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    os.chown(path, 65534, 65534)
    with pytest.raises(nsdk.TokenStorePermissionError, match="owned by uid 65534"):
        store.read()


def _read_only_scenario(url: str, directory: str, tls: ssl.SSLContext) -> dict[str, object]:
    path = os.path.join(directory, "store", "s.json")
    client = nsdk.Client(url, token_store=nsdk.FileTokenStore(path), verify=tls)
    client.login(email=EMAIL, password=PASSWORD)
    os.chmod(os.path.dirname(path), 0o500)  # the directory becomes read-only
    result: dict[str, object] = {}
    try:
        client.refresh()
    except nsdk.NsdkError as exc:
        result["error"] = type(exc).__name__
        result["message"] = str(exc).replace(path, "<path>")
    result["state"] = client.state.value
    result["me"] = client.me().email  # the still-valid access token keeps working
    os.chmod(os.path.dirname(path), 0o700)
    stored = nsdk.FileTokenStore(path).read()
    result["stored"] = [stored.generation, stored.tokens is not None, stored.refreshing is None]
    return result


def test_read_only_directory_fails_before_any_refresh_is_sent(server: ServerHandle):
    """A read-only store directory: TokenStoreError, no refresh sent, the session kept working.

    Runs in a forked child that drops to an unprivileged user when the suite runs as root
    (root ignores directory modes). That user may not be able to read the interpreter's files
    (a Python under /root) or the CA bundle: the parent builds the TLS context, and first runs
    the same calls once, so that the child inherits every module they import, whatever ran
    before this test.
    """
    tls = ssl.create_default_context()
    warm = tempfile.mkdtemp(prefix="nsdk-warm-")
    _read_only_scenario(server.base_url, warm, tls)  # as this user, who may write there
    subprocess.run(["rm", "-rf", warm], check=False)
    server.reset_stats()
    directory = tempfile.mkdtemp(prefix="nsdk-ro-")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            signal.alarm(60)  # a forked child of a threaded process must never hang the suite
            os.close(read_end)
            if os.geteuid() == 0:
                os.chown(directory, 65534, 65534)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            result = _read_only_scenario(server.base_url, directory, tls)
            os.write(write_end, json.dumps(result).encode())
            code = 0
        except BaseException:  # said to the parent, whose assertion shows it
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        raw = fh.read()
    _, status = os.waitpid(pid, 0)
    subprocess.run(["rm", "-rf", directory], check=False)
    assert os.waitstatus_to_exitcode(status) == 0, raw.decode(errors="replace")
    result = json.loads(raw)
    assert result["error"] == "TokenStoreError"
    assert "<path>" in result["message"] and "Permission denied" in result["message"]
    assert result["state"] == "active" and result["me"] == EMAIL
    assert result["stored"] == [1, True, True]  # the login's pair, no refresh record
    assert server.stats()["refresh_requests"] == 0


_LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from filelock import FileLock
    lock = FileLock(sys.argv[1] + ".lock")
    lock.acquire()
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_lock_held_past_timeout_by_another_process(tmp_path: Path, server: ServerHandle):
    """Another process holds the refresh lock: TokenStoreBusyError after lock_timeout.

    Nothing is sent; once that process is killed the kernel frees the lock and the refresh goes
    through.
    """
    path = tmp_path / "s.json"
    client = nsdk.Client(server.base_url, token_store=nsdk.FileTokenStore(path, lock_timeout=0.3))
    client.login(email=EMAIL, password=PASSWORD)
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(nsdk.TokenStoreBusyError, match=r"more than 0.3 s") as info:
            client.refresh()
        assert info.value.store == str(path)
        assert server.stats()["refresh_requests"] == 0
        assert client.state is nsdk.SessionState.ACTIVE
    finally:
        holder.kill()  # SIGKILL: the kernel releases the flock
        holder.wait()
    client.refresh()
    assert server.stats()["refresh_ok"] == 1
    assert (tmp_path / "s.json.lock").exists()


def test_hot_path_does_no_file_io(tmp_path: Path, server: ServerHandle, monkeypatch):
    """With a valid token, calls never touch the store (every store method patched to fail)."""
    client = nsdk.Client(server.base_url, token_store=nsdk.FileTokenStore(tmp_path / "s.json"))
    client.login(email=EMAIL, password=PASSWORD)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hot path touched the store")

    for name in ("read", "compare_and_set", "refresh_lock", "_replace"):
        monkeypatch.setattr(nsdk.FileTokenStore, name, boom)
    for _ in range(50):
        assert client.me().email == EMAIL


def test_readers_never_see_a_torn_file(tmp_path: Path):
    """4 reader threads against a writer doing 100 compare-and-sets: every read is whole."""
    path = tmp_path / "s.json"
    writer, reader = nsdk.FileTokenStore(path), nsdk.FileTokenStore(path)
    writer.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    errors: list[BaseException] = []
    generations: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                generations.append(reader.read().generation)
            except nsdk.NsdkError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for n in range(1, 101):
        long_pair = nsdk.Tokens("a" * 4000 + str(n), "r" * 4000)
        assert writer.compare_and_set(n, nsdk.StoredSession(n + 1, long_pair))
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and generations and max(generations) <= 101


async def test_async_client_shares_the_file_with_a_sync_client(
    tmp_path: Path, server: ServerHandle
):
    """A sync and an async client on one file: one refresh, the other adopts it unsent."""
    path = tmp_path / "s.json"
    sync = nsdk.Client(server.base_url, token_store=nsdk.FileTokenStore(path))
    sync.login(email=EMAIL, password=PASSWORD)
    async with nsdk.AsyncClient(server.base_url, token_store=nsdk.FileTokenStore(path)) as other:
        rotated = await other.refresh()  # the async client rotates
        assert sync.refresh() == rotated  # the sync client finds it in the file: no request
        assert (await other.me()).email == EMAIL
    stats = server.stats()
    assert stats["refresh_requests"] == 1 and stats["replays"] == 0
    data = json.loads(path.read_text())
    assert data["generation"] == 3 and data["refreshing"] is None  # login, mark, store
