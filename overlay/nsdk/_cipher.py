"""Tokens at rest: the ``TokenCipher`` protocol, and ``AesGcmCipher`` (AES-256-GCM) behind it.

A store given a cipher writes sealed records (``_codec.seal_session``): authenticated
encryption, with the store's own name (a file's path, a Redis key) as associated data, so a
record copied to another store does not open. ``cryptography`` is imported when an
``AesGcmCipher`` is built, never by ``import nsdk``. No key, token or plaintext appears in a
message or a repr: a key is shown by its ``key_id``, a fingerprint that reveals nothing of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, TypeGuard, runtime_checkable

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: The environment variable ``AesGcmCipher.from_env`` reads by default (urlsafe base64).
STORE_KEY_ENV = "NSDK_STORE_KEY"

_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # 96 bits, random per seal: GCM's recommended size
_EXTRA = "AesGcmCipher needs the 'crypto' extra: pip install 'nsdk[crypto]'"


def key_fingerprint(key: bytes) -> str:
    """A key's ``key_id``: the first 8 bytes of HMAC-SHA256(key, b"nsdk-key-id"), in hex.

    One-way and keyed by the key itself, so it tells keys apart without revealing anything that
    helps recover them (unlike a prefix of the key, or a plain hash of a low-entropy key).
    """
    return hmac.new(key, b"nsdk-key-id", hashlib.sha256).digest()[:8].hex()


@runtime_checkable
class TokenCipher(Protocol):
    """Authenticated encryption for the session a token store keeps at rest.

    Give one to a store (``FileTokenStore(path, cipher=...)``) and it writes sealed records,
    which open only with the same key and in the same store. ``AesGcmCipher`` is the one nsdk
    ships; implement this protocol to keep the key elsewhere (a KMS, an HSM). All methods must be
    safe to call from many threads.

    Examples:
        >>> cipher = nsdk.AesGcmCipher(bytes(32))  # a real key: AesGcmCipher.generate_key()
        >>> isinstance(cipher, nsdk.TokenCipher)
        True
        >>> cipher.open(cipher.seal(b"secret", b"ctx"), b"ctx")
        b'secret'
    """

    @property
    def key_id(self) -> str:
        """A short, non-secret name of the key, stored with each record and shown in errors.

        Letters, digits, ``-`` and ``_`` only, at most 64 characters.
        """
        ...

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``, bound to ``context`` (associated data)."""
        ...

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """Return the plaintext of ``sealed``, checking it was sealed with this key and context.

        Raises:
            ValueError: ``sealed`` does not authenticate: tampered with, corrupt, sealed with
                another key, or bound to another context. The message must not contain it.
        """
        ...


_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_key_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a well-formed ``key_id`` (safe to store and to show in a message)."""
    return isinstance(value, str) and _KEY_ID.fullmatch(value) is not None


def checked_cipher(cipher: object) -> TokenCipher:
    """``cipher`` if it is a usable ``TokenCipher``, for a store's constructor.

    Raises:
        ConfigurationError: It lacks ``key_id``, ``seal`` or ``open``, or its ``key_id`` is not
            1-64 letters, digits, ``-`` or ``_``.
    """
    if not isinstance(cipher, TokenCipher):
        raise ConfigurationError(
            f"cipher must be an nsdk.TokenCipher (key_id, seal, open), got {type(cipher).__name__}"
        )
    if not is_key_id(cipher.key_id):
        raise ConfigurationError(
            f"{type(cipher).__name__}.key_id must be 1-64 letters, digits, '-' or '_'"
        )
    return cipher


class AesGcmCipher:
    """AES-256-GCM with a 32-byte key the application keeps; a random 96-bit nonce per seal.

    Needs the ``crypto`` extra: ``pip install 'nsdk[crypto]'`` (``cryptography``). The sealed
    form is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. The repr shows the ``key_id``,
    never the key.

    Args:
        key: 32 random bytes (``AesGcmCipher.generate_key()``); keep them out of the store.

    Raises:
        ConfigurationError: The key is not 32 bytes, or the extra is not installed.

    Examples:
        Every process sharing the store builds its cipher from the same key:

            cipher = nsdk.AesGcmCipher.from_env()  # NSDK_STORE_KEY, urlsafe base64
            store = nsdk.FileTokenStore(path, cipher=cipher)

        >>> nsdk.AesGcmCipher(bytes(32))
        AesGcmCipher(key_id='...')
    """

    __slots__ = ("_aead", "_key_id")

    def __init__(self, key: bytes) -> None:
        # Checked at run time: a str key (the base64 text itself) is a common mistake.
        if not isinstance(key, bytes):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                f"AesGcmCipher needs the key as bytes, got {type(key).__name__} "
                "(AesGcmCipher.from_env decodes a base64 key)"
            )
        if len(key) != _KEY_BYTES:
            raise ConfigurationError(
                f"AesGcmCipher needs a {_KEY_BYTES}-byte key (AES-256), got {len(key)} bytes; "
                "make one with AesGcmCipher.generate_key()"
            )
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - the extra is installed in the tests
            raise ConfigurationError(_EXTRA) from None
        self._aead: AESGCM = AESGCM(key)
        self._key_id = key_fingerprint(key)

    @classmethod
    def generate_key(cls) -> bytes:
        """Return a new random 32-byte key (from ``secrets``: the OS's CSPRNG).

        For an environment variable, encode it:
        ``base64.urlsafe_b64encode(nsdk.AesGcmCipher.generate_key()).decode()``.

        Examples:
            >>> len(nsdk.AesGcmCipher.generate_key())
            32
        """
        return secrets.token_bytes(_KEY_BYTES)

    @classmethod
    def from_env(
        cls, name: str = STORE_KEY_ENV, *, environ: Mapping[str, str] | None = None
    ) -> AesGcmCipher:
        """Build the cipher from an environment variable holding the key in urlsafe base64.

        Args:
            name: The variable (``NSDK_STORE_KEY`` by default).
            environ: Where to look instead of ``os.environ`` (tests).

        Raises:
            ConfigurationError: The variable is unset or empty, not base64, or not 32 bytes
                once decoded. The message names the variable, never its value.
        """
        value = (os.environ if environ is None else environ).get(name, "").strip()
        if not value:
            raise ConfigurationError(
                f"{name} is not set: set it to a {_KEY_BYTES}-byte key in urlsafe base64, made "
                "with base64.urlsafe_b64encode(nsdk.AesGcmCipher.generate_key())"
            )
        try:
            key = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                f"{name} is not valid urlsafe base64 (its value is not shown)"
            ) from None
        if len(key) != _KEY_BYTES:
            raise ConfigurationError(
                f"{name} decodes to {len(key)} bytes, AesGcmCipher needs {_KEY_BYTES} (AES-256)"
            )
        return cls(key)

    @property
    def key_id(self) -> str:
        """The key's fingerprint (16 hex digits): names the key without revealing it."""
        return self._key_id

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``context``: nonce, then ciphertext and tag."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """Decrypt what ``seal`` returned for the same ``context``.

        Raises:
            ValueError: ``sealed`` does not authenticate (tampered with, truncated, another key
                or another context).
        """
        from cryptography.exceptions import InvalidTag

        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        if len(nonce) != _NONCE_BYTES or len(body) < 16:  # 16: the GCM tag
            raise ValueError("the sealed record is truncated")
        try:
            return self._aead.decrypt(nonce, body, context)
        except InvalidTag:
            raise ValueError(
                "the sealed record does not authenticate with this key and context"
            ) from None

    def __repr__(self) -> str:
        return f"AesGcmCipher(key_id={self._key_id!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would write the key wherever the pickle goes: refuse, say why.
        raise TypeError("AesGcmCipher cannot be pickled: it would write the key out")


__all__ = [
    "STORE_KEY_ENV",
    "AesGcmCipher",
    "TokenCipher",
    "checked_cipher",
    "is_key_id",
    "key_fingerprint",
]
