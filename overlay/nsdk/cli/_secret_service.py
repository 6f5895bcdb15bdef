"""The Secret Service through SecretStorage alone: keyring's own item layout, without its import.

``import keyring`` costs about 120 ms (its backend discovery, ``jaraco.context`` and what they
import), which ``nsdk status``, ``me`` and ``token`` would pay at every start. Once ``nsdk login``
has chosen keyring's Secret Service backend (``SecretService Keyring``), later commands only need
that backend, and that backend is a thin layer over SecretStorage (keyring's own dependency on
Linux, about 35 ms to import). ``SecretServiceBackend`` does exactly what
``keyring.backends.SecretService.Keyring`` does with keyring's default configuration: the
default collection (unlocked if it is locked), items found by the attributes ``service`` and
``username``, written with the same label, attributes and ``application`` as keyring writes them.
So an item written by either is read by the other, and ``keyring get nsdk <account>`` keeps
working for a user who looks.

It stands in for keyring only while keyring's configuration could not choose anything else: no
``PYTHON_KEYRING_BACKEND``, no ``KEYRING_PROPERTY_*`` variable and no ``keyringrc.cfg`` (which may
name another backend, a preferred collection or another attribute scheme). Otherwise, and where
SecretStorage is not installed, keyring itself is used.
"""

from __future__ import annotations

import os
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from secretstorage.collection import Collection

#: keyring's name for its Secret Service backend (``KeyringBackend.name``).
NAME = "SecretService Keyring"
#: What keyring's Secret Service backend writes as the item's ``application`` attribute.
_APPLICATION = "Python keyring library"


class SecretServiceLocked(Exception):
    """The collection or the item stayed locked (the unlock prompt was dismissed)."""


def keyring_configured() -> bool:
    """Whether keyring's configuration could select another backend, collection or scheme."""
    if "PYTHON_KEYRING_BACKEND" in os.environ:
        return True
    if any("KEYRING_PROPERTY_" in key for key in os.environ):  # keyring's own test (partition)
        return True
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root, "python_keyring", "keyringrc.cfg").exists()


def direct_backend() -> SecretServiceBackend | None:
    """The Secret Service without keyring, where that is what keyring would use; else None."""
    if sys.platform in ("darwin", "win32") or keyring_configured():
        return None
    import importlib.util

    if importlib.util.find_spec("secretstorage") is None:  # keyring's own dependency on Linux
        return None
    return SecretServiceBackend()


class SecretServiceBackend:
    """keyring's ``SecretService Keyring`` backend, default configuration, over SecretStorage."""

    name = NAME

    def __repr__(self) -> str:
        return "SecretServiceBackend()"

    @staticmethod
    def _collection() -> Collection:
        import secretstorage

        connection = secretstorage.dbus_init()
        try:
            collection = secretstorage.get_default_collection(connection)
            if collection.is_locked():
                collection.unlock()
                if collection.is_locked():
                    raise SecretServiceLocked("the default collection is locked")
        except BaseException:
            connection.close()
            raise
        return collection

    @staticmethod
    def _query(service: str, username: str) -> dict[str, str]:
        return {"username": username, "service": service}

    def get_password(self, service: str, username: str) -> str | None:
        """The secret of the first item for ``service``/``username``, else None."""
        collection = self._collection()
        with closing(collection.connection):
            for item in collection.search_items(self._query(service, username)):
                if item.is_locked():
                    item.unlock()
                    if item.is_locked():
                        raise SecretServiceLocked("the item is locked")
                return item.get_secret().decode("utf-8")
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        """Create or replace the item for ``service``/``username``."""
        collection = self._collection()
        attributes = {**self._query(service, username), "application": _APPLICATION}
        label = f"Password for '{username}' on '{service}'"
        with closing(collection.connection):
            collection.create_item(label, attributes, password.encode("utf-8"), replace=True)

    def delete_password(self, service: str, username: str) -> None:
        """Delete the first item for ``service``/``username``; nothing if there is none."""
        collection = self._collection()
        with closing(collection.connection):
            for item in collection.search_items(self._query(service, username)):
                item.delete()
                return


__all__ = ["NAME", "SecretServiceBackend", "SecretServiceLocked", "direct_backend"]
