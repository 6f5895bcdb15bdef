"""What ``nox -s mutation`` found unpinned in FileTokenStore, the record codec and the cipher.

Real files in a tmp directory, real kernel locks; each test pins one behaviour a surviving mutant
changed: the exact bytes of a record and its associated data (files written by another nsdk
version must open), each error's type, message and ``store``, the modes a directory is created
with, the temporary file of an atomic write, a symlink refused, the empty plaintext of a seal.
Keys go to the secret ledger, as in test_cipher.py.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import nsdk
import pytest
from _secret_scan import LEDGER
from filelock import FileLock
from nsdk import _codec

PAIR = nsdk.Tokens("a.b.c", "refresh-secret")
REMEDY = "delete the file and sign in again"
#: The record encode_session writes for StoredSession(1, PAIR): compact JSON, in this order.
RECORD = (
    b'{"format":"nsdk-session","version":1,"generation":1,'
    b'"tokens":{"access_token":"a.b.c","refresh_token":"refresh-secret"},'
    b'"refreshing":null,"expired":false}'
)


def _key(key: bytes) -> bytes:
    """A fixed key, recorded in the secret ledger in every form it could leak in."""
    for form in (key.hex(), base64.urlsafe_b64encode(key).decode(), base64.b64encode(key).decode()):
        LEDGER.secret(form)
    return key


KEY = _key(bytes([7]) * 32)


def _write(path: Path, raw: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(raw)
    path.chmod(0o600)


def _corrupt(path: Path, raw: bytes, cipher: nsdk.TokenCipher | None = None) -> str:
    """The message of the TokenStoreCorruptError that reading ``raw`` at ``path`` raises."""
    _write(path, raw)
    with pytest.raises(nsdk.TokenStoreCorruptError) as info:
        nsdk.FileTokenStore(path, cipher=cipher).read()
    assert info.value.store == str(path)
    return str(info.value)


class _Reversing:
    """A TokenCipher that 'seals' by reversing: an envelope holding any plaintext we choose."""

    key_id = "kms-1"

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        return plaintext[::-1]

    def open(self, sealed: bytes, context: bytes) -> bytes:
        return sealed[::-1]


def _envelope(plaintext: bytes, key_id: str = "kms-1") -> bytes:
    sealed = base64.b64encode(plaintext[::-1]).decode()
    return json.dumps(
        {"format": "nsdk-session-sealed", "version": 1, "key_id": key_id, "sealed": sealed}
    ).encode()


# --- the record and the envelope ---------------------------------------------------------------


def test_record_bytes_are_pinned(tmp_path: Path) -> None:
    """The file holds exactly the compact versioned JSON record (the format other versions read)."""
    path = tmp_path / "s.json"
    assert nsdk.FileTokenStore(path).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    assert path.read_bytes() == RECORD == _codec.encode_session(nsdk.StoredSession(1, PAIR))


def test_sealed_envelope_is_compact_json(tmp_path: Path) -> None:
    """The sealed envelope is compact JSON too (no spaces), in base64 over the sealed bytes."""
    path = tmp_path / "s.json"
    cipher = nsdk.AesGcmCipher(KEY)
    assert nsdk.FileTokenStore(path, cipher=cipher).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    raw = path.read_bytes()
    envelope = json.loads(raw)
    assert raw == json.dumps(envelope, separators=(",", ":")).encode()
    assert list(envelope) == ["format", "version", "key_id", "sealed"]


def test_a_record_sealed_for_the_file_by_hand_opens(tmp_path: Path) -> None:
    """The associated data is b"nsdk-session-sealed/1", NUL, b"nsdk-file:" and the absolute path.

    A record sealed with exactly that (as any nsdk version writes it) opens; so a change of the
    associated data, which would strand every sealed file already written, is caught.
    """
    path = tmp_path / "s.json"
    cipher = nsdk.AesGcmCipher(KEY)
    context = b"nsdk-session-sealed/1\x00nsdk-file:" + os.fsencode(path)
    sealed = cipher.seal(RECORD, context)
    envelope = {
        "format": "nsdk-session-sealed",
        "version": 1,
        "key_id": cipher.key_id,
        "sealed": base64.b64encode(sealed).decode(),
    }
    _write(path, json.dumps(envelope).encode())
    assert nsdk.FileTokenStore(path, cipher=cipher).read() == nsdk.StoredSession(1, PAIR)


# --- what the codec refuses, and the exact messages ---------------------------------------------


REFRESH_INVALID = "the file's refresh record is invalid"


def _fields(**change: object) -> bytes:
    record: dict[str, Any] = json.loads(RECORD)
    record.update(change)
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"generation": "1"}, "the file's generation or state is invalid"),
        ({"generation": True}, "the file's generation or state is invalid"),
        ({"expired": "no"}, "the file's generation or state is invalid"),
        ({"tokens": {"access_token": 5, "refresh_token": "r"}}, "the file's tokens are invalid"),
        ({"tokens": {"access_token": "a", "refresh_token": 5}}, "the file's tokens are invalid"),
        ({"tokens": {"access_token": "a", "refresh_token": ""}}, "the file's tokens are invalid"),
        ({"tokens": {"access_token": "", "refresh_token": "r"}}, "the file's tokens are invalid"),
        ({"tokens": "a.b.c"}, "the file's tokens are invalid"),
        ({"refreshing": {"started_at": "x", "deadline": 1}}, REFRESH_INVALID),
        ({"refreshing": {"started_at": 1, "deadline": "x"}}, REFRESH_INVALID),
        ({"refreshing": {"started_at": True, "deadline": 1}}, REFRESH_INVALID),
        ({"refreshing": [1, 2]}, REFRESH_INVALID),
        ({"format": "other"}, "the file is not an nsdk session record"),
    ],
)
def test_invalid_fields_are_corrupt_with_the_exact_message(
    tmp_path: Path, change: dict[str, object], why: str
) -> None:
    """Each wrong field is a TokenStoreCorruptError with its exact message, never another error."""
    path = tmp_path / "s.json"
    assert _corrupt(path, _fields(**change)) == f"{path}: {why}; nothing was changed: {REMEDY}"


def test_generation_zero_and_a_whole_refresh_record_are_valid(tmp_path: Path) -> None:
    """Generation 0 (never written) and integer refresh times are read, not refused."""
    path = tmp_path / "s.json"
    _write(path, _fields(generation=0, tokens=None, refreshing={"started_at": 1, "deadline": 2}))
    assert nsdk.FileTokenStore(path).read() == nsdk.StoredSession(
        0, None, nsdk.RefreshInFlight(started_at=1.0, deadline=2.0)
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "the file is empty"),
        (b"{", "the file is not valid JSON (torn or corrupt)"),
        (b"[1]", "the file is not an nsdk session record"),
    ],
)
def test_unreadable_files_have_the_exact_message(tmp_path: Path, raw: bytes, why: str) -> None:
    """Without a cipher: empty, torn and foreign files name the file, the fault and the remedy."""
    path = tmp_path / "s.json"
    assert _corrupt(path, raw) == f"{path}: {why}; nothing was changed: {REMEDY}"


def test_decode_session_defaults_to_the_file() -> None:
    """decode_session() called without ``what`` speaks of "the file"."""
    with pytest.raises(nsdk.TokenStoreCorruptError) as info:
        _codec.decode_session(b" ", "W", "R")
    assert str(info.value) == "W: the file is empty; nothing was changed: R"
    assert info.value.store == "W"


def test_seal_session_defaults_to_no_store_name() -> None:
    """seal_session() without ``where``: the cipher's failure names no store."""

    class Failing(_Reversing):
        def seal(self, plaintext: bytes, context: bytes) -> bytes:
            raise ConnectionError("KMS down")

    with pytest.raises(nsdk.TokenStoreError) as info:
        _codec.seal_session(nsdk.StoredSession(1, PAIR), Failing(), b"ctx")
    assert str(info.value) == (
        ": the cipher could not seal the session (ConnectionError); nothing was written"
    )
    assert info.value.store == ""


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "the file is empty"),
        (b"{", "the file is not valid JSON (torn or corrupt)"),
        (b'{"format": "other"}', "the file is not an nsdk session record"),
        (
            b'{"format": "nsdk-session-sealed", "version": 2}',
            "the file has sealed format version 2, this nsdk reads 1",
        ),
        (
            b'{"format": "nsdk-session-sealed", "version": 1, "key_id": "k", "sealed": 1}',
            "the file's envelope is invalid",
        ),
    ],
)
def test_unreadable_sealed_files_have_the_exact_message(
    tmp_path: Path, raw: bytes, why: str
) -> None:
    """With a cipher: empty, torn, foreign and future envelopes have their exact message."""
    path = tmp_path / "s.json"
    message = _corrupt(path, raw, nsdk.AesGcmCipher(KEY))
    assert message == f"{path}: {why}; nothing was changed: {REMEDY}"


@pytest.mark.parametrize(
    ("plaintext", "why"),
    [
        (b"", "the file's sealed session is empty"),
        (b"not json", "the file's sealed session is not valid JSON (torn or corrupt)"),
        (b'{"format": "other"}', "the file is not an nsdk session record"),
        (b'{"format": "nsdk-session", "version": 1, "generation": -1}', "the file's generation"),
    ],
)
def test_what_a_seal_holds_is_checked_like_a_record(
    tmp_path: Path, plaintext: bytes, why: str
) -> None:
    """A sealed record that opens to garbage: TokenStoreCorruptError with the exact message."""
    path = tmp_path / "s.json"
    message = _corrupt(path, _envelope(plaintext), _Reversing())
    assert message.startswith(f"{path}: {why}")
    assert message.endswith(f"; nothing was changed: {REMEDY}")


def test_a_sealed_record_with_a_bad_key_id_read_without_a_cipher(tmp_path: Path) -> None:
    """Sealed, with a key_id that is not one, read without a cipher: "sealed with key unknown"."""
    path = tmp_path / "s.json"
    _write(path, _envelope(RECORD, key_id="not a key id!"))
    with pytest.raises(nsdk.TokenStoreKeyError) as info:
        nsdk.FileTokenStore(path).read()
    assert str(info.value) == (
        f"{path}: the file holds an encrypted session (sealed with key unknown) and this store "
        f"has no cipher; nothing was changed: give the store the cipher with that key "
        f"(cipher=...), or {REMEDY}"
    )
    assert info.value.store == str(path) and info.value.record_key_id is None


def test_a_clear_record_read_with_a_cipher_names_the_store(tmp_path: Path) -> None:
    """A clear record read with a cipher: TokenStoreKeyError naming the store and the key id."""
    path = tmp_path / "s.json"
    _write(path, RECORD)
    cipher = nsdk.AesGcmCipher(KEY)
    with pytest.raises(nsdk.TokenStoreKeyError) as info:
        nsdk.FileTokenStore(path, cipher=cipher).read()
    assert info.value.store == str(path) and info.value.key_id == cipher.key_id


def test_sealed_content_must_be_strict_base64(tmp_path: Path) -> None:
    """A stray character in the sealed base64 is corrupt, not skipped over and opened anyway."""
    path = tmp_path / "s.json"
    cipher = nsdk.AesGcmCipher(KEY)
    nsdk.FileTokenStore(path, cipher=cipher).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    envelope = json.loads(path.read_bytes())
    envelope["sealed"] = envelope["sealed"][:8] + "*" + envelope["sealed"][8:]
    message = _corrupt(path, json.dumps(envelope).encode(), cipher)
    assert message == (
        f"{path}: the file's sealed content is not valid base64 (torn or corrupt); "
        f"nothing was changed: {REMEDY}"
    )


def test_a_record_that_does_not_authenticate_has_the_exact_message(tmp_path: Path) -> None:
    """Sealed for another path: corrupt, naming the key id and the likely causes."""
    cipher = nsdk.AesGcmCipher(KEY)
    other = tmp_path / "other.json"
    nsdk.FileTokenStore(other, cipher=cipher).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    path = tmp_path / "s.json"
    message = _corrupt(path, other.read_bytes(), cipher)
    assert message == (
        f"{path}: the file does not authenticate with key {cipher.key_id}: tampered with, "
        f"corrupt, or copied from another store; nothing was changed: {REMEDY}"
    )


def test_a_failing_cipher_names_the_store_and_the_error(tmp_path: Path) -> None:
    """A cipher that fails (not an authentication failure): exact messages, store, the cause."""

    class Failing(_Reversing):
        def seal(self, plaintext: bytes, context: bytes) -> bytes:
            raise ConnectionError("KMS down")

        def open(self, sealed: bytes, context: bytes) -> bytes:
            raise TimeoutError("KMS slow")

    path = tmp_path / "s.json"
    store = nsdk.FileTokenStore(path, cipher=Failing())
    with pytest.raises(nsdk.TokenStoreError) as info:
        store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    assert str(info.value) == (
        f"{path}: the cipher could not seal the session (ConnectionError); nothing was written"
    )
    assert info.value.store == str(path)
    _write(path, _envelope(RECORD))
    with pytest.raises(nsdk.TokenStoreError) as info:
        store.read()
    assert str(info.value) == (
        f"{path}: the cipher could not open the session (TimeoutError); nothing was changed"
    )
    assert info.value.store == str(path) and isinstance(info.value.__cause__, TimeoutError)


# --- the file store -----------------------------------------------------------------------------


def test_lock_timeout_must_be_positive(tmp_path: Path) -> None:
    """lock_timeout=0 is a ConfigurationError with the exact message."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.FileTokenStore(tmp_path / "s.json", lock_timeout=0)
    assert str(info.value) == "lock_timeout must be positive, got 0"


def test_without_filelock_the_store_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """filelock not installed: ConfigurationError naming the extra to install."""
    find_spec = importlib.util.find_spec

    def without_filelock(name: str, package: str | None = None) -> object:
        return None if name == "filelock" else find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_filelock)
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.FileTokenStore(tmp_path / "s.json")
    assert str(info.value) == "FileTokenStore needs the 'file' extra: pip install 'nsdk[file]'"


def test_outside_posix_the_store_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a POSIX system: ConfigurationError saying why (flock, file modes)."""
    monkeypatch.setattr(os, "name", "nt")
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.FileTokenStore(tmp_path / "s.json")
    assert str(info.value) == "FileTokenStore needs a POSIX system (flock, file modes)"


@pytest.mark.parametrize(("what", "mode"), [("file", 0o640), ("directory", 0o770)])
def test_unsafe_modes_have_the_exact_message(tmp_path: Path, what: str, mode: int) -> None:
    """Read and compare-and-set refuse a shared file or directory, saying which chmod fixes it."""
    path = tmp_path / "d" / "s.json"
    store = nsdk.FileTokenStore(path)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    target = path if what == "file" else path.parent
    target.chmod(mode)
    fix = "600" if what == "file" else "700"
    expected = (
        f"{target}: the {what} is accessible by other users (mode {mode:04o}); "
        f"run chmod {fix} on it"
    )
    for attempt in (store.read, lambda: store.compare_and_set(1, nsdk.StoredSession(2, None))):
        with pytest.raises(nsdk.TokenStorePermissionError) as info:
            attempt()
        assert str(info.value) == expected and info.value.store == str(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """A store directory owned by another uid: the exact message, with the store named."""
    path = tmp_path / "d" / "s.json"
    store = nsdk.FileTokenStore(path)
    store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    os.chown(path.parent, 65534, 65534)
    with pytest.raises(nsdk.TokenStorePermissionError) as info:
        store.read()
    assert str(info.value) == (
        f"{path.parent}: the directory is owned by uid 65534, not by this user ({os.geteuid()}); "
        "refusing to use it"
    )
    assert info.value.store == str(path)


def test_a_directory_others_may_only_traverse_is_accepted(tmp_path: Path) -> None:
    """Only group/other *write* on the directory is refused (0022): 0711 is fine, as for ssh."""
    path = tmp_path / "d" / "s.json"
    store = nsdk.FileTokenStore(path)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    path.parent.chmod(0o711)
    assert store.compare_and_set(1, nsdk.StoredSession(2, PAIR))
    assert store.read() == nsdk.StoredSession(2, PAIR)


def test_each_new_directory_is_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each missing level is made 0700 by mkdir itself (no moment open to others), then chmod."""
    path = tmp_path / "a" / "b" / "s.json"
    created: list[tuple[str, int]] = []
    chmod = Path.chmod

    def recording(self: Path, mode: int, **kwargs: Any) -> None:
        created.append((self.name, stat.S_IMODE(self.stat().st_mode)))
        chmod(self, mode, **kwargs)

    monkeypatch.setattr(Path, "chmod", recording)
    old = os.umask(0)
    try:
        assert nsdk.FileTokenStore(path).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    finally:
        os.umask(old)
    assert created == [("a", 0o700), ("b", 0o700)]


def test_a_directory_created_meanwhile_by_another_process_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory appears between the check and mkdir (another process): no error."""
    path = tmp_path / "d" / "s.json"
    path.parent.mkdir(mode=0o700)
    exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: self != path.parent and exists(self))
    assert nsdk.FileTokenStore(path).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    assert path.read_bytes() == RECORD


def test_os_errors_name_the_store_and_what_failed(tmp_path: Path) -> None:
    """Under a regular file: reading and writing fail with TokenStoreError, exact messages."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    path = blocker / "d" / "s.json"
    store = nsdk.FileTokenStore(path)
    with pytest.raises(nsdk.TokenStoreError) as info:
        store.read()
    assert str(info.value) == f"{path}: cannot read the session file: Not a directory"
    assert info.value.store == str(path)
    with pytest.raises(nsdk.TokenStoreError) as info:
        store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    assert str(info.value) == f"{path}: cannot create or check its directory: Not a directory"
    assert info.value.store == str(path)


def test_a_directory_in_place_of_the_file_fails_to_read(tmp_path: Path) -> None:
    """The session path is a directory: TokenStoreError "cannot read the session file"."""
    path = tmp_path / "d" / "s.json"
    path.mkdir(mode=0o700, parents=True)
    path.parent.chmod(0o700)
    with pytest.raises(nsdk.TokenStoreError) as info:
        nsdk.FileTokenStore(path).read()
    assert str(info.value) == f"{path}: cannot read the session file: Is a directory"


def test_a_symlink_in_place_of_the_file_is_not_followed(tmp_path: Path) -> None:
    """The session file is a symlink (to a valid session): refused, never followed."""
    target = tmp_path / "elsewhere.json"
    _write(target, RECORD)
    path = tmp_path / "d" / "s.json"
    path.parent.mkdir(mode=0o700)
    path.symlink_to(target)
    with pytest.raises(nsdk.TokenStoreError) as info:
        nsdk.FileTokenStore(path).read()
    assert str(info.value) == (
        f"{path}: cannot read the session file: Too many levels of symbolic links"
    )


def test_an_error_without_strerror_names_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError without strerror is named by its type; the temporary file never exists."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    path = tmp_path / "s.json"
    with pytest.raises(nsdk.TokenStoreError) as info:
        nsdk.FileTokenStore(path).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    assert str(info.value) == f"{path}: cannot write the session file: PermissionError"
    assert info.value.store == str(path)


def test_the_temporary_file_is_a_hidden_sibling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write goes to ``.s.json.<random>.tmp`` beside the file (one filesystem: atomic)."""
    renamed: list[tuple[str, str]] = []
    replace = os.replace

    def recording(src: str, dst: str) -> None:
        renamed.append((str(src), str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    path = tmp_path / "s.json"
    assert nsdk.FileTokenStore(path).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    [(src, dst)] = renamed
    assert dst == str(path) and os.path.dirname(src) == str(tmp_path)
    name = os.path.basename(src)
    assert name.startswith(".s.json.") and name.endswith(".tmp") and len(name) > len(".s.json..tmp")


def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync fails: TokenStoreError, the temporary file removed, the old file kept."""
    path = tmp_path / "s.json"
    store = nsdk.FileTokenStore(path)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR))

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(nsdk.TokenStoreError) as info:
        store.compare_and_set(1, nsdk.StoredSession(2, None))
    assert str(info.value) == f"{path}: cannot write the session file: Input/output error"
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.json.write.lock"]
    assert store.read() == nsdk.StoredSession(1, PAIR)


def test_a_temporary_file_that_cannot_be_removed_keeps_the_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync and then the clean-up fail: still the write's TokenStoreError, nothing else."""
    path = tmp_path / "s.json"

    def failing(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    monkeypatch.setattr(os, "unlink", failing)
    with pytest.raises(nsdk.TokenStoreError) as info:
        nsdk.FileTokenStore(path).compare_and_set(0, nsdk.StoredSession(1, PAIR))
    assert str(info.value) == f"{path}: cannot write the session file: Input/output error"


@pytest.mark.parametrize(
    ("suffix", "doing"), [(".write.lock", "write to"), (".lock", "refresh the session in")]
)
def test_busy_locks_say_what_could_not_be_done(tmp_path: Path, suffix: str, doing: str) -> None:
    """Each lock held elsewhere (another open file: another process): TokenStoreBusyError."""
    path = tmp_path / "s.json"
    store = nsdk.FileTokenStore(path, lock_timeout=0.05)
    assert store.compare_and_set(0, nsdk.StoredSession(1, PAIR))
    holder = FileLock(f"{path}{suffix}", thread_local=False)
    with holder, pytest.raises(nsdk.TokenStoreBusyError) as info:
        if suffix == ".lock":
            with store.refresh_lock():
                pass
        else:
            store.compare_and_set(1, nsdk.StoredSession(2, None))
    assert str(info.value) == (
        f"{path}: another client held the lock for more than 0.05 s, so this one could not "
        f"{doing} it; retry, or raise lock_timeout"
    )
    assert info.value.store == str(path)


# --- the cipher ---------------------------------------------------------------------------------


def test_key_id_is_pinned() -> None:
    """key_id is HMAC-SHA256(key, b"nsdk-key-id")[:8] in hex: stored in records, so fixed."""
    assert nsdk.AesGcmCipher(KEY).key_id == "67697ed653ec4812"


def test_cipher_configuration_messages_are_exact(tmp_path: Path) -> None:
    """A str key, a short key, a non-cipher and a bad key_id: each exact message."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.AesGcmCipher("k" * 32)  # type: ignore[arg-type]
    assert str(info.value) == (
        "AesGcmCipher needs the key as bytes, got str (AesGcmCipher.from_env decodes a base64 key)"
    )
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.AesGcmCipher(bytes(16))
    assert str(info.value) == (
        "AesGcmCipher needs a 32-byte key (AES-256), got 16 bytes; "
        "make one with AesGcmCipher.generate_key()"
    )
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.FileTokenStore(tmp_path / "s.json", cipher=b"0" * 32)  # type: ignore[arg-type]
    assert str(info.value) == ("cipher must be an nsdk.TokenCipher (key_id, seal, open), got bytes")

    class BadId(_Reversing):
        key_id = "has spaces"

    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.FileTokenStore(tmp_path / "s.json", cipher=BadId())
    assert str(info.value) == "BadId.key_id must be 1-64 letters, digits, '-' or '_'"


def test_without_cryptography_the_cipher_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """cryptography not installed: ConfigurationError naming the extra to install."""
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.AesGcmCipher(KEY)
    assert str(info.value) == "AesGcmCipher needs the 'crypto' extra: pip install 'nsdk[crypto]'"


def test_from_env_unset_message_is_exact() -> None:
    """NSDK_STORE_KEY unset: the message says how to make a key."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.AesGcmCipher.from_env(environ={})
    assert str(info.value) == (
        "NSDK_STORE_KEY is not set: set it to a 32-byte key in urlsafe base64, made with "
        "base64.urlsafe_b64encode(nsdk.AesGcmCipher.generate_key())"
    )


def test_from_env_reads_the_urlsafe_alphabet() -> None:
    """A key whose urlsafe base64 has '-' and '_' (where standard base64 has '+' and '/')."""
    key = _key(bytes([0xFB]) * 30 + b"\xfb\xff")
    encoded = base64.urlsafe_b64encode(key).decode()
    assert "-" in encoded and "_" in encoded
    cipher = nsdk.AesGcmCipher.from_env(environ={"NSDK_STORE_KEY": encoded})
    assert cipher.key_id == nsdk.AesGcmCipher(key).key_id


def test_an_empty_plaintext_seals_and_opens() -> None:
    """A 16-byte body (no ciphertext, the tag) opens; 15 bytes are truncated; exact messages."""
    cipher = nsdk.AesGcmCipher(KEY)
    sealed = cipher.seal(b"", b"ctx")
    assert len(sealed) == 12 + 16 and cipher.open(sealed, b"ctx") == b""
    with pytest.raises(ValueError) as info:
        cipher.open(sealed[:-1], b"ctx")
    assert str(info.value) == "the sealed record is truncated"
    with pytest.raises(ValueError) as info:
        cipher.open(sealed, b"other")
    assert str(info.value) == "the sealed record does not authenticate with this key and context"


def test_pickling_message_is_exact() -> None:
    """Pickling a cipher: TypeError saying it would write the key out."""
    with pytest.raises(TypeError) as info:
        pickle.dumps(nsdk.AesGcmCipher(KEY))
    assert str(info.value) == "AesGcmCipher cannot be pickled: it would write the key out"


# --- the locks ----------------------------------------------------------------------------------


def test_a_thread_of_this_process_holding_the_section_makes_the_next_wait(tmp_path: Path) -> None:
    """The section held in this process (its thread lock): the next holder is busy, exactly."""
    path = tmp_path / "s.json"
    store = nsdk.FileTokenStore(path, lock_timeout=0.05)
    busy = pytest.raises(nsdk.TokenStoreBusyError)
    with store.refresh_lock(), busy as info, store.refresh_lock():
        pass
    assert str(info.value) == (
        f"{path}: another client held the lock for more than 0.05 s, so this one could not "
        "refresh the session in it; retry, or raise lock_timeout"
    )


def test_the_file_lock_waits_only_what_is_left_of_lock_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel lock is waited for at most lock_timeout minus the time already spent."""
    waits: list[float] = []
    acquire = FileLock.acquire

    def recording(self: FileLock, timeout: float | None = None, **kwargs: Any) -> Any:
        assert timeout is not None
        waits.append(timeout)
        return acquire(self, timeout=timeout, **kwargs)

    monkeypatch.setattr(FileLock, "acquire", recording)
    store = nsdk.FileTokenStore(tmp_path / "s.json", lock_timeout=0.5)
    with store.refresh_lock():
        pass
    assert len(waits) == 1 and 0.3 < waits[0] <= 0.5


def test_a_lock_file_that_cannot_be_opened_names_it(tmp_path: Path) -> None:
    """The lock file's path is a directory: TokenStoreError "cannot take its lock file"."""
    path = tmp_path / "s.json"
    (tmp_path / "s.json.lock").mkdir()
    with pytest.raises(nsdk.TokenStoreError) as info, nsdk.FileTokenStore(path).refresh_lock():
        pass
    assert str(info.value) == f"{path}: cannot take its lock file: Is a directory"
    assert info.value.store == str(path)
