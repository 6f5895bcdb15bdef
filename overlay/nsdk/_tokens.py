"""Tokens and where they live: the ``Tokens`` value, the ``TokenStore`` protocol, the memory store.

Tokens stay in memory unless the application passes a store (e.g. one backed by its keyring) that
persists them; a store's ``save`` is called after login and after every rotation, ``clear`` on
logout and when the session fails closed.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from typing import Protocol, cast, runtime_checkable

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


@runtime_checkable
class TokenStore(Protocol):
    """Where a client keeps its tokens. Implementations must be safe to call from many threads.

    Examples:
        A store that persists the refresh token in an application's keyring:

            class KeyringStore:
                def load(self) -> nsdk.Tokens | None: ...
                def save(self, tokens: nsdk.Tokens) -> None: ...
                def clear(self) -> None: ...
    """

    def load(self) -> Tokens | None:
        """Return the stored tokens, or None."""
        ...

    def save(self, tokens: Tokens) -> None:
        """Store ``tokens``, replacing what was there."""
        ...

    def clear(self) -> None:
        """Forget the stored tokens."""
        ...


class MemoryTokenStore:
    """The default store: tokens live only in this process's memory.

    Examples:
        Share one store so a second client resumes the session of the first:

            store = nsdk.MemoryTokenStore()
            with nsdk.Client(url, token_store=store) as first:
                first.login(email=email, password=password)
            with nsdk.Client(url, token_store=store) as second:
                second.me()  # signed in with the tokens the first client left in the store

        >>> store = MemoryTokenStore(Tokens(access_token="a.b.c", refresh_token="r"))
        >>> store
        MemoryTokenStore(holding_tokens=True)
    """

    def __init__(self, tokens: Tokens | None = None) -> None:
        self._tokens = tokens
        self._lock = threading.Lock()  # guards _tokens for threads sharing one store

    def load(self) -> Tokens | None:
        """Return the stored tokens, or None."""
        with self._lock:
            return self._tokens

    def save(self, tokens: Tokens) -> None:
        """Store ``tokens``."""
        with self._lock:
            self._tokens = tokens

    def clear(self) -> None:
        """Forget the tokens."""
        with self._lock:
            self._tokens = None

    def __repr__(self) -> str:
        return f"MemoryTokenStore(holding_tokens={self._tokens is not None})"


__all__ = ["MemoryTokenStore", "TokenStore", "Tokens", "jwt_claims_times"]
