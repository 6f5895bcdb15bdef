"""What the command line tells people on stderr: errors with exit codes and what to do, waits.

Results go to stdout, everything here to stderr. ``report`` turns an nsdk error (the only kind a
command lets through) into one message and an exit code; ``WaitNotice`` is the ``sleep`` given
to the client, so a ``Retry-After`` or a backoff is never silent: a live countdown line on a
terminal, one plain line otherwise.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .._errors import NsdkError

#: Exit codes of every command (documented in ``nsdk --help`` and docs/cli.md).
OK = 0
API_ERROR = 1  # the API answered an error, or the network failed
USAGE = 2  # a wrong option or argument (click's own code for usage errors)
LOCAL_STATE = 3  # the session file or profile record cannot be used
AUTH_REQUIRED = 4  # not signed in, session expired, wrong credentials
INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

EXIT_CODES = (
    (OK, "success"),
    (API_ERROR, "the API answered an error or the network failed (the message has the request_id)"),
    (USAGE, "usage: a wrong option or argument, no password source, no base URL"),
    (
        LOCAL_STATE,
        "the local session cannot be used: session file corrupt, open to others, busy; "
        "OS keyring locked or not answering",
    ),
    (AUTH_REQUIRED, "authentication required: not signed in, session expired, wrong credentials"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)


def error(message: str) -> None:
    """Write ``nsdk: error: <message>`` to stderr."""
    sys.stderr.write(f"nsdk: error: {message}\n")


def note(message: str) -> None:
    """Write ``nsdk: <message>`` to stderr (a diagnostic, not a result)."""
    sys.stderr.write(f"nsdk: {message}\n")


def login_command(profile: str) -> str:
    """The command that signs this profile in again."""
    return "nsdk login" if profile == "default" else f"nsdk --profile {profile} login"


def _reports() -> tuple[tuple[type[NsdkError], int, str | None], ...]:
    """What each error means on the command line: (type, exit code, what to do), first match wins.

    ``{sign_in}`` and ``{profile}`` in the advice are filled in; ``None``: the message says it all.
    Imported when an error is reported, so a command that succeeds never loads the error tree.
    """
    from .._errors import (
        AuthenticationError,
        ConfigurationError,
        NotAuthenticatedError,
        ScopeMismatchError,
        SessionExpiredError,
        TokenStoreBusyError,
        TokenStoreCorruptError,
        TokenStoreError,
        TokenStoreKeyError,
    )

    return (
        (
            SessionExpiredError,
            AUTH_REQUIRED,
            "the session has expired and was signed out: sign in again with `{sign_in}`",
        ),
        (NotAuthenticatedError, AUTH_REQUIRED, None),  # its own message, below
        (
            ScopeMismatchError,
            AUTH_REQUIRED,
            "the session was signed out: sign in again with `{sign_in}`",
        ),
        (
            AuthenticationError,
            AUTH_REQUIRED,
            "the server refused the session: sign in again with `{sign_in}`",
        ),
        (TokenStoreBusyError, LOCAL_STATE, None),
        (
            TokenStoreCorruptError,
            LOCAL_STATE,
            "or clear it with `nsdk --profile {profile} logout`, then `{sign_in}`",
        ),
        (
            TokenStoreKeyError,
            LOCAL_STATE,
            "or clear it with `nsdk --profile {profile} logout`, then `{sign_in}`",
        ),
        (TokenStoreError, LOCAL_STATE, None),
        (ConfigurationError, USAGE, None),
    )


def report(exc: NsdkError, profile: str) -> int:
    """Print ``exc`` and what to do on stderr; return the exit code for it."""
    from .._errors import AuthenticationError, NotAuthenticatedError

    sign_in = login_command(profile)
    kind, code, advice = next(
        (row for row in _reports() if isinstance(exc, row[0])), (type(exc), API_ERROR, None)
    )
    if kind is NotAuthenticatedError:
        error(f"not signed in (profile {profile}): sign in with `{sign_in}`")
        return code
    error(f"{exc}")
    if (
        kind is AuthenticationError
        and isinstance(exc, AuthenticationError)
        and exc.operation == "login"
    ):
        advice = None  # wrong credentials: the message says so; there is no session to refuse
    if advice is not None:
        note(advice.format(sign_in=sign_in, profile=profile))
    return code


class WaitNotice:
    """The client's ``sleep``: waits ``seconds`` and says so on stderr while it does.

    On a terminal, one line counts down in place (a carriage return rewrites it) and is erased
    when the wait ends; otherwise one plain line per wait, so logs stay readable.

    Args:
        stream: Where to write (default: ``sys.stderr``).
        sleep: The real sleep (injectable).
        clock: A monotonic clock (injectable).
        tick: Seconds between updates of the countdown line.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        tick: float = 0.25,
    ) -> None:
        self._stream = stream
        self._sleep = sleep
        self._clock = clock
        self._tick = tick

    def __call__(self, seconds: float) -> None:
        """Wait ``seconds``, showing the wait."""
        stream = self._stream or sys.stderr
        what = "the server asked to wait (Retry-After) or the request failed"
        if seconds <= 0:
            self._sleep(0)
            return
        if not stream.isatty():
            shown = f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.2f}"
            stream.write(f"nsdk: {what}: retrying in {shown} s\n")
            stream.flush()
            self._sleep(seconds)
            return
        end = self._clock() + seconds
        try:
            while (left := end - self._clock()) > 0:
                stream.write(f"\r\x1b[2Knsdk: {what}: retrying in {math.ceil(left)} s ...")
                stream.flush()
                self._sleep(min(self._tick, left))
        finally:
            stream.write("\r\x1b[2K")  # the line goes away: the result follows on a clean line
            stream.flush()


def setup_logging(verbose: bool) -> None:
    """Send the ``nsdk`` logger's records to stderr as ``nsdk: ...`` lines.

    Warnings (e.g. a sign-out the server did not confirm), or every record with ``--verbose``
    (one line per HTTP exchange, with its request id; nsdk never logs a secret).
    """
    import logging  # here: `nsdk --help` does not pay for it

    class StderrHandler(logging.Handler):
        nsdk_cli = True  # one per process, however often this runs

        def emit(self, record: logging.LogRecord) -> None:
            try:
                level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
                sys.stderr.write(f"nsdk: {level}{record.getMessage()}\n")
            except Exception:  # pragma: no cover - logging must never break a command
                self.handleError(record)

    log = logging.getLogger("nsdk")
    if not any(getattr(h, "nsdk_cli", False) for h in log.handlers):
        log.addHandler(StderrHandler())
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False


__all__ = [
    "API_ERROR",
    "AUTH_REQUIRED",
    "EXIT_CODES",
    "INTERRUPTED",
    "LOCAL_STATE",
    "OK",
    "USAGE",
    "WaitNotice",
    "error",
    "login_command",
    "note",
    "report",
    "setup_logging",
]
