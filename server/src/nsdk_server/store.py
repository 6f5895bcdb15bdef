"""SQLite state: token families, hashed refresh tokens and the access-token deny-list.

One connection, guarded by one lock, used synchronously (each call is a few microseconds): no
"database is locked", and every multi-statement change runs in one transaction under the lock, so
rotation is atomic even when two requests present the same refresh token at once. A file database
(`--db PATH`) uses WAL and survives a restart; the default is in memory.

The reuse interval is decided here too, in the same transaction: the caller passes the hash of the
presented token's deterministic successor (see `tokens`), so a repeated parent is recognised by
finding that successor still unused in the family, without any token stored in plaintext.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["RotateOutcome", "RotateResult", "Store", "hash_token"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS families (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    revoked_reason TEXT
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES families(id),
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens(family_id);
CREATE TABLE IF NOT EXISTS denied_access (
    jti TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""

_PURGE_EVERY = 1000


def hash_token(token: str) -> str:
    """Return the hex SHA-256 of a refresh token: only hashes are stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class RotateOutcome(enum.Enum):
    """What presenting a refresh token led to."""

    ROTATED = "rotated"  # one-time token consumed, a successor issued in the same family
    REUSED = "reused"  # the current token's parent, again within the reuse interval: same child
    UNKNOWN = "unknown"  # never issued (or purged after expiry)
    EXPIRED = "expired"  # issued, unused, but past its lifetime
    REVOKED = "revoked"  # its family was already revoked (logout or earlier replay)
    REPLAY = "replay"  # already rotated: the family is revoked now (RFC 9700 section 4.14.2)


@dataclass(frozen=True, slots=True)
class RotateResult:
    """The outcome of `Store.rotate`, with the family and user when the token was known."""

    outcome: RotateOutcome
    family_id: str | None = None
    user_id: str | None = None


class Store:
    """Token state in SQLite; all methods are thread-safe and synchronous."""

    def __init__(self, path: str | None = None) -> None:
        """Open (and create) the database.

        Args:
            path: a file path, or None for a private in-memory database.
        """
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None
        )
        if path:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._writes = 0

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._writes += 1

    def create_session(self, user_id: str, refresh_hash: str, now: float, expires_at: float) -> str:
        """Start a new token family for a login and store its first refresh token.

        Returns:
            The new family id.
        """
        family_id = "fam_" + secrets.token_hex(12)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO families (id, user_id, created_at) VALUES (?, ?, ?)",
                (family_id, user_id, now),
            )
            db.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (refresh_hash, family_id, now, expires_at),
            )
        self._maybe_purge(now)
        return family_id

    def rotate(
        self,
        old_hash: str,
        new_hash: str,
        now: float,
        expires_at: float,
        *,
        reuse_interval: float = 0.0,
    ) -> RotateResult:
        """Consume a refresh token and store its successor, atomically.

        An already consumed token is replay: its whole family is revoked in the same transaction.
        The one exception is the reuse interval: if the consumed token was rotated at most
        `reuse_interval` seconds ago and its successor (`new_hash`) is still the family's unused
        token, the outcome is REUSED and nothing changes.

        Args:
            old_hash: hash of the presented token.
            new_hash: hash of its successor, derived deterministically from the presented token.
            now: the current time.
            expires_at: the successor's expiry, if it is stored now.
            reuse_interval: seconds after a rotation during which its parent may be presented
                again (0: never).
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT t.family_id, t.expires_at, t.used_at, f.user_id, f.revoked_at"
                " FROM refresh_tokens t JOIN families f ON f.id = t.family_id"
                " WHERE t.token_hash = ?",
                (old_hash,),
            ).fetchone()
            if row is None:
                return RotateResult(RotateOutcome.UNKNOWN)
            family_id, token_expires, used_at, user_id, revoked_at = row
            if revoked_at is not None:
                return RotateResult(RotateOutcome.REVOKED, family_id, user_id)
            if used_at is not None:
                reused = self._reuse(db, family_id, used_at, new_hash, now, reuse_interval)
                if reused is not None:
                    return RotateResult(reused, family_id, user_id)
                self._revoke(db, family_id, now, "replay")
                return RotateResult(RotateOutcome.REPLAY, family_id, user_id)
            if token_expires <= now:
                return RotateResult(RotateOutcome.EXPIRED, family_id, user_id)
            updated = db.execute(
                "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
                (now, old_hash),
            ).rowcount
            if updated != 1:  # cannot happen under the lock; kept as the documented invariant
                self._revoke(db, family_id, now, "replay")
                return RotateResult(RotateOutcome.REPLAY, family_id, user_id)
            db.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (new_hash, family_id, now, expires_at),
            )
        return RotateResult(RotateOutcome.ROTATED, family_id, user_id)

    @staticmethod
    def _reuse(
        db: sqlite3.Connection,
        family_id: str,
        used_at: float,
        child_hash: str,
        now: float,
        reuse_interval: float,
    ) -> RotateOutcome | None:
        """Decide a repeat within the reuse interval: REUSED, EXPIRED, or None for replay.

        Only the parent of the family's current token qualifies: its successor must be the
        family's unused token (each rotation leaves exactly one), so an older ancestor, whose
        successor is used, and a parent whose child was rotated in turn are replay.
        """
        if reuse_interval <= 0 or now - used_at > reuse_interval:
            return None
        child = db.execute(
            "SELECT expires_at FROM refresh_tokens"
            " WHERE token_hash = ? AND family_id = ? AND used_at IS NULL",
            (child_hash, family_id),
        ).fetchone()
        if child is None:
            return None
        # A child past its lifetime cannot be handed out again; refuse without revoking.
        return RotateOutcome.REUSED if child[0] > now else RotateOutcome.EXPIRED

    @staticmethod
    def _revoke(db: sqlite3.Connection, family_id: str, now: float, reason: str) -> None:
        db.execute(
            "UPDATE families SET revoked_at = ?, revoked_reason = ?"
            " WHERE id = ? AND revoked_at IS NULL",
            (now, reason, family_id),
        )
        db.execute(
            "UPDATE refresh_tokens SET used_at = ? WHERE family_id = ? AND used_at IS NULL",
            (now, family_id),
        )

    def logout(self, family_id: str, jti: str, access_expires_at: float, now: float) -> None:
        """Revoke a family and deny-list the presented access token until it expires."""
        with self._transaction() as db:
            self._revoke(db, family_id, now, "logout")
            db.execute(
                "INSERT OR REPLACE INTO denied_access (jti, expires_at) VALUES (?, ?)",
                (jti, access_expires_at),
            )

    def access_allowed(self, family_id: str, jti: str) -> bool:
        """Tell whether an access token's family is live and its jti is not deny-listed."""
        with self._lock:
            family = self._conn.execute(
                "SELECT revoked_at FROM families WHERE id = ?", (family_id,)
            ).fetchone()
            if family is None or family[0] is not None:
                return False
            denied = self._conn.execute(
                "SELECT 1 FROM denied_access WHERE jti = ?", (jti,)
            ).fetchone()
            return denied is None

    def _maybe_purge(self, now: float) -> None:
        if self._writes >= _PURGE_EVERY:
            self.purge(now)

    def purge(self, now: float) -> None:
        """Drop expired deny-list entries and refresh tokens past their lifetime."""
        with self._transaction() as db:
            db.execute("DELETE FROM denied_access WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?", (now,))
            self._writes = 0
