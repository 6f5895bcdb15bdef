"""The ``nsdk`` command group: login, status, me, token, logout, and ``api`` (``_api.py``).

Each command imports the parts of nsdk it uses when it runs (``status`` never loads the HTTP
stack). The session of a profile is one ``FileTokenStore``, so any number of ``nsdk`` processes
share it: one refresh per expiry whoever notices it first, and a refused refresh signs every one
of them out. Errors are nsdk's own, reported by ``_output.report`` with an exit code.
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

BASE_URL_ENV = "NSDK_API_BASE_URL"  # the same variable nsdk.Client reads (nsdk.BASE_URL_ENV)

#: The access token is refreshed this long before its ``exp`` (capped at half its lifetime),
#: the client's default ``refresh_leeway``: ``nsdk token`` never prints a token about to expire.
REFRESH_LEEWAY = 30.0

_EPILOG = (
    "\b\nExit codes:\n"
    + "\n".join(f"  {code:<4} {what}" for code, what in _output.EXIT_CODES)
    + f"\n\n\b\nEnvironment:\n  {BASE_URL_ENV:<20} the API's base URL (like --base-url)"
    + f"\n  {PROFILE_ENV:<20} the profile (like --profile)"
    + f"\n  {CONFIG_DIR_ENV:<20} the configuration directory (default: the user config dir)"
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

    def store(self) -> FileTokenStore:
        """The profile's session store."""
        from .._file_store import FileTokenStore

        return FileTokenStore(self.profile.session_path)

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


@cli.command()
@click.option("--email", metavar="EMAIL", help="The account's email (prompted for on a terminal).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin (scripts); else a prompt that does "
    "not echo. There is no --password option: it would show in the process list and history.",
)
@click.pass_obj
def login(state: State, email: str | None, password_stdin: bool) -> int:
    """Sign in, verify the session with `me`, and keep it for later commands."""
    base_url = state.base_url_for(None)
    if email is None:
        if password_stdin or not sys.stdin.isatty():
            raise click.UsageError("--email is required when stdin is not a terminal")
        email = click.prompt("Email", err=True)
    password = read_secret("Password", from_stdin=password_stdin, stdin_flag="--password-stdin")
    store = state.store()
    with state.client(store, base_url) as client:
        session = client.login(email=email, password=password)
        del password
        url = str(client.base_url)
    state.profile.write_record(
        base_url=url, email=session.email, user_id=session.user_id, tenant_id=session.tenant_id
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
    stored = state.store().read()
    record = state.record() if stored.tokens is not None else {}
    tokens = stored.tokens
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
        "storage": "file",
        "session_file": str(state.profile.session_path),
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


@cli.command()
@click.pass_obj
def logout(state: State) -> int:
    """Sign out: revoke the session on the server and always clear it here.

    Idempotent: without a session it says so and exits 0. When the server cannot be told (down,
    unreachable), the local session is cleared all the same, with a warning.
    """
    from .._errors import TokenStoreCorruptError, TokenStoreKeyError
    from .._retry import RetryPolicy

    store = state.store()
    try:
        stored = store.read()
    except (TokenStoreCorruptError, TokenStoreKeyError) as exc:
        # Unreadable, so nothing to tell the server: signing out here means removing it.
        state.profile.session_path.unlink(missing_ok=True)
        state.profile.remove_record()
        _output.note(f"{exc.store}: the session file could not be read; removed it")
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
