"""Where a profile's session lives: the config directory, the session file, the profile record.

Layout, under ``$NSDK_CONFIG_DIR`` or else the platform's user config directory
(``$XDG_CONFIG_HOME/nsdk`` or ``~/.config/nsdk`` on Linux, as ``click.get_app_dir`` says)::

    profiles/<name>/session.json    the FileTokenStore of the profile (0600, directory 0700)
    profiles/<name>/profile.json    what ``status`` shows: base URL, email, user, tenant, and
                                    where the session is stored (0600)
    profiles/<name>/session.lock    the locks of a session kept in the OS keyring (``_keyring``)

The profile record holds no secret; it is written like the session file (a temporary file in the
same directory, created 0600 whatever the umask, fsync, ``os.replace``). Nothing here imports
click or the HTTP stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

#: The environment variable naming the configuration directory (tests, several installations).
CONFIG_DIR_ENV = "NSDK_CONFIG_DIR"
#: The environment variable naming the profile when ``--profile`` is not given.
PROFILE_ENV = "NSDK_PROFILE"
#: The profile used when none is named.
DEFAULT_PROFILE = "default"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FORMAT = "nsdk-cli-profile"
_VERSION = 1
#: The fields of the profile record (all optional strings).
FIELDS = (
    "base_url",
    "email",
    "user_id",
    "tenant_id",
    "signed_in_at",
    "storage",  # where the session is: "file" (absent in older records) or "keyring"
    "keyring_backend",  # the OS keyring's backend name, for "keyring"
)


class ProfileError(Exception):
    """The profile's name or record cannot be used; the message says what to do."""


def config_dir() -> Path:
    """The configuration directory: ``$NSDK_CONFIG_DIR``, else the platform's user config dir."""
    given = os.environ.get(CONFIG_DIR_ENV)
    if given:
        return Path(given).expanduser().absolute()
    import click  # the CLI's own dependency; its get_app_dir follows each platform's rules

    return Path(click.get_app_dir("nsdk")).absolute()


@dataclass(frozen=True)
class Profile:
    """One named session: its directory, session file and profile record."""

    name: str
    directory: Path

    @classmethod
    def named(cls, name: str) -> Profile:
        """The profile called ``name`` under the configuration directory.

        Raises:
            ProfileError: The name is not a plain name (letters, digits, ``_``, ``.``, ``-``).
        """
        if not _NAME.fullmatch(name):
            raise ProfileError(
                f"invalid profile name {name[:70]!r}: use letters, digits, '_', '.' and '-' "
                "(64 at most, not starting with '.' or '-')"
            )
        return cls(name, config_dir() / "profiles" / name)

    @property
    def session_path(self) -> Path:
        """The profile's ``FileTokenStore`` file."""
        return self.directory / "session.json"

    @property
    def record_path(self) -> Path:
        """The profile record (base URL, email, user, tenant; no secret)."""
        return self.directory / "profile.json"

    def read_record(self) -> dict[str, str]:
        """The profile record ({} when there is none).

        Raises:
            ProfileError: The file is not a record this version wrote (the message says what
                to do).
        """
        try:
            raw = self.record_path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ProfileError(
                f"{self.record_path}: cannot read the profile record: {exc.strerror}"
            ) from None
        try:
            data: object = json.loads(raw)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            data = {}
        record = cast("dict[str, object]", data)
        if record.get("format") != _FORMAT or record.get("version") != _VERSION:
            raise ProfileError(
                f"{self.record_path}: not a profile record of this nsdk version (corrupt?); "
                f"delete it, or run `nsdk --profile {self.name} logout`, and sign in again"
            )
        return {k: v for k in FIELDS if isinstance(v := record.get(k), str)}

    def write_record(self, **fields: str | None) -> None:
        """Replace the profile record with ``fields`` (None values are left out)."""
        data: dict[str, object] = {"format": _FORMAT, "version": _VERSION}
        data.update({k: v for k, v in fields.items() if k in FIELDS and v is not None})
        data.setdefault("signed_in_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        import tempfile  # here: `nsdk --help` does not pay for it

        self._ensure_directory()
        fd, tmp = tempfile.mkstemp(prefix=".profile.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp: 0600 whatever the umask
                json.dump(data, fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.record_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove_record(self) -> None:
        """Forget the profile record (signed out); nothing if there is none."""
        with contextlib.suppress(FileNotFoundError):
            self.record_path.unlink()

    def _ensure_directory(self) -> None:
        # Each missing level 0700 whatever the umask, as FileTokenStore creates them.
        missing = [d for d in (self.directory, *self.directory.parents) if not d.exists()]
        for level in reversed(missing):
            level.mkdir(mode=0o700, exist_ok=True)
            level.chmod(0o700)


__all__ = [
    "CONFIG_DIR_ENV",
    "DEFAULT_PROFILE",
    "FIELDS",
    "PROFILE_ENV",
    "Profile",
    "ProfileError",
    "config_dir",
]
