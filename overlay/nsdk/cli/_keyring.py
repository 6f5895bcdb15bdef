"""A profile's session in the OS keyring, where a real one exists (extra ``nsdk[keyring]``).

``keyring`` (jaraco's) finds the platform's secret store: the Secret Service over D-Bus (GNOME
Keyring, KWallet, KeePassXC) on Linux, the Keychain on macOS, the Credential Locker on Windows.
Only such a backend is used: keyring's ``fail`` and ``null`` backends and everything from
``keyrings.alt`` (plain-text or home-made encrypted files, no better than nsdk's own 0600 file)
are refused, and so is any backend that does not answer a probe within the timeout (a locked
Secret Service may wait for a password dialog nobody sees; a missing D-Bus daemon can hang).

``KeyringTokenStore`` keeps the shared-store protocol of ``FileTokenStore`` (it is one, with the
record moved): the refresh critical section and the compare-and-set are the same kernel file
locks in the profile directory, and only the record (the session JSON, the same bytes the file
would hold) lives in the keyring, as the password of item ``nsdk`` / ``<profile directory>``.
So any number of ``nsdk`` processes still share one session with one refresh per expiry.

Every keyring call runs in a daemon thread and is abandoned after ``NSDK_KEYRING_TIMEOUT``
seconds (default 5) with ``TokenStoreUnavailableError``: the command ends, it does not hang.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from .._codec import open_session
from .._errors import ConfigurationError, TokenStoreUnavailableError
from .._file_store import FileTokenStore
from .._tokens import StoredSession
from . import _secret_service

if TYPE_CHECKING:
    from ._profile import Profile

#: The keyring service every profile's item is filed under.
SERVICE = "nsdk"
#: Seconds a keyring call may take before the command gives up on it.
TIMEOUT_ENV = "NSDK_KEYRING_TIMEOUT"
DEFAULT_TIMEOUT = 5.0
#: Backends that are no safer than the session file, or store nothing: never used.
_REFUSED_MODULES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")
_PROBE_ACCOUNT = "nsdk-probe"
_REMEDY = "run `nsdk logout` for this profile and sign in again"

T = TypeVar("T")


class Backend(Protocol):
    """The part of ``keyring.backend.KeyringBackend`` nsdk uses."""

    @property
    def name(self) -> str: ...

    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


class KeyringUnusable(Exception):  # a verdict, not a failure of nsdk
    """No keyring nsdk would trust here; the message says why (for ``--storage keyring``)."""


def timeout() -> float:
    """The keyring call timeout: ``$NSDK_KEYRING_TIMEOUT`` seconds, else 5.

    Raises:
        ConfigurationError: The variable is not a positive number.
    """
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"${TIMEOUT_ENV} must be a positive number of seconds: {raw!r}")
    return value


def _within(seconds: float, what: str, where: str, call: Callable[[], T], hint: str = "") -> T:
    """``call()`` in a daemon thread; TokenStoreUnavailableError past ``seconds`` or on error.

    ``hint`` (what the user can do about an unusable keyring) ends the error's message.
    """
    more = f"; {hint}" if hint else ""
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # reported below, in the caller's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="nsdk-keyring", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:  # still running: left behind, a daemon thread dies with the process
        raise TokenStoreUnavailableError(
            f"{where}: the OS keyring did not answer within {seconds:g} s ({what}); unlock it, "
            f"raise ${TIMEOUT_ENV}, or sign in with --storage file{more}",
            store=where,
        )
    ok, value = outcome[0]
    if ok:
        return cast("T", value)
    exc = cast("BaseException", value)
    raise TokenStoreUnavailableError(
        f"{where}: the OS keyring failed to {what}: {type(exc).__name__}{more}", store=where
    ) from exc


def _candidates() -> list[Backend]:
    """The backends keyring would use here, weak ones left out, best first."""
    import keyring
    from keyring.backends.chainer import ChainerBackend

    chosen = keyring.get_keyring()
    backends = list(chosen.backends) if isinstance(chosen, ChainerBackend) else [chosen]
    strong = [b for b in backends if not type(b).__module__.startswith(_REFUSED_MODULES)]
    return cast("list[Backend]", strong)


def find_backend(seconds: float) -> Backend:
    """The OS keyring to keep sessions in: a real backend that answered a probe in time.

    Raises:
        KeyringUnusable: keyring is not installed, only refused backends exist here, or the
            backend did not answer (or failed) within ``seconds``.
    """
    try:
        backends = _candidates()
    except ImportError:
        raise KeyringUnusable(
            "the keyring package is not installed: pip install 'nsdk[cli,keyring]'"
        ) from None
    except Exception as exc:  # a broken keyring configuration (PYTHON_KEYRING_BACKEND, ...)
        raise KeyringUnusable(f"keyring could not load a backend ({type(exc).__name__})") from None
    if not backends:
        raise KeyringUnusable(
            "no OS keyring here (keyring found only backends that store nothing or store in "
            "plain files)"
        )
    backend = backends[0]
    try:  # the first call may wait on D-Bus or an unlock dialog: bounded
        _within(
            seconds,
            "answer a probe",
            f"OS keyring ({backend.name})",
            lambda: backend.get_password(SERVICE, _PROBE_ACCOUNT),
        )
    except TokenStoreUnavailableError as exc:
        raise KeyringUnusable(str(exc)) from None
    return backend


def backend_named(name: str, seconds: float) -> Backend:
    """The backend a profile was signed in with (its record names it), probed like above.

    keyring's Secret Service backend under keyring's default configuration is reached through
    SecretStorage alone (``_secret_service``: the same items, without keyring's 120 ms import);
    its first call, bounded like every call of the store, is the probe.

    Raises:
        KeyringUnusable: It is not available now (another backend, none, or not answering).
    """
    if name == _secret_service.NAME:
        direct = _secret_service.direct_backend()
        if direct is not None:
            return direct
    backend = find_backend(seconds)
    if backend.name != name:
        raise KeyringUnusable(f"the session is in the OS keyring {name!r}, not available here")
    return backend


class KeyringTokenStore(FileTokenStore):
    """A ``FileTokenStore`` whose record is an OS keyring item instead of a file.

    Locks (refresh critical section, compare-and-set) are the file store's, on
    ``<profile directory>/session.lock`` and ``session.write.lock``; the record is the password of
    the item ``nsdk`` / ``<profile directory>``.
    """

    def __init__(
        self, profile: Profile, backend: Backend, *, call_timeout: float, hint: str = ""
    ) -> None:
        super().__init__(profile.directory / "session")
        self.backend = backend
        self.account = str(profile.directory)
        self.call_timeout = call_timeout
        self.hint = hint  # ends the message of a keyring that fails or does not answer
        self._where = f"OS keyring ({backend.name}), service {SERVICE}, account {self.account}"
        self._context = b"nsdk-keyring:" + os.fsencode(self.account)

    def __repr__(self) -> str:
        return f"KeyringTokenStore({self.backend.name!r}, {self.account!r})"

    def read(self) -> StoredSession:
        """The stored session (an empty one when the item does not exist)."""
        raw = _within(
            self.call_timeout,
            "read the session",
            self._where,
            lambda: self.backend.get_password(SERVICE, self.account),
            self.hint,
        )
        if raw is None:
            return StoredSession()
        return open_session(
            raw.encode("utf-8"), None, self._context, self._where, _REMEDY, "the item"
        )

    def _replace(self, data: bytes) -> None:
        text = data.decode("utf-8")  # the session JSON: a keyring stores text
        _within(
            self.call_timeout,
            "store the session",
            self._where,
            lambda: self.backend.set_password(SERVICE, self.account, text),
            self.hint,
        )

    def delete(self) -> None:
        """Remove the item (signed out); nothing if there is none."""

        def remove() -> None:
            try:
                self.backend.delete_password(SERVICE, self.account)
            except Exception as exc:
                errors = sys.modules.get("keyring.errors")  # loaded if keyring raised it
                missing = getattr(errors, "PasswordDeleteError", ())
                if not isinstance(exc, missing):  # else already gone
                    raise

        _within(self.call_timeout, "remove the session", self._where, remove, self.hint)


__all__ = [
    "DEFAULT_TIMEOUT",
    "SERVICE",
    "TIMEOUT_ENV",
    "Backend",
    "KeyringTokenStore",
    "KeyringUnusable",
    "backend_named",
    "find_backend",
    "timeout",
]
