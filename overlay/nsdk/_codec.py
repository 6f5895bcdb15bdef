"""The one serialized form of a ``StoredSession``, shared by the stores that persist bytes.

Versioned JSON: a reader refuses another format or version instead of guessing, and every way the
content can be wrong is one ``TokenStoreCorruptError`` that names the store, never the content.
"""

from __future__ import annotations

import json
from typing import TypeGuard, cast

from ._errors import TokenStoreCorruptError
from ._tokens import RefreshInFlight, StoredSession, Tokens

#: The format marker and version of the record; another version is refused, not guessed at.
FORMAT = "nsdk-session"
VERSION = 1


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


def _object(value: object) -> dict[str, object]:
    return cast(dict[str, object], value) if isinstance(value, dict) else {}


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def decode_session(raw: bytes, where: str, remedy: str, what: str = "the file") -> StoredSession:
    """Read bytes written by ``encode_session``.

    Raises:
        TokenStoreCorruptError: Empty, torn, foreign or unknown-version content, naming
            ``where`` (never the content) and what to do (``remedy``).
    """

    def bad(why: str) -> TokenStoreCorruptError:
        return TokenStoreCorruptError(f"{where}: {why}; nothing was changed: {remedy}", store=where)

    if not raw.strip():
        raise bad(f"{what} is empty")
    try:
        data: object = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad(f"{what} is not valid JSON (torn or corrupt)") from None
    fields = _object(data)
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


__all__ = ["FORMAT", "VERSION", "decode_session", "encode_session"]
