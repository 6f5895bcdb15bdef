"""A private, unlocked Secret Service (GNOME Keyring on its own D-Bus session bus).

For the tests and benchmarks of ``nsdk``'s OS keyring storage: ``private_secret_service(env)``
starts a ``dbus-daemon`` session bus and a ``gnome-keyring-daemon`` on it whose login keyring is
created and unlocked in ``env``'s ``HOME``/``XDG_DATA_HOME``, and yields a ``SecretService``
whose ``env`` gives a child process that bus. Nobody's real keyring is reached, and nothing runs
after the ``with`` block.

The bus reads its own configuration, without service directories, so D-Bus starts nothing by
activation (a second ``gnome-keyring-daemon``, started by an early call, would hold a locked
keyring). Its socket and gnome-keyring's control socket are in a short private directory under
``/tmp``: a Unix socket path has at most 107 bytes, which a deep temp directory exceeds.

Needs the Debian packages ``dbus-daemon`` and ``gnome-keyring`` (``missing()`` names what is not
installed) and, to wait until the service answers, SecretStorage (nsdk's ``keyring`` extra).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .testing import stop_process

#: (program, Debian package) the private Secret Service needs.
PROGRAMS = (("dbus-daemon", "dbus-daemon"), ("gnome-keyring-daemon", "gnome-keyring"))
#: The password of the login keyring the daemon creates (a throwaway keyring).
KEYRING_PASSWORD = "keyring-test-password"  # noqa: S105 (a throwaway keyring's)


def missing() -> list[str]:
    """The Debian packages whose programs are not on PATH (empty when all are)."""
    return [package for program, package in PROGRAMS if shutil.which(program) is None]


@dataclass
class SecretService:
    """The running bus and keyring daemon."""

    address: str
    runtime_dir: Path
    processes: list[subprocess.Popen[str]]

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this Secret Service (add to its environment)."""
        return {"DBUS_SESSION_BUS_ADDRESS": self.address, "XDG_RUNTIME_DIR": str(self.runtime_dir)}

    @property
    def alive(self) -> bool:
        """Whether the bus and the daemon both still run."""
        return all(p.poll() is None for p in self.processes)

    def stop(self) -> None:
        """Stop the daemon, then the bus (as when the desktop session ends)."""
        for proc in reversed(self.processes):
            stop_process(proc)


def _program(name: str) -> str:
    found = shutil.which(name)
    assert found is not None  # missing() was checked
    return found


def _answers(address: str) -> bool:
    """Whether the default collection is on the bus and unlocked."""
    import secretstorage
    from jeepney.io.blocking import open_dbus_connection

    try:
        with open_dbus_connection(bus=address) as connection:
            return not secretstorage.Collection(connection).is_locked()
    except Exception:  # not registered yet
        return False


@contextlib.contextmanager
def private_secret_service(
    env: Mapping[str, str], *, wait: float = 10.0
) -> Iterator[SecretService]:
    """Start a private session bus and an unlocked GNOME Keyring; stop both afterwards.

    Raises:
        RuntimeError: A program is missing, the bus did not start, or the keyring did not
            answer within ``wait`` seconds.
    """
    if absent := missing():
        raise RuntimeError(
            f"not installed: {', '.join(absent)} (apt-get install {' '.join(absent)})"
        )
    short = "/tmp" if Path("/tmp").is_dir() else None  # noqa: S108 (mkdtemp: private, 0700)
    runtime = Path(tempfile.mkdtemp(prefix="nsdk-ss-", dir=short))
    runtime.chmod(0o700)
    config = runtime / "bus.conf"
    config.write_text(
        "<busconfig><type>session</type>"
        f"<listen>unix:path={runtime}/bus</listen><auth>EXTERNAL</auth>"
        '<policy context="default"><allow send_destination="*" eavesdrop="true"/>'
        '<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>'
    )
    base = {**env, "XDG_RUNTIME_DIR": str(runtime)}
    base.pop("DBUS_SESSION_BUS_ADDRESS", None)
    service = SecretService("", runtime, [])
    try:
        bus = subprocess.Popen(  # noqa: S603 (our own arguments)
            [_program("dbus-daemon"), f"--config-file={config}", "--nofork", "--print-address=1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=base,
        )
        service.processes.append(bus)
        assert bus.stdout is not None
        service.address = bus.stdout.readline().strip()
        if not service.address.startswith("unix:path="):
            bus.wait(timeout=10)
            raise RuntimeError(
                f"dbus-daemon did not start: {bus.stderr.read() if bus.stderr else ''}"
            )
        daemon = subprocess.Popen(  # noqa: S603
            [_program("gnome-keyring-daemon"), "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**base, **service.env},
        )
        service.processes.append(daemon)
        assert daemon.stdin is not None
        daemon.stdin.write(KEYRING_PASSWORD)  # the new login keyring's password
        daemon.stdin.close()
        deadline = time.monotonic() + wait
        while not _answers(service.address):  # a few hundred ms
            if time.monotonic() > deadline or not service.alive:
                raise RuntimeError(f"gnome-keyring-daemon did not answer within {wait:g} s")
            time.sleep(0.05)
        yield service
    finally:
        service.stop()
        shutil.rmtree(runtime, ignore_errors=True)


__all__ = ["KEYRING_PASSWORD", "PROGRAMS", "SecretService", "missing", "private_secret_service"]
