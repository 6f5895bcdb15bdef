"""The user directory: seeded users with scrypt password hashes.

Passwords are hashed once at startup with a per-user random salt and compared in constant time.
A lookup of an unknown email still spends one scrypt computation on a dummy hash, so the answer
time does not reveal whether an account exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from .config import UserSeed

__all__ = ["User", "UserDirectory"]

_R = 8
_P = 1
_DKLEN = 32


@dataclass(frozen=True, slots=True)
class User:
    """A known user; the password is kept only as salt and scrypt hash."""

    email: str
    user_id: str
    tenant_id: str
    salt: bytes = field(repr=False)
    password_hash: bytes = field(repr=False)


class UserDirectory:
    """Looks users up by email (case-insensitive) and checks passwords."""

    def __init__(self, seeds: Iterable[UserSeed], *, scrypt_n: int = 2**14) -> None:
        """Hash every seeded password once.

        Args:
            seeds: the users to know.
            scrypt_n: scrypt cost parameter, a power of two > 1.

        Raises:
            ValueError: on a bad cost parameter or duplicate emails.
        """
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise ValueError("scrypt_n must be a power of two greater than 1")
        self._n = scrypt_n
        self._by_email: dict[str, User] = {}
        self._by_id: dict[str, User] = {}
        for seed in seeds:
            key = seed.email.lower()
            if key in self._by_email:
                raise ValueError(f"duplicate user email {seed.email!r}")
            salt = secrets.token_bytes(16)
            user = User(
                seed.email, seed.user_id, seed.tenant_id, salt, self._hash(seed.password, salt)
            )
            self._by_email[key] = user
            self._by_id[seed.user_id] = user
        self._dummy_salt = secrets.token_bytes(16)
        self._dummy_hash = self._hash(secrets.token_urlsafe(16), self._dummy_salt)

    def _hash(self, password: str, salt: bytes) -> bytes:
        return hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"),
            salt=salt,
            n=self._n,
            r=_R,
            p=_P,
            dklen=_DKLEN,
            maxmem=256 * self._n * _R + 1024 * 1024,
        )

    def authenticate(self, email: str, password: str) -> User | None:
        """Return the user if email and password match, else None (same cost either way).

        Blocking (one scrypt run): call it from a worker thread.
        """
        user = self._by_email.get(email.lower())
        salt = user.salt if user else self._dummy_salt
        expected = user.password_hash if user else self._dummy_hash
        ok = hmac.compare_digest(self._hash(password, salt), expected)
        return user if ok and user is not None else None

    def by_id(self, user_id: str) -> User | None:
        """Return the user with this id, if any."""
        return self._by_id.get(user_id)
