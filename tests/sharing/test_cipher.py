"""Tokens at rest: FileTokenStore with an AesGcmCipher, on real files and against the server.

Sealed records round-trip and hold no token in clear; a wrong key, a tampered or moved record, and
a sealed/clear mix-up each give their typed error and leave the file as it was. Keys are added
to the secret ledger, so the suite's scan also proves no key reaches a message, repr or log.
"""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nsdk
import pytest
from _secret_scan import LEDGER
from nsdk_server.testing import ServerHandle, run_server_in_thread

EMAIL, PASSWORD = "user@example.com", "demo-password"
PAIR = nsdk.Tokens("header.payload.signature-of-the-jwt", "refresh-secret-value")
SESSION = nsdk.StoredSession(3, PAIR, nsdk.RefreshInFlight(started_at=1.5, deadline=9.0))


def _key(fill: int | None = None) -> bytes:
    """A key, recorded in the secret ledger in every form it could leak in."""
    key = nsdk.AesGcmCipher.generate_key() if fill is None else bytes([fill]) * 32
    for form in (key.hex(), base64.urlsafe_b64encode(key).decode(), base64.b64encode(key).decode()):
        LEDGER.secret(form)
    return key


KEY, OTHER_KEY = _key(), _key()


@pytest.fixture
def cipher() -> nsdk.AesGcmCipher:
    """The cipher of KEY."""
    return nsdk.AesGcmCipher(KEY)


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


def _sealed(path: Path, cipher: nsdk.TokenCipher) -> bytes:
    """Write SESSION sealed at ``path``; return the file's bytes."""
    assert nsdk.FileTokenStore(path, cipher=cipher).compare_and_set(0, SESSION)
    return path.read_bytes()


def _write(path: Path, raw: bytes) -> None:
    path.write_bytes(raw)
    path.chmod(0o600)


# --- the sealed file -------------------------------------------------------------------------


def test_round_trip_and_no_token_on_disk(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """A sealed write reads back whole; the file is the envelope and holds neither token."""
    path = tmp_path / "s.json"
    raw = _sealed(path, cipher)
    assert nsdk.FileTokenStore(path, cipher=cipher).read() == SESSION
    for secret in (PAIR.access_token, PAIR.refresh_token, "signature-of-the-jwt", "refresh-secret"):
        assert secret.encode() not in raw
    envelope = json.loads(raw)
    assert set(envelope) == {"format", "version", "key_id", "sealed"}
    assert envelope["format"] == "nsdk-session-sealed" and envelope["version"] == 1
    assert envelope["key_id"] == cipher.key_id
    # nonce (12) + the plain record + GCM tag (16): the content is sealed, not compressed away
    assert len(base64.b64decode(envelope["sealed"])) > 12 + 16 + len(PAIR.refresh_token)


def test_every_write_has_a_fresh_nonce(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """Sealing the same session twice gives different bytes (a random nonce per seal)."""
    a, b = _sealed(tmp_path / "a.json", cipher), _sealed(tmp_path / "b.json", cipher)
    nonce = [base64.b64decode(json.loads(raw)["sealed"])[:12] for raw in (a, b)]
    assert nonce[0] != nonce[1]
    assert cipher.seal(b"same", b"ctx") != cipher.seal(b"same", b"ctx")


def test_compare_and_set_over_a_sealed_file(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """Compare-and-set sees the sealed generation: stale writes are fenced off, fresh ones land."""
    store = nsdk.FileTokenStore(tmp_path / "s.json", cipher=cipher)
    assert store.compare_and_set(0, SESSION)
    assert not store.compare_and_set(0, nsdk.StoredSession(1, None))
    assert store.compare_and_set(3, nsdk.StoredSession(4, None, None, expired=True))
    assert store.read() == nsdk.StoredSession(4, None, None, expired=True)


def test_wrong_key_names_both_key_ids(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """A record sealed with another key: TokenStoreKeyError naming both key ids; file untouched."""
    path = tmp_path / "s.json"
    raw = _sealed(path, cipher)
    other = nsdk.AesGcmCipher(OTHER_KEY)
    with pytest.raises(nsdk.TokenStoreKeyError) as info:
        nsdk.FileTokenStore(path, cipher=other).read()
    message = str(info.value)
    assert f"sealed with key {cipher.key_id}" in message and f"has key {other.key_id}" in message
    assert info.value.record_key_id == cipher.key_id and info.value.key_id == other.key_id
    assert info.value.store == str(path) and str(path) in message
    assert path.read_bytes() == raw


def test_tampered_record_is_corrupt(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """One flipped bit anywhere in the sealed bytes: TokenStoreCorruptError, file untouched."""
    path = tmp_path / "s.json"
    envelope = json.loads(_sealed(path, cipher))
    sealed = bytearray(base64.b64decode(envelope["sealed"]))
    for index in (0, 20, len(sealed) - 1):  # the nonce, the ciphertext, the tag
        flipped = bytearray(sealed)
        flipped[index] ^= 0x01
        raw = json.dumps({**envelope, "sealed": base64.b64encode(flipped).decode()}).encode()
        _write(path, raw)
        with pytest.raises(nsdk.TokenStoreCorruptError, match="tampered with") as info:
            nsdk.FileTokenStore(path, cipher=cipher).read()
        assert not isinstance(info.value, nsdk.TokenStoreKeyError)
        assert path.read_bytes() == raw


def test_record_moved_to_another_path_does_not_open(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """The path is bound into the record: the same bytes at another path do not authenticate."""
    raw = _sealed(tmp_path / "s.json", cipher)
    moved = tmp_path / "elsewhere" / "s.json"
    moved.parent.mkdir(mode=0o700)
    _write(moved, raw)
    with pytest.raises(nsdk.TokenStoreCorruptError, match="copied from another store"):
        nsdk.FileTokenStore(moved, cipher=cipher).read()


def test_plain_record_read_with_a_cipher_is_refused(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """A clear-text record where sealed ones are expected: TokenStoreKeyError, never adopted."""
    path = tmp_path / "s.json"
    assert nsdk.FileTokenStore(path).compare_and_set(0, SESSION)  # planted, in clear
    raw = path.read_bytes()
    with pytest.raises(nsdk.TokenStoreKeyError, match="unencrypted session") as info:
        nsdk.Client("http://127.0.0.1:9", token_store=nsdk.FileTokenStore(path, cipher=cipher))
    assert "delete the file and sign in again" in str(info.value)
    assert info.value.record_key_id is None and info.value.key_id == cipher.key_id
    assert path.read_bytes() == raw


def test_sealed_record_read_without_a_cipher_is_refused(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """A sealed record read by a store without a cipher: TokenStoreKeyError saying it is sealed."""
    path = tmp_path / "s.json"
    raw = _sealed(path, cipher)
    with pytest.raises(nsdk.TokenStoreKeyError, match="encrypted session") as info:
        nsdk.Client("http://127.0.0.1:9", token_store=nsdk.FileTokenStore(path))
    assert cipher.key_id in str(info.value) and "cipher=" in str(info.value)
    assert info.value.record_key_id == cipher.key_id and info.value.key_id is None
    assert path.read_bytes() == raw


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"version": 2}, "sealed format version 2"),
        ({"key_id": "not a key id!"}, "envelope is invalid"),
        ({"sealed": 42}, "envelope is invalid"),
        ({"sealed": "%%%not-base64"}, "not valid base64"),
        ({"sealed": "AAAA"}, "tampered with"),  # too short to hold a nonce and a tag
    ],
)
def test_bad_envelope_is_corrupt(
    tmp_path: Path, cipher: nsdk.AesGcmCipher, change: dict[str, object], why: str
):
    """A malformed or future envelope: TokenStoreCorruptError naming the path, never guessed at."""
    path = tmp_path / "s.json"
    envelope = json.loads(_sealed(path, cipher))
    _write(path, json.dumps({**envelope, **change}).encode())
    with pytest.raises(nsdk.TokenStoreCorruptError, match=why) as info:
        nsdk.FileTokenStore(path, cipher=cipher).read()
    assert info.value.store == str(path)


# --- the cipher ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (bytes(16), "32-byte key .* got 16 bytes"),
        (bytes(33), "got 33 bytes"),
        (b"", "got 0 bytes"),
        ("k" * 32, "as bytes, got str"),
    ],
)
def test_key_must_be_32_bytes(key: object, match: str):
    """AES-256 only: another length or a str key is a ConfigurationError."""
    with pytest.raises(nsdk.ConfigurationError, match=match):
        nsdk.AesGcmCipher(key)  # type: ignore[arg-type]


def test_from_env_reads_urlsafe_base64():
    """from_env decodes NSDK_STORE_KEY (padded or not) to the same key; the name can change."""
    encoded = base64.urlsafe_b64encode(KEY).decode()
    default = nsdk.AesGcmCipher.from_env(environ={"NSDK_STORE_KEY": encoded})
    other = nsdk.AesGcmCipher.from_env("MY_KEY", environ={"MY_KEY": encoded.rstrip("=") + "\n"})
    assert default.key_id == other.key_id == nsdk.AesGcmCipher(KEY).key_id


def test_from_env_uses_the_process_environment(monkeypatch: pytest.MonkeyPatch):
    """Without environ=, from_env reads os.environ."""
    monkeypatch.setenv("NSDK_STORE_KEY", base64.urlsafe_b64encode(KEY).decode())
    assert nsdk.AesGcmCipher.from_env().key_id == nsdk.AesGcmCipher(KEY).key_id


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "NSDK_STORE_KEY is not set"),
        ("  ", "NSDK_STORE_KEY is not set"),
        ("not*base64*at*all", "not valid urlsafe base64"),
        (base64.urlsafe_b64encode(b"secret-but-short").decode(), "decodes to 16 bytes"),
        (KEY.hex(), "decodes to 48 bytes"),  # hex is valid base64 of the wrong length
    ],
)
def test_from_env_errors_never_show_the_value(value: str | None, match: str):
    """A missing, malformed or short key: ConfigurationError naming the variable, not the value."""
    environ = {} if value is None else {"NSDK_STORE_KEY": value}
    with pytest.raises(nsdk.ConfigurationError, match=match) as info:
        nsdk.AesGcmCipher.from_env(environ=environ)
    if value and value.strip():
        assert value not in str(info.value) and value not in repr(info.value)


def test_repr_shows_the_key_id_never_the_key(tmp_path: Path, cipher: nsdk.AesGcmCipher):
    """repr(cipher) and repr(store) show the key id only; a cipher cannot be pickled."""
    store = nsdk.FileTokenStore(tmp_path / "s.json", cipher=cipher)
    assert repr(cipher) == f"AesGcmCipher(key_id={cipher.key_id!r})"
    assert repr(store) == f"FileTokenStore({str(tmp_path / 's.json')!r}, cipher={cipher!r})"
    for text in (repr(cipher), repr(store), str(vars(store))):
        assert KEY.hex() not in text and base64.b64encode(KEY).decode() not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(cipher)


def test_key_id_is_a_stable_fingerprint():
    """key_id: 16 hex digits, the same for the same key, different for another key."""
    fixed = nsdk.AesGcmCipher(_key(fill=7))
    assert fixed.key_id == nsdk.AesGcmCipher(bytes([7]) * 32).key_id
    assert len(fixed.key_id) == 16 and int(fixed.key_id, 16) >= 0
    assert nsdk.AesGcmCipher(KEY).key_id != nsdk.AesGcmCipher(OTHER_KEY).key_id
    assert bytes([7]).hex() * 8 != fixed.key_id  # not a prefix of the key


def test_open_refuses_another_context(cipher: nsdk.AesGcmCipher):
    """The context is associated data: the same sealed bytes do not open under another one."""
    sealed = cipher.seal(b"plain", b"one")
    assert cipher.open(sealed, b"one") == b"plain"
    with pytest.raises(ValueError, match="does not authenticate"):
        cipher.open(sealed, b"two")
    with pytest.raises(ValueError, match="truncated"):
        cipher.open(sealed[:20], b"one")


def test_store_refuses_what_is_not_a_cipher(tmp_path: Path):
    """cipher= must be a TokenCipher with a well-formed key_id: ConfigurationError otherwise."""

    class BadId:
        key_id = "has spaces and / slashes"

        def seal(self, plaintext: bytes, context: bytes) -> bytes:
            return plaintext

        def open(self, sealed: bytes, context: bytes) -> bytes:
            return sealed

    with pytest.raises(nsdk.ConfigurationError, match="TokenCipher"):
        nsdk.FileTokenStore(tmp_path / "s.json", cipher=b"0" * 32)  # type: ignore[arg-type]
    with pytest.raises(nsdk.ConfigurationError, match="key_id must be"):
        nsdk.FileTokenStore(tmp_path / "s.json", cipher=BadId())


def test_a_failing_custom_cipher_is_a_token_store_error(tmp_path: Path):
    """A custom cipher that fails (not an authentication failure): TokenStoreError, chained."""

    class Unreachable:
        key_id = "kms-1"

        def seal(self, plaintext: bytes, context: bytes) -> bytes:
            raise ConnectionError("KMS down")

        def open(self, sealed: bytes, context: bytes) -> bytes:
            raise ConnectionError("KMS down")

    store = nsdk.FileTokenStore(tmp_path / "s.json", cipher=Unreachable())
    with pytest.raises(nsdk.TokenStoreError, match="could not seal") as info:
        store.compare_and_set(0, SESSION)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert not (tmp_path / "s.json").exists()
    _write(tmp_path / "s.json", _sealed(tmp_path / "t.json", _Fake("kms-1")))
    with pytest.raises(nsdk.TokenStoreError, match="could not open") as info:
        store.read()
    assert type(info.value) is nsdk.TokenStoreError


class _Fake:
    """A TokenCipher that 'seals' by reversing (only to write an envelope with a given key id)."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        return plaintext[::-1]

    def open(self, sealed: bytes, context: bytes) -> bytes:
        return sealed[::-1]


def test_import_nsdk_does_not_import_cryptography():
    """cryptography is imported when a cipher is built, never by import nsdk."""
    code = (
        "import sys, nsdk; assert 'cryptography' not in sys.modules, 'at import'; "
        "nsdk.AesGcmCipher(bytes(32)); assert 'cryptography' in sys.modules"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


# --- a whole flow against the reference server ---------------------------------------------


def test_clients_share_a_sealed_session(tmp_path: Path, server: ServerHandle):
    """Login and refresh write sealed records; a peer with the key adopts them, unsent.

    A client with another key, or with none, is refused at construction, and nothing it did
    reached the server.
    """
    path = tmp_path / "s.json"
    a = nsdk.Client(
        server.base_url, token_store=nsdk.FileTokenStore(path, cipher=nsdk.AesGcmCipher(KEY))
    )
    a.login(email=EMAIL, password=PASSWORD)
    b = nsdk.Client(
        server.base_url, token_store=nsdk.FileTokenStore(path, cipher=nsdk.AesGcmCipher(KEY))
    )
    assert b.state is nsdk.SessionState.ACTIVE and b.me().email == EMAIL  # resumed from the file
    rotated = a.refresh()
    assert b.refresh() == rotated  # b finds the new pair in the sealed file: no request
    assert b.me().email == EMAIL
    raw = path.read_bytes()
    assert json.loads(raw)["format"] == "nsdk-session-sealed"
    assert rotated.access_token.encode() not in raw and rotated.refresh_token.encode() not in raw
    stats = server.stats()
    assert stats["refresh_requests"] == 1 and stats["replays"] == 0
    for store in (
        nsdk.FileTokenStore(path, cipher=nsdk.AesGcmCipher(OTHER_KEY)),
        nsdk.FileTokenStore(path),
    ):
        with pytest.raises(nsdk.TokenStoreKeyError):
            nsdk.Client(server.base_url, token_store=store)
    assert server.stats()["refresh_requests"] == 1
    a.logout()
    with pytest.raises(nsdk.NotAuthenticatedError):
        b.reload_session()
    assert json.loads(raw) != json.loads(path.read_bytes())  # the logout was sealed too
    a.close()
    b.close()


async def test_async_client_reads_and_writes_sealed_records(tmp_path: Path, server: ServerHandle):
    """An AsyncClient with the same key refreshes a session a sync client sealed; it adopts."""
    path = tmp_path / "s.json"
    with nsdk.Client(
        server.base_url, token_store=nsdk.FileTokenStore(path, cipher=nsdk.AesGcmCipher(KEY))
    ) as sync:
        sync.login(email=EMAIL, password=PASSWORD)
        store = nsdk.FileTokenStore(path, cipher=nsdk.AesGcmCipher(KEY))
        async with nsdk.AsyncClient(server.base_url, token_store=store) as other:
            rotated = await other.refresh()
            assert sync.refresh() == rotated
            assert (await other.me()).email == EMAIL
    assert server.stats()["refresh_requests"] == 1
    assert nsdk.FileTokenStore(path, cipher=nsdk.AesGcmCipher(KEY)).read().generation == 3
