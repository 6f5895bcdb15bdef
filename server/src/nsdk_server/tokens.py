"""Access tokens (HS256 JWTs) and opaque one-time refresh tokens.

Access-token claims: `sub` (user id), `tid` (tenant id), `iat`, `exp`, `jti` and `fam` (the token
family the login started). `exp` is an integer (RFC 7519 NumericDate) rounded *up* from
`now + access_ttl`, and tokens are verified with zero leeway: a token is accepted for at least
`access_ttl` seconds and rejected from `access_ttl + 1` seconds on. With `--access-ttl 1`, a token
is therefore always rejected 2 seconds after it was issued.

A login's refresh token is `secrets.token_urlsafe(32)`; each successor is derived from its parent,
`urlsafe_b64(HMAC-SHA256(secret, b"nsdk-refresh-successor:" + parent))` without padding (43
characters, the same shape), so that a parent presented again within the reuse interval lets the
server recompute the child it already issued. The server keeps only SHA-256 hashes (see `store`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from .store import RotateOutcome, RotateResult, Store, hash_token

__all__ = ["AccessClaims", "IssuedPair", "TokenService"]

_ALGORITHM = "HS256"
_REQUIRED = ["sub", "tid", "exp", "iat", "jti", "fam"]
_SUCCESSOR_LABEL = b"nsdk-refresh-successor:"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token."""

    user_id: str
    tenant_id: str
    jti: str
    family_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedPair:
    """A freshly issued token pair and the family it belongs to."""

    access_token: str
    refresh_token: str
    family_id: str


class TokenService:
    """Issues, rotates, verifies and revokes tokens; state goes to the `Store`."""

    def __init__(
        self,
        store: Store,
        secret: bytes,
        *,
        access_ttl: float,
        refresh_ttl: float,
        refresh_reuse_interval: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create the service.

        Args:
            store: the token state.
            secret: the HS256 key, also the key that derives successor refresh tokens.
            access_ttl: access-token lifetime in seconds (> 0).
            refresh_ttl: refresh-token lifetime in seconds (> 0).
            refresh_reuse_interval: seconds after a rotation during which the rotated token may
                be presented again for the same child (>= 0; 0: every repeat is replay).
            clock: wall clock in seconds since the epoch (injected for tests).
        """
        if access_ttl <= 0 or refresh_ttl <= 0:
            raise ValueError("token lifetimes must be positive")
        if not refresh_reuse_interval >= 0:  # also refuses NaN
            raise ValueError("the refresh reuse interval must not be negative")
        self._store = store
        self._secret = secret
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        self._reuse_interval = refresh_reuse_interval
        self._clock = clock

    def successor(self, refresh_token: str) -> str:
        """Return the refresh token that rotating `refresh_token` issues (deterministic)."""
        parent = refresh_token.encode("utf-8", "surrogatepass")
        digest = hmac.new(self._secret, _SUCCESSOR_LABEL + parent, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def _access_token(self, user_id: str, tenant_id: str, family_id: str, now: float) -> str:
        claims = {
            "sub": user_id,
            "tid": tenant_id,
            "iat": int(now),
            "exp": math.ceil(now + self._access_ttl),
            "jti": secrets.token_hex(16),
            "fam": family_id,
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def login(self, user_id: str, tenant_id: str) -> IssuedPair:
        """Start a token family for a signed-in user and return its first pair."""
        now = self._clock()
        refresh = secrets.token_urlsafe(32)
        family_id = self._store.create_session(
            user_id, hash_token(refresh), now, now + self._refresh_ttl
        )
        return IssuedPair(
            self._access_token(user_id, tenant_id, family_id, now), refresh, family_id
        )

    def rotate(
        self, refresh_token: str, tenant_of: Callable[[str], str | None]
    ) -> tuple[RotateResult, IssuedPair | None]:
        """Consume a refresh token; on success return the rotated pair (same family).

        Success is ROTATED (a new child) or REUSED (the parent of the family's current token,
        again within the reuse interval: the same child, with a fresh access token).

        Args:
            refresh_token: the presented token.
            tenant_of: maps a user id to its tenant id (None if the user is gone).
        """
        now = self._clock()
        successor = self.successor(refresh_token)
        result = self._store.rotate(
            hash_token(refresh_token),
            hash_token(successor),
            now,
            now + self._refresh_ttl,
            reuse_interval=self._reuse_interval,
        )
        if (
            result.family_id is None
            or result.user_id is None
            or result.outcome not in (RotateOutcome.ROTATED, RotateOutcome.REUSED)
        ):
            return result, None
        tenant_id = tenant_of(result.user_id)
        if tenant_id is None:
            return result, None
        access = self._access_token(result.user_id, tenant_id, result.family_id, now)
        return result, IssuedPair(access, successor, result.family_id)

    def verify(self, token: str) -> AccessClaims | None:
        """Return the claims of a valid, unexpired, unrevoked access token, else None."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={"require": _REQUIRED},
                leeway=0,
            )
        except jwt.PyJWTError:
            return None
        values = [claims.get(name) for name in ("sub", "tid", "jti", "fam")]
        if not all(isinstance(value, str) for value in values) or not isinstance(
            claims["exp"], int
        ):
            return None
        # PyJWT compares with its own clock; check ours too so an injected clock is honoured.
        if claims["exp"] <= self._clock():
            return None
        user_id, tenant_id, jti, family_id = (str(value) for value in values)
        if not self._store.access_allowed(family_id, jti):
            return None
        return AccessClaims(user_id, tenant_id, jti, family_id, claims["exp"])

    def logout(self, claims: AccessClaims) -> None:
        """Revoke the claims' family and deny-list their access token until it expires."""
        self._store.logout(claims.family_id, claims.jti, claims.expires_at, self._clock())
