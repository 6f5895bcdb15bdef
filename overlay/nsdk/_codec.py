"""The one serialized form of a ``StoredSession``, shared by the stores that persist bytes.

Versioned JSON: a reader refuses another format or version instead of guessing, and every way the
content can be wrong is one ``TokenStoreCorruptError`` that names the store, never the content.

A store with a ``TokenCipher`` writes the record sealed (``seal_session``) inside an envelope,
and reads with ``open_session``; its associated data is the envelope's format and version plus
the store's ``context`` (its path, its key), so a record copied to another store does not open::

    {"format": "nsdk-session-sealed", "version": 1, "key_id": "3f2a...", "sealed": "<base64>"}

The envelope and the cipher must agree: a sealed record read without a cipher, a clear one read
with a cipher (anyone who can write the store could have planted it), or another ``key_id``, is
a ``TokenStoreKeyError``; a record that does not authenticate is a ``TokenStoreCorruptError``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import TypeGuard, cast

from ._cipher import TokenCipher, is_key_id
from ._errors import NsdkError, TokenStoreCorruptError, TokenStoreError, TokenStoreKeyError
from ._tokens import RefreshInFlight, StoredSession, Tokens

#: The format marker and version of the record; another version is refused, not guessed at.
FORMAT = "nsdk-session"
VERSION = 1
#: The format marker and version of the envelope a store with a cipher writes.
SEALED_FORMAT = "nsdk-session-sealed"
SEALED_VERSION = 1


def encode_session(session: StoredSession) -> bytes:
    """The stored session as bytes (JSON; tokens in clear: a store may seal them)."""
    tokens = session.tokens
    record = session.refreshing
    data = {
        "format": FORMAT,
        "version": VERSION,
        "generation": session.generation,
        "tokens": None
        if tokens is None
        else {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token},
        "refreshing": None
        if record is None
        else {"started_at": record.started_at, "deadline": record.deadline},
        "expired": session.expired,
    }
    return json.dumps(data, separators=(",", ":")).encode()


_Bad = Callable[[str], TokenStoreCorruptError]


def _object(value: object) -> dict[str, object]:
    return cast(dict[str, object], value) if isinstance(value, dict) else {}


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _corrupt(where: str, remedy: str) -> _Bad:
    def bad(why: str) -> TokenStoreCorruptError:
        return TokenStoreCorruptError(f"{where}: {why}; nothing was changed: {remedy}", store=where)

    return bad


def _fields(raw: bytes, bad: _Bad, what: str) -> dict[str, object]:
    if not raw.strip():
        raise bad(f"{what} is empty")
    try:
        data: object = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad(f"{what} is not valid JSON (torn or corrupt)") from None
    return _object(data)


def decode_session(raw: bytes, where: str, remedy: str, what: str = "the file") -> StoredSession:
    """Read bytes written by ``encode_session`` (a store without a cipher).

    Raises:
        TokenStoreCorruptError: Empty, torn, foreign or unknown-version content, naming
            ``where`` (never the content) and what to do (``remedy``).
        TokenStoreKeyError: The record is sealed (``seal_session``): it needs a cipher.
    """
    bad = _corrupt(where, remedy)
    fields = _fields(raw, bad, what)
    if fields.get("format") == SEALED_FORMAT:
        key_id = fields.get("key_id")
        sealed_with = key_id if is_key_id(key_id) else None
        raise TokenStoreKeyError(
            f"{where}: {what} holds an encrypted session (sealed with key "
            f"{sealed_with or 'unknown'}) and this store has no cipher; nothing was changed: "
            f"give the store the cipher with that key (cipher=...), or {remedy}",
            store=where,
            record_key_id=sealed_with,
        )
    return _decode_fields(fields, bad, what)


def _decode_fields(fields: dict[str, object], bad: _Bad, what: str) -> StoredSession:
    if fields.get("format") != FORMAT:
        raise bad(f"{what} is not an nsdk session record")
    if fields.get("version") != VERSION:
        raise bad(f"{what} has format version {fields.get('version')!r}, this nsdk reads {VERSION}")
    generation, tokens, record, expired = (
        fields.get("generation"),
        fields.get("tokens"),
        fields.get("refreshing"),
        fields.get("expired"),
    )
    if type(generation) is not int or generation < 0 or not isinstance(expired, bool):
        raise bad(f"{what}'s generation or state is invalid")
    pair: Tokens | None = None
    if tokens is not None:
        values = _object(tokens)
        access, refresh = values.get("access_token"), values.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
            raise bad(f"{what}'s tokens are invalid")
        pair = Tokens(access_token=access, refresh_token=refresh)
    in_flight: RefreshInFlight | None = None
    if record is not None:
        times = _object(record)
        started, deadline = times.get("started_at"), times.get("deadline")
        if not (_number(started) and _number(deadline)):
            raise bad(f"{what}'s refresh record is invalid")
        in_flight = RefreshInFlight(started_at=float(started), deadline=float(deadline))
    return StoredSession(generation, pair, in_flight, expired)


def _associated_data(context: bytes) -> bytes:
    # The envelope's format and version are authenticated along with the store's context.
    return f"{SEALED_FORMAT}/{SEALED_VERSION}".encode() + b"\x00" + context


def seal_session(
    session: StoredSession, cipher: TokenCipher, context: bytes, where: str = ""
) -> bytes:
    """The stored session sealed by ``cipher`` for ``context``, in its JSON envelope.

    Raises:
        TokenStoreError: The cipher failed (its exception chained), naming ``where``.
    """
    try:
        sealed = cipher.seal(encode_session(session), _associated_data(context))
    except NsdkError:
        raise
    except Exception as exc:
        raise TokenStoreError(
            f"{where}: the cipher could not seal the session ({type(exc).__name__}); "
            "nothing was written",
            store=where,
        ) from exc
    envelope = {
        "format": SEALED_FORMAT,
        "version": SEALED_VERSION,
        "key_id": cipher.key_id,
        "sealed": base64.b64encode(sealed).decode("ascii"),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def open_session(
    raw: bytes,
    cipher: TokenCipher | None,
    context: bytes,
    where: str,
    remedy: str,
    what: str = "the file",
) -> StoredSession:
    """Read what ``seal_session`` wrote for ``context`` (or, without a cipher, ``encode_session``).

    Raises:
        TokenStoreKeyError: The record is sealed with another key than ``cipher``'s, sealed and
            there is no cipher, or in clear text and there is a cipher (refused: anyone who can
            write the store could have planted it).
        TokenStoreCorruptError: The content is not a record, or it does not authenticate
            (tampered with, or copied from another store).
        TokenStoreError: The cipher failed otherwise (its exception chained).
    """
    if cipher is None:
        return decode_session(raw, where, remedy, what)
    bad = _corrupt(where, remedy)
    fields = _fields(raw, bad, what)
    key_id = cipher.key_id
    if fields.get("format") == FORMAT:
        raise TokenStoreKeyError(
            f"{where}: {what} holds an unencrypted session and this store seals with key "
            f"{key_id}: refused, since anyone who can write the store could have planted it; "
            f"nothing was changed: {remedy}",
            store=where,
            key_id=key_id,
        )
    if fields.get("format") != SEALED_FORMAT:
        raise bad(f"{what} is not an nsdk session record")
    if fields.get("version") != SEALED_VERSION:
        raise bad(
            f"{what} has sealed format version {fields.get('version')!r}, "
            f"this nsdk reads {SEALED_VERSION}"
        )
    sealed_with, payload = fields.get("key_id"), fields.get("sealed")
    if not is_key_id(sealed_with) or not isinstance(payload, str):
        raise bad(f"{what}'s envelope is invalid")
    if sealed_with != key_id:
        raise TokenStoreKeyError(
            f"{where}: the session was sealed with key {sealed_with}, this store has key "
            f"{key_id}; nothing was changed: use the key it was sealed with, or {remedy}",
            store=where,
            record_key_id=sealed_with,
            key_id=key_id,
        )
    try:
        sealed = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"{what}'s sealed content is not valid base64 (torn or corrupt)") from None
    try:
        plaintext = cipher.open(sealed, _associated_data(context))
    except ValueError:
        raise bad(
            f"{what} does not authenticate with key {key_id}: tampered with, corrupt, or "
            "copied from another store"
        ) from None
    except NsdkError:
        raise
    except Exception as exc:
        raise TokenStoreError(
            f"{where}: the cipher could not open the session ({type(exc).__name__}); "
            "nothing was changed",
            store=where,
        ) from exc
    return _decode_fields(_fields(plaintext, bad, f"{what}'s sealed session"), bad, what)


__all__ = [
    "FORMAT",
    "SEALED_FORMAT",
    "SEALED_VERSION",
    "VERSION",
    "decode_session",
    "encode_session",
    "open_session",
    "seal_session",
]
