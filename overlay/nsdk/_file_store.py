"""``FileTokenStore``: one session shared by the processes of one host, through a file.

* Reads take no lock: every write replaces the file atomically (a temporary file in the same
  directory, fsync, ``os.replace``), so a reader sees one whole version or the other.
* Compare-and-set holds a short kernel lock on ``<file>.write.lock``; the refresh critical
  section holds ``<file>.lock``. Both are ``filelock.FileLock`` (flock): the kernel releases
  them when their holder dies, and the files are never deleted (deleting lock files lets two
  holders in at once: azure-cli #20252).
* The file is 0600 and its directory 0700, created so whatever the umask. Like ssh, a file that
  others can read or write, a directory that others can write, or either owned by another user,
  is refused. POSIX only (the checks need ``os.geteuid``).
* With a ``cipher``, the file holds the session sealed (``_codec.seal_session``), bound to the
  file's absolute path: a sealed file copied or moved to another path does not open.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import stat
import tempfile
import threading
import time
from collections.abc import Generator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ._cipher import TokenCipher, checked_cipher
from ._codec import encode_session, open_session, seal_session
from ._errors import (
    ConfigurationError,
    TokenStoreBusyError,
    TokenStoreError,
    TokenStorePermissionError,
)
from ._stores import DEFAULT_LOCK_TIMEOUT
from ._tokens import StoredSession

_REMEDY = "delete the file and sign in again"


class FileTokenStore:
    """A session shared by the processes (and threads, and tasks) of one host, in a file.

    Needs the ``file`` extra: ``pip install 'nsdk[file]'`` (``filelock``).

    Args:
        path: The session file (created on the first write, mode 0600, directory 0700).
        lock_timeout: How long a client waits for another's refresh, or for a write (seconds);
            past it, ``TokenStoreBusyError`` (retryable; nothing was sent or changed).
        cipher: Seal the session at rest with this ``TokenCipher`` (e.g. ``AesGcmCipher``,
            extra ``nsdk[crypto]``). Every client of the file needs the same key, and must name
            the file by the same absolute path: the path is bound into each sealed record.

    Examples:
        Every process that builds its client like this shares one session:

            store = nsdk.FileTokenStore(Path.home() / ".config" / "myapp" / "session.json")
            client = nsdk.Client(url, token_store=store)

        Sealed at rest, with a key the application keeps (``pip install 'nsdk[file,crypto]'``):

            cipher = nsdk.AesGcmCipher.from_env()  # NSDK_STORE_KEY
            store = nsdk.FileTokenStore(path, cipher=cipher)

        >>> FileTokenStore("/tmp/nsdk-doc/session.json")  # doctest: +SKIP
        FileTokenStore('/tmp/nsdk-doc/session.json')
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        cipher: TokenCipher | None = None,
    ):
        if not lock_timeout > 0:
            raise ConfigurationError(f"lock_timeout must be positive, got {lock_timeout!r}")
        self.cipher = None if cipher is None else checked_cipher(cipher)
        # Checked here, imported at the first lock: reads take none, so a process that only
        # reads the session (``nsdk status``) never pays for importing filelock.
        if importlib.util.find_spec("filelock") is None:  # pragma: no cover - extra installed
            raise ConfigurationError(
                "FileTokenStore needs the 'file' extra: pip install 'nsdk[file]'"
            )
        if os.name != "posix":  # pragma: no cover - the suite runs on Linux
            raise ConfigurationError("FileTokenStore needs a POSIX system (flock, file modes)")
        self.path = Path(path).absolute()
        self.lock_timeout = lock_timeout
        self._where = str(self.path)
        self._context = b"nsdk-file:" + os.fsencode(self.path)
        # Thread locks first: a FileLock is reentrant for every thread of its process.
        self._section_threads = threading.Lock()
        self._write_threads = threading.Lock()
        self._file_locks: dict[str, Any] = {}  # suffix -> filelock.FileLock, made at first use

    def __repr__(self) -> str:
        if self.cipher is None:
            return f"FileTokenStore({self._where!r})"
        return f"FileTokenStore({self._where!r}, cipher={self.cipher!r})"

    # -- checks ---------------------------------------------------------------------------

    def _refuse_unsafe(self, st: os.stat_result, what: str, path: Path, mask: int) -> None:
        euid = os.geteuid()  # at each check: a process may change its user
        if st.st_uid != euid:
            raise TokenStorePermissionError(
                f"{path}: the {what} is owned by uid {st.st_uid}, not by this user "
                f"({euid}); refusing to use it",
                store=self._where,
            )
        if st.st_mode & mask:
            raise TokenStorePermissionError(
                f"{path}: the {what} is accessible by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run chmod "
                f"{'600' if what == 'file' else '700'} on it",
                store=self._where,
            )

    def _error(self, exc: OSError, doing: str) -> TokenStoreError:
        return TokenStoreError(
            f"{self._where}: cannot {doing}: {exc.strerror or type(exc).__name__}",
            store=self._where,
        )

    def _ensure_directory(self) -> None:
        directory = self.path.parent
        try:
            missing = [d for d in (directory, *directory.parents) if not d.exists()]
            for level in reversed(missing):  # each level 0700, whatever the umask
                level.mkdir(mode=0o700, exist_ok=True)
                level.chmod(0o700)
            self._refuse_unsafe(directory.stat(), "directory", directory, 0o022)
        except OSError as exc:
            raise self._error(exc, "create or check its directory") from exc

    # -- the TokenStore primitives --------------------------------------------------------

    def read(self) -> StoredSession:
        """Read the stored session (no lock: writes replace the file atomically)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return StoredSession()
        except OSError as exc:
            raise self._error(exc, "read the session file") from exc
        try:
            self._refuse_unsafe(self.path.parent.stat(), "directory", self.path.parent, 0o022)
            self._refuse_unsafe(os.fstat(fd), "file", self.path, 0o077)
            with os.fdopen(fd, "rb", closefd=False) as fh:
                raw = fh.read()
        except OSError as exc:
            raise self._error(exc, "read the session file") from exc
        finally:
            os.close(fd)
        return open_session(raw, self.cipher, self._context, self._where, _REMEDY)

    def compare_and_set(
        self, expected: int, new: StoredSession, lease: object | None = None
    ) -> bool:
        """Replace the file with ``new`` if its generation is ``expected`` (atomic)."""
        with self._locked(self._write_threads, ".write.lock", "write to"):
            if self.read().generation != expected:
                return False
            self._replace(self._encode(new))
            return True

    def refresh_lock(self) -> AbstractContextManager[object]:
        """The refresh critical section: one holder across every process of this host."""
        return self._locked(self._section_threads, ".lock", "refresh the session in")

    # -- helpers --------------------------------------------------------------------------

    def _encode(self, session: StoredSession) -> bytes:
        if self.cipher is None:
            return encode_session(session)
        return seal_session(session, self.cipher, self._context, self._where)

    @contextlib.contextmanager
    def _locked(self, threads: threading.Lock, suffix: str, doing: str) -> Generator[None]:
        from filelock import FileLock, Timeout

        start = time.monotonic()
        if not threads.acquire(timeout=self.lock_timeout):
            raise self._busy(doing)
        try:
            lock = self._file_locks.get(suffix)
            if lock is None:  # under `threads`: one FileLock per file, whichever thread is first
                lock = FileLock(f"{self.path}{suffix}", mode=0o600, thread_local=False)
                self._file_locks[suffix] = lock
            self._ensure_directory()
            remaining = max(0.0, self.lock_timeout - (time.monotonic() - start))
            try:
                lock.acquire(timeout=remaining)
            except Timeout:
                raise self._busy(doing) from None
            except OSError as exc:
                raise self._error(exc, "take its lock file") from exc
            try:
                yield None
            finally:
                lock.release()
        finally:
            threads.release()

    def _busy(self, doing: str) -> TokenStoreBusyError:
        return TokenStoreBusyError(
            f"{self._where}: another client held the lock for more than {self.lock_timeout:g} s, "
            f"so this one could not {doing} it; retry, or raise lock_timeout",
            store=self._where,
        )

    def _replace(self, data: bytes) -> None:
        directory = self.path.parent
        tmp: str | None = None
        try:
            # mkstemp creates the file 0600 whatever the umask.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            tmp = None
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself survives a crash
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise self._error(exc, "write the session file") from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


__all__ = ["FileTokenStore"]
