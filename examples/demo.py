"""Walk the authentication guide's whole flow with nsdk's public API, and trace every exchange.

Run it with ``nox -s demo`` (which regenerates the client first), or ``python examples/demo.py``
in an environment where ``nsdk`` and ``nsdk_server`` are installed.

Without ``NSDK_API_BASE_URL`` the demo starts the reference server on a free loopback port with a
2-second access-token TTL and fault injection, and signs in as its demo user. With
``NSDK_API_BASE_URL`` set it runs against that API with ``NSDK_EMAIL`` and ``NSDK_PASSWORD``, and
skips the steps that need the reference server's fault injection (the trace says so).

With ``--tls`` (``nox -s demo -- --tls``) the reference server serves HTTPS with a certificate from
a throwaway local CA, and the demo's clients trust that CA only: the whole flow runs over TLS, and
the demo checks that every answer came over a verified TLS connection.

The steps, as the guide describes them:

1. sign in (``login``), which also verifies user and tenant with ``me``;
2. call a protected API (``me``) with the bearer token;
3. the access token expires: the server answers 401, the SDK refreshes once and resends once
   (the demo's clients run their clock CLOCK_SKEW seconds slow, so they cannot see the expiry
   coming; with an accurate clock nsdk refreshes a JWT shortly before its ``exp`` instead, and
   the 401 path serves opaque tokens, skewed clocks and early revocation);
4. the server answers 429 with ``Retry-After``: the SDK waits that long and sends again;
5. sign out (``logout``): the server revokes the session, the client clears its state;
6. a call after logout fails closed, without sending anything;
7. the revoked tokens are refused by the server: the refresh fails and the session fails closed.

Every exchange prints one line (method, path, status, attempt, wait, request_id, which token was
presented); tokens are shown only as labels such as ``access#2``, never as text, and the demo
checks its own output for token leaks. It exits 0 only if every step behaved as documented.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import nsdk

#: The reference server's documented demo user.
DEMO_EMAIL = "user@example.com"
DEMO_PASSWORD = "demo-password"  # the reference server's public demo password, not a secret
#: The access-token lifetime the demo gives the reference server, in seconds.
ACCESS_TTL = 2
#: How far this demo's clients' clocks run behind (see step 3).
CLOCK_SKEW = 10.0
#: The longest wait for a token to expire against a real API (override: NSDK_DEMO_MAX_WAIT).
DEFAULT_MAX_WAIT = 30.0

# One line per attempt, as nsdk's transport logs it at DEBUG on the "nsdk" logger.
_ATTEMPT = re.compile(
    r"^(?P<method>[A-Z]+) (?P<path>\S+) attempt=(?P<attempt>\d+) -> (?P<outcome>\S+) "
    r"request_id=(?P<rid>\S+)(?: retry_in=(?P<wait>[0-9.]+)s)?$"
)


def slow_clock() -> float:
    """This demo's clients' clock: CLOCK_SKEW seconds behind the real time."""
    return time.time() - CLOCK_SKEW


@dataclass
class Exchange:
    """One attempt of one request, as the trace shows it."""

    method: str
    path: str
    outcome: str
    attempt: int
    wait: float | None
    request_id: str
    presented: str
    at: float

    @property
    def key(self) -> tuple[str, str, str]:
        """(method, path, status) for comparing with the documented sequence."""
        return (self.method, self.path, self.outcome)


class TokenLabels:
    """Names tokens ``access#1``, ``refresh#1``... so the trace can follow them without them."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}
        self._counts = {"access": 0, "refresh": 0}

    def label(self, token: str, kind: str) -> str:
        """The token's label, numbering it on first sight."""
        if token not in self._labels:
            self._counts[kind] += 1
            self._labels[token] = f"{kind}#{self._counts[kind]}"
        return self._labels[token]

    def pair(self, tokens: nsdk.Tokens | None) -> str:
        """Label both tokens of a pair (``access#2 + refresh#2``)."""
        if tokens is None:
            return "none"
        access = self.label(tokens.access_token, "access")
        return f"{access} + {self.label(tokens.refresh_token, 'refresh')}"

    def known(self) -> list[str]:
        """Every token seen so far (for the leak check; never printed)."""
        return list(self._labels)


class RecordingStore(nsdk.MemoryTokenStore):
    """An ``nsdk.MemoryTokenStore`` that labels every pair it is given."""

    def __init__(self, labels: TokenLabels, tokens: nsdk.Tokens | None = None) -> None:
        super().__init__(tokens)
        self._labels = labels
        if tokens is not None:
            labels.pair(tokens)

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> bool:
        """Store (and label) the new pair if the generation is still ``expected``."""
        if new.tokens is not None:
            self._labels.pair(new.tokens)
        return super().compare_and_set(expected, new, lease)


class Trace(logging.Handler):
    """Collects nsdk's per-attempt log lines as exchanges, and everything the demo prints."""

    def __init__(self, labels: TokenLabels) -> None:
        super().__init__(level=logging.DEBUG)
        self.labels = labels
        self.exchanges: list[Exchange] = []
        self.lines: list[str] = []
        self._presented = "-"

    def say(self, text: str = "") -> None:
        """Print a line and keep it for the leak check."""
        self.lines.append(text)
        print(text, flush=True)

    def emit(self, record: logging.LogRecord) -> None:
        """Record one attempt (or print any other nsdk message as it is)."""
        message = record.getMessage()
        match = _ATTEMPT.match(message)
        if match is None:
            self.say(f"      nsdk {record.levelname.lower()}: {message}")
            return
        wait = match["wait"]
        self.exchanges.append(
            Exchange(
                method=match["method"],
                path=match["path"],
                outcome=match["outcome"],
                attempt=int(match["attempt"]),
                wait=None if wait is None else float(wait),
                request_id=match["rid"],
                presented=self._presented,
                at=record.created,
            )
        )

    def on_request(self, request: httpx.Request) -> None:
        """httpx request hook: note which token the request presents (as a label)."""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self._presented = self.labels.label(auth.removeprefix("Bearer "), "access")
            return
        self._presented = "-"
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            body = json.loads(request.content or b"null")
            if isinstance(body, dict) and isinstance(body.get("refreshToken"), str):
                self._presented = self.labels.label(body["refreshToken"], "refresh")

    def show(self, exchanges: list[Exchange]) -> None:
        """Print one line per exchange, with what it means."""
        previous: Exchange | None = None
        for i, ex in enumerate(exchanges):
            wait = "-" if ex.wait is None else f"{ex.wait:.3f}s"
            note = ""
            if ex.outcome == "401" and ex.path.endswith("/refresh"):
                note = "refresh refused: the session fails closed"
            elif ex.outcome == "401" and ex.presented.startswith("access"):
                note = f"{ex.presented} rejected: refresh once, then resend once"
            elif ex.outcome == "429" and ex.wait is not None:
                note = f"rate limited: wait {ex.wait:.3f}s as Retry-After says, then send again"
            elif ex.path.endswith("/refresh") and ex.outcome == "200":
                note = f"presents {ex.presented}; the server rotates the pair"
            elif previous is not None and ex.attempt > 1:
                gap = ex.at - previous.at
                note = f"sent again after {gap:.2f}s ({ex.presented})"
            elif (
                i >= 2
                and exchanges[i - 1].path.endswith("/refresh")
                and (exchanges[i - 2].method, exchanges[i - 2].path) == (ex.method, ex.path)
            ):
                note = f"the original request resent once, with {ex.presented}"
            elif ex.presented != "-":
                note = f"with {ex.presented}"
            self.say(
                f"    {ex.method:<4} {ex.path:<18} {ex.outcome:>3}  attempt={ex.attempt}  "
                f"wait={wait:<7} request_id={ex.request_id}  {note}".rstrip()
            )
            previous = ex


@dataclass
class Step:
    """One step's checks: each is a documented expectation and whether it held."""

    trace: Trace
    checks: list[tuple[bool, str]] = field(default_factory=list)
    skipped: str | None = None

    def check(self, ok: bool, expectation: str) -> bool:
        """Record (and print) whether an expectation held."""
        self.checks.append((ok, expectation))
        self.trace.say(f"    {'PASS' if ok else 'FAIL'}  {expectation}")
        return ok

    def skip(self, reason: str) -> None:
        """Mark the step as not applicable here, with the reason."""
        self.skipped = reason
        self.trace.say(f"    SKIP  {reason}")

    @property
    def failed(self) -> bool:
        """Whether any check failed."""
        return any(not ok for ok, _ in self.checks)


class Demo:
    """The flow, step by step, against one API."""

    def __init__(
        self,
        base_url: str,
        email: str,
        password: str,
        faults: Any | None,
        max_wait: float,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url
        self.verify = verify  # the CA the clients trust for HTTPS (None: the system's)
        self.tls_versions: list[str | None] = []  # per response the client got, with --tls
        self.email = email
        self.password = password
        self.faults = faults  # the reference server's fault script, or None for a real API
        self.max_wait = max_wait
        self.labels = TokenLabels()
        self.trace = Trace(self.labels)
        self.steps: list[Step] = []
        self.refreshed: list[nsdk.Tokens] = []
        self.expired: list[nsdk.SessionExpiredError] = []
        self.store = RecordingStore(self.labels)

    def client(self, store: RecordingStore) -> nsdk.Client:
        """A client wired to the trace: its requests are labelled, its attempts logged."""
        client = nsdk.Client(
            self.base_url,
            token_store=store,
            on_tokens_refreshed=self.refreshed.append,
            on_session_expired=self.expired.append,
            # Refresh only when the server says 401, so the trace shows the guide's reactive path
            # (see step 3; by default nsdk also refreshes shortly before the token's exp).
            refresh_leeway=0,
            clock=slow_clock,
            # With --tls: trust the demo server's throwaway CA only (else the default CAs).
            verify=True if self.verify is None else self.verify,
        )
        hooks = client.api.get_httpx_client().event_hooks
        hooks["request"].append(self.trace.on_request)
        if self.verify is not None:
            hooks["response"].append(self.note_tls)
        return client

    def note_tls(self, response: httpx.Response) -> None:
        """httpx response hook: note the TLS version of a verified connection (else None)."""
        stream = response.extensions.get("network_stream")
        ssl_object = None if stream is None else stream.get_extra_info("ssl_object")
        # getpeercert() is empty unless the server's certificate chain was verified.
        verified = ssl_object is not None and bool(ssl_object.getpeercert())
        self.tls_versions.append(str(ssl_object.version()) if verified else None)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Step]:
        """Run one step: print its title, then the exchanges it made, then its checks."""
        step = Step(self.trace)
        self.steps.append(step)
        self.trace.say()
        self.trace.say(f"[{len(self.steps)}] {title}")
        yield step

    def exchanges_of(self, call: Callable[[], Any]) -> tuple[Any, list[Exchange]]:
        """Call ``call`` and return its result (or the nsdk error it raised) and its exchanges."""
        mark = len(self.trace.exchanges)
        try:
            result: Any = call()
        except nsdk.NsdkError as exc:
            result = exc
        made = self.trace.exchanges[mark:]
        self.trace.show(made)
        return result, made

    def expect(self, step: Step, made: list[Exchange], *expected: tuple[str, str, str]) -> bool:
        """Check that the exchanges were exactly ``expected`` (method, path suffix, status)."""
        got = [ex.key for ex in made]
        ok = len(got) == len(expected) and all(
            g[0] == e[0] and g[1].endswith(e[1]) and g[2] == e[2]
            for g, e in zip(got, expected, strict=False)
        )
        wanted = ", ".join(f"{m} {p.rsplit('/', 1)[-1]} {s}" for m, p, s in expected) or "nothing"
        return step.check(ok, f"exchanges were: {wanted}")

    def run(self) -> int:
        """Run every step; return the exit status (0: all as documented)."""
        logger = logging.getLogger("nsdk")
        logger.addHandler(self.trace)
        logger.setLevel(logging.DEBUG)
        try:
            with self.client(self.store) as client:
                self.sign_in(client)
                self.call_me(client)
                self.expire_and_refresh(client)
                self.rate_limited(client)
                last_tokens = self.store.tokens
                self.sign_out(client)
                self.call_after_logout(client)
            self.revoked_tokens(last_tokens)
        except _Abort:
            self.trace.say("    aborted: the remaining steps depend on this one")
        finally:
            logger.removeHandler(self.trace)
        return self.summary()

    # The steps -------------------------------------------------------------------------------

    def sign_in(self, client: nsdk.Client) -> None:
        """Step 1: POST /api/auth/login, then GET /api/auth/me to verify user and tenant."""
        with self.step("Sign in: login, then me to verify user and tenant") as step:
            session, made = self.exchanges_of(
                lambda: client.login(email=self.email, password=self.password)
            )
            if not isinstance(session, nsdk.Session):
                step.check(False, f"login returned a session (it raised {session!r})")
                raise _Abort
            self.trace.say(
                f"    session: user_id={session.user_id} tenant_id={session.tenant_id} "
                f"email={session.email}; tokens held: {self.labels.pair(self.store.tokens)}"
            )
            self.expect(step, made, ("POST", "/login", "200"), ("GET", "/me", "200"))
            step.check(client.state is nsdk.SessionState.ACTIVE, "the session is active")

    def call_me(self, client: nsdk.Client) -> None:
        """Step 2: a protected call with the bearer token."""
        with self.step("Call a protected API: me, with Authorization: Bearer <access>") as step:
            me, made = self.exchanges_of(client.me)
            self.expect(step, made, ("GET", "/me", "200"))
            session = client.session
            step.check(
                not isinstance(me, nsdk.NsdkError)
                and session is not None
                and (me.user_id, me.tenant_id) == (session.user_id, session.tenant_id),
                "me returned the signed-in user and tenant",
            )

    def expire_and_refresh(self, client: nsdk.Client) -> None:
        """Step 3: the access token expires; on 401 the SDK refreshes once and resends once."""
        with self.step("The access token expires: 401, refresh once, resend once") as step:
            tokens = self.store.tokens
            expires_at = tokens.expires_at if tokens is not None else None
            left = None if expires_at is None else max(0.0, expires_at - time.time())
            wait = None if left is None else left + 0.5
            if left is None or wait is None or wait > self.max_wait:
                lives = "are opaque" if left is None else f"expire in {left:.0f} s"
                step.skip(
                    f"access tokens here {lives}; set NSDK_DEMO_MAX_WAIT to wait longer. "
                    "Rotating explicitly with client.refresh() instead"
                )
                before = self.labels.pair(self.store.tokens)
                result, made = self.exchanges_of(client.refresh)
                self.expect(step, made, ("POST", "/refresh", "200"))
                after = self.labels.pair(self.store.tokens)
                step.check(
                    isinstance(result, nsdk.Tokens) and before != after,
                    f"the pair rotated: {before} -> {after}",
                )
                return
            self.trace.say(
                f"    waiting {wait:.1f}s until {self.labels.pair(tokens).split(' ')[0]} has "
                "expired at the server ..."
            )
            self.trace.say(
                f"    (this client's clock runs {CLOCK_SKEW:.0f}s slow, as on a machine with clock "
                "skew, so it cannot see the expiry coming: the server's 401 drives the refresh)"
            )
            time.sleep(wait)
            refreshed_before = len(self.refreshed)
            me, made = self.exchanges_of(client.me)
            self.expect(
                step,
                made,
                ("GET", "/me", "401"),
                ("POST", "/refresh", "200"),
                ("GET", "/me", "200"),
            )
            step.check(not isinstance(me, nsdk.NsdkError), "me() returned normally to the caller")
            step.check(
                len(self.refreshed) == refreshed_before + 1,
                "on_tokens_refreshed was called once with the rotated pair "
                f"({self.labels.pair(self.store.tokens)})",
            )
            step.check(
                len(made) == 3 and made[0].presented != made[2].presented,
                "the resend presented the new access token, not the expired one",
            )

    def rate_limited(self, client: nsdk.Client) -> None:
        """Step 4: a 429 with Retry-After: wait what it says, then send again."""
        with self.step("Rate limited: 429 with Retry-After: 1, the SDK waits and resends") as step:
            if self.faults is None:
                step.skip("needs the reference server's fault injection (not a real API's)")
                return
            self.faults.add("me", status=429, retry_after="1")
            self.trace.say("    (the reference server is told to answer the next me with 429)")
            me, made = self.exchanges_of(client.me)
            self.expect(step, made, ("GET", "/me", "429"), ("GET", "/me", "200"))
            step.check(not isinstance(me, nsdk.NsdkError), "me() returned normally to the caller")
            if len(made) == 2:
                gap = made[1].at - made[0].at
                step.check(
                    made[0].wait == 1.0 and gap >= 0.95 and made[1].attempt == 2,
                    f"the second attempt went out {gap:.2f}s later (Retry-After: 1)",
                )

    def sign_out(self, client: nsdk.Client) -> None:
        """Step 5: POST /api/auth/logout, then the client's state is cleared."""
        with self.step("Sign out: logout revokes the session and clears client state") as step:
            confirmed, made = self.exchanges_of(client.logout)
            self.expect(step, made, ("POST", "/logout", "204"))
            step.check(confirmed is True, "logout() returned True (the server confirmed)")
            step.check(
                client.state is nsdk.SessionState.SIGNED_OUT and self.store.tokens is None,
                "state is signed_out and the token store is empty",
            )

    def call_after_logout(self, client: nsdk.Client) -> None:
        """Step 6: a protected call after logout raises without sending anything."""
        with self.step("Call after logout: fails closed, nothing is sent") as step:
            error, made = self.exchanges_of(client.me)
            self.trace.say(f"    raised {type(error).__name__}: {error}")
            self.expect(step, made)
            step.check(
                isinstance(error, nsdk.NotAuthenticatedError),
                "me() raised nsdk.NotAuthenticatedError",
            )

    def revoked_tokens(self, last_tokens: nsdk.Tokens | None) -> None:
        """Step 7: a client holding the revoked pair: 401, refresh refused, fail closed."""
        title = "Revoked tokens: a client still holding them is refused and fails closed"
        with self.step(title) as step:
            if last_tokens is None:
                step.check(False, "the tokens from before logout were available")
                return
            store = RecordingStore(self.labels, last_tokens)
            self.trace.say(
                f"    a new client starts with the pair from before logout "
                f"({self.labels.pair(last_tokens)})"
            )
            expired_before = len(self.expired)
            with self.client(store) as client:
                error, made = self.exchanges_of(client.me)
                self.trace.say(f"    raised {type(error).__name__}: {error}")
                self.expect(step, made, ("GET", "/me", "401"), ("POST", "/refresh", "401"))
                step.check(
                    isinstance(error, nsdk.SessionExpiredError),
                    "me() raised nsdk.SessionExpiredError",
                )
                step.check(
                    client.state is nsdk.SessionState.EXPIRED
                    and store.tokens is None
                    and len(self.expired) == expired_before + 1,
                    "state is expired, the store is empty, on_session_expired was called",
                )
                again, made = self.exchanges_of(client.me)
                step.check(
                    isinstance(again, nsdk.NotAuthenticatedError) and not made,
                    "the next call raises NotAuthenticatedError without sending anything",
                )

    # The verdict ----------------------------------------------------------------------------

    def summary(self) -> int:
        """Check the trace for token leaks, print the verdict, return the exit status."""
        text = "\n".join(self.trace.lines)
        leaked = [token for token in self.labels.known() if token in text]
        jwt_like = re.search(r"eyJ[\w-]{8,}\.[\w-]{8,}", text) is not None
        self.trace.say()
        verdict = Step(self.trace)
        self.steps.append(verdict)
        self.trace.say(f"[{len(self.steps)}] Redaction: no token appears in this trace")
        verdict.check(
            not leaked and not jwt_like,
            f"none of the {len(self.labels.known())} tokens issued appears in the output",
        )
        if self.verify is not None:
            over_tls = Step(self.trace)
            self.steps.append(over_tls)
            self.trace.say()
            self.trace.say(f"[{len(self.steps)}] HTTPS: every answer came over verified TLS")
            versions = sorted({str(v) for v in self.tls_versions})
            over_tls.check(
                bool(self.tls_versions) and None not in self.tls_versions,
                f"all {len(self.tls_versions)} responses the clients got came over "
                f"{', '.join(versions) or 'nothing'}, with the server's certificate verified"
                " against the demo server's CA",
            )
        failed = sum(step.failed for step in self.steps)
        skipped = sum(step.skipped is not None and not step.failed for step in self.steps)
        passed = len(self.steps) - failed - skipped
        self.trace.say()
        self.trace.say(
            f"{len(self.steps)} steps: {passed} passed, {skipped} skipped, {failed} failed"
        )
        if failed or not self.steps:
            print("demo FAILED: some step did not behave as documented", flush=True)
            return 1
        print("demo OK: every step behaved as documented", flush=True)
        return 0


class _Abort(Exception):
    """A step failed in a way the following steps cannot recover from."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The demo's options (see the module docstring for its environment variables)."""
    parser = argparse.ArgumentParser(
        prog="examples/demo.py", description="Walk the authentication guide's whole flow."
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="start the reference server with HTTPS (a throwaway CA) and trust only that CA",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo against $NSDK_API_BASE_URL, or against a reference server it starts."""
    args = parse_args(argv)
    max_wait = float(os.environ.get("NSDK_DEMO_MAX_WAIT", DEFAULT_MAX_WAIT))
    base_url = os.environ.get(nsdk.BASE_URL_ENV)
    if base_url:
        email, password = os.environ.get("NSDK_EMAIL"), os.environ.get("NSDK_PASSWORD")
        if not email or not password:
            print(
                f"{nsdk.BASE_URL_ENV} is set: also set NSDK_EMAIL and NSDK_PASSWORD",
                file=sys.stderr,
            )
            return 2
        if args.tls:
            print(
                f"--tls starts the reference server with HTTPS; with {nsdk.BASE_URL_ENV} set, "
                "give an https:// URL instead",
                file=sys.stderr,
            )
            return 2
        print(f"nsdk demo against {base_url} as {email} (no fault injection: step 4 skipped)")
        return Demo(base_url, email, password, None, max_wait).run()

    from nsdk_server.testing import run_server

    with run_server(access_ttl=ACCESS_TTL, faults=True, tls=args.tls) as server:
        print(
            f"nsdk demo against the reference server at {server.base_url} "
            f"(started by the demo: access TTL {ACCESS_TTL}s, fault injection on), as {DEMO_EMAIL}"
        )
        verify = None
        if args.tls:
            print(f"HTTPS: the clients trust only the server's throwaway CA, {server.ca_path}")
            verify = ssl.create_default_context(cafile=str(server.ca_path))
        demo = Demo(server.base_url, DEMO_EMAIL, DEMO_PASSWORD, server.faults, max_wait, verify)
        status = demo.run()
        counters = server.stats()
        shown = {k: v for k, v in counters.items() if isinstance(v, int) and v}
        print(f"server counters: {json.dumps(shown, sort_keys=True)}")
        return status


if __name__ == "__main__":
    sys.exit(main())
