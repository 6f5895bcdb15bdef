"""The ``nsdk`` command group: login, status, me, token, logout, and ``api`` (``_api.py``).

Each command imports the parts of nsdk it uses when it runs (``status`` never loads the HTTP
stack). The session of a profile is one ``FileTokenStore`` (its record in the OS keyring
instead of the file when ``nsdk login`` found a real one: ``_keyring.py``), so any number of
``nsdk`` processes share it: one refresh per expiry whoever notices it first, and a refused
refresh signs every one of them out. Errors are nsdk's own, reported by ``_output.report`` with
an exit code.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from . import _output
from ._output import AUTH_REQUIRED, INTERRUPTED, LOCAL_STATE, OK
from ._profile import CONFIG_DIR_ENV, DEFAULT_PROFILE, PROFILE_ENV, Profile, ProfileError

if TYPE_CHECKING:
    from .._client import Client
    from .._file_store import FileTokenStore
    from .._retry import RetryPolicy
    from .._tokens import StoredSession
    from ._keyring import Backend

BASE_URL_ENV = "NSDK_API_BASE_URL"  # the same variable nsdk.Client reads (nsdk.BASE_URL_ENV)
STORAGE_ENV = "NSDK_STORAGE"  # login's --storage
KEYRING_TIMEOUT_ENV = "NSDK_KEYRING_TIMEOUT"  # _keyring.TIMEOUT_ENV, without importing it

#: The access token is refreshed this long before its ``exp`` (capped at half its lifetime),
#: the client's default ``refresh_leeway``: ``nsdk token`` never prints a token about to expire.
REFRESH_LEEWAY = 30.0

_EPILOG = (
    "\b\nExit codes:\n"
    + "\n".join(f"  {code:<4} {what}" for code, what in _output.EXIT_CODES)
    + f"\n\n\b\nEnvironment:\n  {BASE_URL_ENV:<20} the API's base URL (like --base-url)"
    + f"\n  {PROFILE_ENV:<20} the profile (like --profile)"
    + f"\n  {CONFIG_DIR_ENV:<20} the configuration directory (default: the user config dir)"
    + f"\n  {STORAGE_ENV:<20} where login keeps the session (like login --storage)"
    + f"\n  {KEYRING_TIMEOUT_ENV:<20} seconds an OS keyring call may take (default 5)"
)


@dataclass
class State:
    """What the group's options decided, for its commands."""

    profile: Profile
    base_url: str | None
    _record: dict[str, str] | None = field(default=None, repr=False)

    def record(self) -> dict[str, str]:
        """The profile record (read once)."""
        if self._record is None:
            self._record = self.profile.read_record()
        return self._record

    def forget_record(self) -> None:
        """Remove the profile record (and forget what was read of it)."""
        self.profile.remove_record()
        self._record = {}

    def store(self) -> FileTokenStore:
        """The profile's session store: where its record says ``nsdk login`` put the session.

        Raises:
            ProfileError: The profile record is unreadable.
            TokenStoreUnavailableError: The session is in an OS keyring not usable now.
        """
        record = self.record()
        if record.get("storage") == "keyring":
            return self.keyring_store(record.get("keyring_backend", ""))
        return self.file_store()

    def file_store(self) -> FileTokenStore:
        """The profile's session file."""
        from .._file_store import FileTokenStore

        return FileTokenStore(self.profile.session_path)

    def keyring_store(self, name: str, backend: Backend | None = None) -> FileTokenStore:
        """The profile's session in the OS keyring called ``name`` (found and probed if needed).

        Raises:
            TokenStoreUnavailableError: That keyring is not here, or does not answer in time.
        """
        from .._errors import TokenStoreUnavailableError
        from . import _keyring

        seconds = _keyring.timeout()
        forget = f"`nsdk --profile {self.profile.name} logout` forgets it here"
        if backend is None:
            try:
                backend = _keyring.backend_named(name, seconds)
            except _keyring.KeyringUnusable as exc:
                where = f"OS keyring ({name})"
                raise TokenStoreUnavailableError(
                    f"{where}: profile {self.profile.name!r} keeps its session there, but: "
                    f"{exc}; {forget}",
                    store=where,
                ) from None
        return _keyring.KeyringTokenStore(self.profile, backend, call_timeout=seconds, hint=forget)

    def clear(self, store: FileTokenStore) -> None:
        """Remove the stored session itself (a file, or a keyring item), not just its tokens."""
        from ._keyring import KeyringTokenStore

        if isinstance(store, KeyringTokenStore):
            store.delete()
        else:
            self.profile.session_path.unlink(missing_ok=True)

    def base_url_for(self, stored: StoredSession | None) -> str:
        """The base URL to call: the session's own while signed in, else the one given.

        Raises:
            click.UsageError: None is known, or a signed-in session would go to another server.
        """
        recorded = self.record().get("base_url")
        given = self.base_url
        if stored is not None and stored.tokens is not None and recorded:
            if given and given.rstrip("/") != recorded.rstrip("/"):
                raise click.UsageError(
                    f"profile {self.profile.name!r} is signed in to {recorded}, not {given}; "
                    f"sign out first (`nsdk --profile {self.profile.name} logout`) or use "
                    "another --profile"
                )
            return recorded
        if given:
            return given
        if recorded:
            return recorded
        raise click.UsageError(f"no API base URL: pass --base-url URL or set ${BASE_URL_ENV}")

    def client(
        self,
        store: FileTokenStore,
        base_url: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Client:
        """A client on the profile's session that shows its waits on stderr."""
        from .._client import Client

        return Client(
            base_url, token_store=store, sleep=_output.WaitNotice(), retry=retry, timeout=timeout
        )


def read_secret(label: str, *, from_stdin: bool, stdin_flag: str) -> str:
    """A secret from the first line of stdin, or a terminal prompt that does not echo.

    Raises:
        click.UsageError: No terminal and no ``stdin_flag``, or nothing to read.
    """
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.UsageError(f"{stdin_flag}: stdin is empty; pipe the {label.lower()} in")
        return line
    if not sys.stdin.isatty():
        raise click.UsageError(
            f"no terminal to ask for the {label.lower()}: pipe it in with {stdin_flag}, e.g. "
            f"`printf '%s\\n' \"$SECRET\" | nsdk ... {stdin_flag}`"
        )
    try:
        value = getpass.getpass(f"{label}: ")
    except EOFError:
        raise click.UsageError(
            f"no {label.lower()} was typed; or pipe it in with {stdin_flag}"
        ) from None
    if not value:
        raise click.UsageError(f"an empty {label.lower()}; or pipe it in with {stdin_flag}")
    return value


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _in(seconds: float) -> str:
    seconds = int(abs(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _due(expires_at: float | None, issued_at: float | None, now: float) -> bool:
    # The client's proactive rule (SessionCore.due_for_refresh): within the leeway of exp,
    # the leeway capped at half the token's lifetime.
    if expires_at is None:
        return False
    leeway = REFRESH_LEEWAY
    if issued_at is not None:
        leeway = min(leeway, max(0.0, expires_at - issued_at) / 2)
    return now >= expires_at - leeway


def _json_out(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


class NsdkGroup(click.Group):
    """The root group: nsdk errors and profile problems become messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; report nsdk errors (never a traceback for an expected failure)."""
        from .._errors import NsdkError

        try:
            return super().invoke(ctx)
        except NsdkError as exc:
            state = ctx.find_object(State)
            name = state.profile.name if state is not None else DEFAULT_PROFILE
            ctx.exit(_output.report(exc, name))
        except ProfileError as exc:
            _output.error(str(exc))
            ctx.exit(LOCAL_STATE)


@click.group(
    cls=NsdkGroup, epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--profile",
    envvar=PROFILE_ENV,
    default=DEFAULT_PROFILE,
    show_default=True,
    metavar="NAME",
    help="The session to use; several profiles keep sessions side by side.",
)
@click.option(
    "--base-url",
    envvar=BASE_URL_ENV,
    metavar="URL",
    help="The API's base URL (at login; later commands use the signed-in session's own).",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Log each HTTP exchange to stderr (no secrets)."
)
@click.version_option(package_name="nsdk", prog_name="nsdk")
@click.pass_context
def cli(ctx: click.Context, profile: str, base_url: str | None, verbose: bool) -> None:
    """Sign in once, then call every operation of the NSDK API from a shell.

    Results go to stdout, diagnostics to stderr. The session of each profile is kept in a file
    (0600) under the user config directory and shared by every nsdk process: tokens are
    refreshed automatically, once per expiry.
    """
    _output.setup_logging(verbose)
    try:
        ctx.obj = State(Profile.named(profile), base_url or None)
    except ProfileError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None


def _choose_store(state: State, storage: str) -> tuple[FileTokenStore, str, str | None]:
    """Where ``login`` keeps the session: (store, "keyring" or "file", keyring backend name).

    ``auto`` takes the OS keyring when a real one answers, else the file (saying why on stderr
    when keyring is installed but not usable); ``keyring`` insists, ``file`` never asks.

    Raises:
        click.UsageError: ``keyring`` was asked for and there is none usable.
    """
    if storage == "file":
        return state.file_store(), "file", None
    from . import _keyring

    try:
        backend = _keyring.find_backend(_keyring.timeout())
    except _keyring.KeyringUnusable as exc:
        if storage == "keyring":
            raise click.UsageError(f"--storage keyring: {exc}") from None
        import importlib.util

        if importlib.util.find_spec("keyring") is not None:
            _output.note(f"OS keyring not used ({exc}); the session goes in a 0600 file")
        return state.file_store(), "file", None
    return state.keyring_store(backend.name, backend), "keyring", backend.name


def _forget_previous(state: State, previous: dict[str, str], storage: str) -> None:
    """Remove a session the profile kept elsewhere before this sign-in (file or keyring)."""
    if previous.get("storage", "file") == storage:
        return
    if storage == "keyring":
        state.profile.session_path.unlink(missing_ok=True)
        return
    from .._errors import TokenStoreError

    try:
        state.clear(state.keyring_store(previous.get("keyring_backend", "")))
    except TokenStoreError as exc:  # not reachable now: say so, the new session is elsewhere
        _output.note(f"{exc.store}: could not remove the earlier session there ({exc})")


@cli.command()
@click.option("--email", metavar="EMAIL", help="The account's email (prompted for on a terminal).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin (scripts); else a prompt that does "
    "not echo. A password is never an option's value: it would show in the process list and "
    "the shell history.",
)
@click.option(
    "--storage",
    type=click.Choice(["auto", "keyring", "file"]),
    default="auto",
    show_default=True,
    envvar=STORAGE_ENV,
    help="Where to keep the session: the OS keyring (needs nsdk[keyring] and a real keyring: "
    "Secret Service, Keychain, Credential Locker), a 0600 file in the profile directory, or "
    "auto: the keyring when one answers, else the file.",
)
@click.pass_obj
def login(state: State, email: str | None, password_stdin: bool, storage: str) -> int:
    """Sign in, verify the session with `me`, and keep it for later commands."""
    base_url = state.base_url_for(None)
    try:
        previous = state.record()
    except ProfileError:
        previous = {}  # replaced below
    if email is None:
        if password_stdin or not sys.stdin.isatty():
            raise click.UsageError("--email is required when stdin is not a terminal")
        email = click.prompt("Email", err=True)
    password = read_secret("Password", from_stdin=password_stdin, stdin_flag="--password-stdin")
    store, kind, backend = _choose_store(state, storage)
    with state.client(store, base_url) as client:
        session = client.login(email=email, password=password)
        del password
        url = str(client.base_url)
    _forget_previous(state, previous, kind)  # only now: a failed sign-in keeps the old session
    state.profile.write_record(
        base_url=url,
        email=session.email,
        user_id=session.user_id,
        tenant_id=session.tenant_id,
        storage=kind,
        keyring_backend=backend,
    )
    click.echo(
        f"Signed in to {url} as {session.email} (user {session.user_id}, tenant "
        f"{session.tenant_id}); profile {state.profile.name}"
    )
    return OK


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (see docs/cli.md).")
@click.pass_obj
def status(state: State, as_json: bool) -> int:
    """Show who is signed in, where, until when, and where the session is stored.

    Reads the local session only (no request). Exit 0 when signed in, 4 when not signed in or
    the session expired. Never prints a token.
    """
    store = state.store()
    stored = store.read()
    record = state.record() if stored.tokens is not None else {}
    tokens = stored.tokens
    from ._keyring import SERVICE, KeyringTokenStore

    in_keyring = isinstance(store, KeyringTokenStore)
    now = time.time()
    if tokens is not None:
        kind = "signed_in"
    elif stored.expired:
        kind = "expired"
    else:
        kind = "signed_out"
    expires_at = tokens.expires_at if tokens is not None else None
    info: dict[str, object] = {
        "profile": state.profile.name,
        "signed_in": tokens is not None,
        "state": kind,
        "base_url": record.get("base_url"),
        "email": record.get("email"),
        "user_id": record.get("user_id"),
        "tenant_id": record.get("tenant_id"),
        "signed_in_at": record.get("signed_in_at"),
        "access_token_expires_at": _iso(expires_at),
        "access_token_expired": None if expires_at is None else now >= expires_at,
        "storage": "keyring" if in_keyring else "file",
        "session_file": None if in_keyring else str(state.profile.session_path),
        "keyring": {"backend": store.backend.name, "service": SERVICE, "account": store.account}
        if isinstance(store, KeyringTokenStore)
        else None,
    }
    if as_json:
        _json_out(info)
    else:
        click.echo(f"Profile:  {state.profile.name}")
        if tokens is None:
            click.echo(
                "Session:  expired (the refresh was refused)"
                if stored.expired
                else "Session:  not signed in"
            )
        else:
            who = record.get("email") or "(unknown user)"
            click.echo(
                f"Session:  signed in as {who} (user {record.get('user_id', '?')}, tenant "
                f"{record.get('tenant_id', '?')})"
            )
            click.echo(f"API:      {record.get('base_url', '(unknown)')}")
            if expires_at is None:
                click.echo("Token:    access token without an expiry time")
            elif now < expires_at:
                left = _in(expires_at - now)
                click.echo(f"Token:    access token valid until {_iso(expires_at)} (in {left})")
            else:
                ago = _in(now - expires_at)
                click.echo(
                    f"Token:    access token expired at {_iso(expires_at)} ({ago} ago); the next "
                    "command refreshes it"
                )
        if isinstance(store, KeyringTokenStore):
            click.echo(
                f"Stored:   OS keyring ({store.backend.name}): service {SERVICE}, account "
                f"{store.account}"
            )
        else:
            click.echo(f"Stored:   file {state.profile.session_path}")
    if tokens is None:
        _output.note(f"sign in with `{_output.login_command(state.profile.name)}`")
        return AUTH_REQUIRED
    return OK


def signed_in_client(state: State) -> Client:
    """A client on the profile's session; exit 4 at once when there is none."""
    from .._errors import NotAuthenticatedError, SessionExpiredError

    store = state.store()
    stored = store.read()
    if stored.tokens is None:
        if stored.expired:
            raise SessionExpiredError("the session expired earlier (its refresh was refused)")
        raise NotAuthenticatedError("not signed in")
    return state.client(store, state.base_url_for(stored))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON object.")
@click.pass_obj
def me(state: State, as_json: bool) -> int:
    """Show the signed-in user and tenant, as the API says (refreshing the token if due)."""
    with signed_in_client(state) as client:
        found = client.me()
    if as_json:
        _json_out(found.to_dict())
    else:
        click.echo(f"{found.email} (user {found.user_id}, tenant {found.tenant_id})")
    return OK


@cli.command()
@click.pass_obj
def token(state: State) -> int:
    """Print the current access token, refreshed first if due, and nothing else.

    For other tools: curl -H "Authorization: Bearer $(nsdk token)" ...
    """
    with signed_in_client(state) as client:
        pair = client.tokens
        if pair is not None and _due(pair.expires_at, pair.issued_at, time.time()):
            pair = client.refresh()  # adopts another process's rotation instead, if any
        if pair is None:
            from .._errors import NotAuthenticatedError

            raise NotAuthenticatedError("not signed in")
        click.echo(pair.access_token)
    return OK


def _forget_unreachable_keyring(state: State, exc: Exception) -> int:
    """Sign out here when the keyring holding the session cannot be reached (item left)."""
    state.profile.remove_record()
    _output.note(f"{exc}; signed out here, the keyring item was left as it was")
    return OK


@cli.command()
@click.pass_obj
def logout(state: State) -> int:
    """Sign out: revoke the session on the server and always clear it here.

    Idempotent: without a session it says so and exits 0. When the server cannot be told (down,
    unreachable), the local session is cleared all the same, with a warning.
    """
    from .._errors import TokenStoreCorruptError, TokenStoreKeyError, TokenStoreUnavailableError
    from .._retry import RetryPolicy
    from ._keyring import KeyringTokenStore

    try:
        store = state.store()
    except ProfileError as exc:  # where the session is stays unknown: the file, if any
        _output.note(f"{exc}; removing it")
        state.forget_record()
        store = state.file_store()
    except TokenStoreUnavailableError as exc:  # a keyring not usable now: forget it here
        return _forget_unreachable_keyring(state, exc)
    try:
        stored = store.read()
    except TokenStoreUnavailableError as exc:  # the keyring found, but not answering
        if not isinstance(store, KeyringTokenStore):
            raise
        return _forget_unreachable_keyring(state, exc)
    except (TokenStoreCorruptError, TokenStoreKeyError) as exc:
        # Unreadable, so nothing to tell the server: signing out here means removing it.
        state.clear(store)
        state.profile.remove_record()
        _output.note(f"{exc.store}: the stored session could not be read; removed it")
        return OK
    if stored.tokens is None:
        state.profile.remove_record()
        _output.note(f"not signed in (profile {state.profile.name}): nothing to do")
        return OK
    try:
        recorded = state.record().get("base_url") or state.base_url
    except ProfileError as exc:  # an unreadable record must not keep the session alive
        _output.note(f"{exc}; removing it")
        state.profile.remove_record()
        recorded = state.base_url
    if not recorded:  # no server to tell: clear the local session
        while not store.compare_and_set(stored.generation, stored.successor(None)):
            stored = store.read()
        state.profile.remove_record()
        _output.note("no base URL is known for this session: cleared it here only")
        return OK
    # One quick attempt more at most: a sign-out must not hang when the server is down.
    quick = RetryPolicy(max_attempts=2, initial_backoff=0.2, max_backoff=0.5, max_retry_after=5)
    with state.client(store, recorded, retry=quick, timeout=5.0) as client:
        confirmed = client.logout()  # clears the session whatever the answer
    state.profile.remove_record()
    if isinstance(store, KeyringTokenStore):  # leave no nsdk item behind in the user's keyring
        try:
            state.clear(store)
        except TokenStoreUnavailableError as exc:
            _output.note(f"{exc}; the item holds no token any more")
    if confirmed:
        click.echo(f"Signed out of {recorded} (profile {state.profile.name})")
    else:
        _output.note(
            f"the server did not confirm the sign-out; the session was cleared here (profile "
            f"{state.profile.name})"
        )
    return OK


def _register_api() -> None:
    from ._api import api

    cli.add_command(api)


_register_api()


def run(argv: list[str] | None = None) -> int:
    """Run the command line; return its exit code (see ``_output.EXIT_CODES``)."""
    try:
        code = cli.main(args=argv, prog_name="nsdk", standalone_mode=False)
    except click.exceptions.Abort:
        _output.note("interrupted")
        return INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except BrokenPipeError:  # `nsdk ... | head`: the reader left, nothing more to say
        return OK
    return code if isinstance(code, int) else OK


__all__ = ["REFRESH_LEEWAY", "NsdkGroup", "State", "cli", "read_secret", "run"]
