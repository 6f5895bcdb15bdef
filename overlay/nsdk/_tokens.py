"""The values a session is made of: ``Tokens``, and ``StoredSession`` as a token store holds it.

``StoredSession`` is what the stores (``_stores.py``, ``_file_store.py``) read and compare-and-set;
``RefreshInFlight`` is its record of a refresh that started and has not finished.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import cast

import attrs


@attrs.frozen(repr=False)
class Tokens:
    """An access token and the refresh token that rotates it. The repr never shows either.

    Attributes:
        access_token: The bearer access token (a JWT, or opaque).
        refresh_token: The one-time refresh token.

    Examples:
        >>> Tokens(access_token="a.b.c", refresh_token="r")
        Tokens(access_token=***, refresh_token=***, expires_at=None)
    """

    access_token: str
    refresh_token: str
    # Decoded once here, not on every request: (iat, exp) of a JWT access token.
    _times: tuple[float | None, float | None] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_times", jwt_claims_times(self.access_token))

    def __repr__(self) -> str:
        return f"Tokens(access_token=***, refresh_token=***, expires_at={self.expires_at!r})"

    @property
    def expires_at(self) -> float | None:
        """The access token's ``exp`` (Unix time) if it is a JWT that has one, else None."""
        return self._times[1]

    @property
    def issued_at(self) -> float | None:
        """The access token's ``iat`` (Unix time) if it is a JWT that has one, else None."""
        return self._times[0]


def jwt_claims_times(token: str) -> tuple[float | None, float | None]:
    """Read ``(iat, exp)`` from a JWT's payload without verifying it (the server verifies).

    Opaque tokens and malformed JWTs give ``(None, None)``: refresh is then reactive only.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None, None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    claims = cast(dict[str, object], payload)

    def number(name: str) -> float | None:
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    return number("iat"), number("exp")


@attrs.frozen
class RefreshInFlight:
    """The record that a refresh of the stored pair was started and has not finished.

    While it is in the store, the stored refresh token may already have been consumed by the
    server: nobody presents it again, except within the server's reuse interval (see
    ``refresh_reuse_interval``).

    Attributes:
        started_at: When the refresh request was about to be sent (Unix time).
        deadline: When that refresh must have ended, answer or not (Unix time).
    """

    started_at: float
    deadline: float


@attrs.frozen(repr=False)
class StoredSession:
    """What a token store holds: the pair, its generation, and a refresh in flight, if any.

    Every write makes a new generation (login, rotation, the in-flight record, logout), so a
    compare-and-set on the generation fences off a writer that read an older state.

    Attributes:
        generation: Increases by one with every write; 0 means never written.
        tokens: The current pair, or None when signed out or expired.
        refreshing: A refresh of ``tokens`` that started and has not finished, or None.
        expired: True when the session ended because a refresh was refused (fail closed),
            False when it was signed out (or never signed in).

    Examples:
        >>> StoredSession(generation=3, tokens=Tokens("a.b.c", "r"))
        StoredSession(generation=3, tokens=***, refreshing=None, expired=False)
    """

    generation: int = 0
    tokens: Tokens | None = None
    refreshing: RefreshInFlight | None = None
    expired: bool = False

    def __repr__(self) -> str:
        tokens = "***" if self.tokens is not None else "None"
        return (
            f"StoredSession(generation={self.generation}, tokens={tokens}, "
            f"refreshing={self.refreshing!r}, expired={self.expired})"
        )

    def successor(
        self,
        tokens: Tokens | None,
        *,
        refreshing: RefreshInFlight | None = None,
        expired: bool = False,
    ) -> StoredSession:
        """The next generation holding ``tokens`` (what a compare-and-set writes)."""
        return StoredSession(self.generation + 1, tokens, refreshing, expired)


__all__ = ["RefreshInFlight", "StoredSession", "Tokens", "jwt_claims_times"]
