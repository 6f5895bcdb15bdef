"""Session state and the decision core for bearer auth, refresh and fail-closed.

``SessionCore`` holds the explicit state and the tokens and decides; it performs no I/O (the
refresh against the token store is ``_refresh.refresh_steps``).
``auth_steps`` is the whole "send with bearer; on 401 refresh once and resend once" algorithm as a
generator of steps (send this request / refresh now / sign in / sign out), including what a
session operation (``x-nsdk-role``) does to the session. The sync and async httpx ``Auth`` shells
in ``_auth.py`` execute those steps; the algorithm exists once.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Generator, Mapping

import attrs
import httpx
from nsdk_api._operations import Operation, operation_for
from nsdk_api.errors import MalformedResponse, parse_success
from nsdk_api.models import LoginResponse

from ._errors import ConfigurationError, NotAuthenticatedError, NsdkError, SessionExpiredError
from ._tokens import RefreshInFlight, StoredSession, Tokens

logger = logging.getLogger("nsdk")  # DEBUG: why each refresh, sessions resumed or adopted


class SessionState(enum.Enum):
    """Where a client's session is. Changed only by ``SessionCore._move``.

    Examples:
        >>> client.state is nsdk.SessionState.SIGNED_OUT  # doctest: +SKIP
        True
        >>> session = client.login(email=email, password=password)  # doctest: +SKIP
        >>> client.state  # doctest: +SKIP
        <SessionState.ACTIVE: 'active'>
    """

    #: No tokens: never signed in, or signed out. Protected calls raise NotAuthenticatedError.
    SIGNED_OUT = "signed_out"
    #: Signed in: protected calls carry the access token; a 401 triggers one refresh.
    ACTIVE = "active"
    #: A refresh was refused: tokens cleared (fail closed). Sign in again.
    EXPIRED = "expired"
    #: The client was closed. Nothing more is sent.
    CLOSED = "closed"


_ALLOWED: Mapping[SessionState, frozenset[SessionState]] = {
    SessionState.SIGNED_OUT: frozenset(
        {SessionState.SIGNED_OUT, SessionState.ACTIVE, SessionState.CLOSED}
    ),
    SessionState.ACTIVE: frozenset(
        {SessionState.ACTIVE, SessionState.SIGNED_OUT, SessionState.EXPIRED, SessionState.CLOSED}
    ),
    SessionState.EXPIRED: frozenset(
        {SessionState.ACTIVE, SessionState.SIGNED_OUT, SessionState.EXPIRED, SessionState.CLOSED}
    ),
    SessionState.CLOSED: frozenset({SessionState.CLOSED}),
}

#: States in which a client adopts a session a peer stored (a closed client stays closed).
_RELOADABLE = frozenset({SessionState.SIGNED_OUT, SessionState.EXPIRED})

_NOT_AUTHENTICATED = {
    SessionState.SIGNED_OUT: "not signed in: call login() before a protected call",
    SessionState.EXPIRED: "the session expired (refresh was refused): call login() again",
    SessionState.CLOSED: "the client is closed: create a new client",
}


@attrs.frozen
class Session:
    """The signed-in user and tenant, as verified with ``me`` at login.

    Attributes:
        user_id: The user's id.
        tenant_id: The tenant the session is scoped to.
        email: The user's email address.

    Examples:
        >>> session = client.login(email="user@example.com", password=password)  # doctest: +SKIP
        >>> session  # doctest: +SKIP
        Session(user_id='1005', tenant_id='2001', email='user@example.com')
    """

    user_id: str
    tenant_id: str
    email: str


class Step:
    """Base of the step messages the generators yield (here and in ``_refresh``): immutable.

    Plain slotted classes, not attrs classes: building an attrs class costs about 0.7 ms of CPU
    at import (attrs compiles its methods then), which every program that builds a client would
    pay; these private messages are dispatched on by type and need neither equality nor a repr
    of their fields (a refresh step carries a refresh token, which no repr may show).
    """

    __slots__ = ()

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")


class Refresh(Step):
    """Step of ``auth_steps``: make sure the access token ``stale`` is replaced.

    ``proactive``: asked before sending, for a token that has not expired yet; if the store
    cannot be used right now, the shell sends the still-valid token instead of failing.
    """

    __slots__ = ("proactive", "stale")
    stale: str
    proactive: bool

    def __init__(self, stale: str, proactive: bool = False) -> None:
        self._set(stale=stale, proactive=proactive)


class Reload(Step):
    """Step of ``auth_steps``: adopt the store's session if this client has none active."""

    __slots__ = ()


RELOAD = Reload()


class SignIn(Step):
    """Step of ``auth_steps``: a login succeeded: store its pair and hold it."""

    __slots__ = ("tokens",)
    tokens: Tokens

    def __init__(self, tokens: Tokens) -> None:
        self._set(tokens=tokens)


class SignOut(Step):
    """Step of ``auth_steps``: the server confirmed a logout: clear the store and this client."""

    __slots__ = ()


SIGN_OUT = SignOut()


class SessionCore:
    """Session state, tokens and every decision about them. Thread-safe; performs no I/O.

    The store is reached only through the steps of ``refresh_steps``, ``sign_in_steps`` and
    ``sign_out_steps``, executed by the shells: the hot path (``current``) never touches it.
    Callbacks are called outside the state lock.
    """

    def __init__(
        self,
        *,
        stored: StoredSession,
        clock: Callable[[], float],
        refresh_leeway: float,
        refresh_reuse_interval: float,
        refresh_deadline: float,
        on_tokens_refreshed: Callable[[Tokens], None] | None,
        on_session_expired: Callable[[SessionExpiredError], None] | None,
    ) -> None:
        self._clock = clock
        self._leeway = refresh_leeway
        self.reuse_interval = refresh_reuse_interval
        self._refresh_deadline = refresh_deadline
        self._on_refreshed = on_tokens_refreshed
        self._on_expired = on_session_expired
        self._lock = threading.Lock()  # guards _state, _tokens, _generation and _session
        self._tokens = stored.tokens
        self._generation = stored.generation  # the store generation _tokens came from
        self._unsaved: int | None = None  # a rotated pair the store refused: see refresh_steps
        self._offset = 0.0  # this host's clock minus the store's (see observe_store_clock)
        if stored.tokens is not None:
            self._state = SessionState.ACTIVE
            logger.debug("session resumed from the token store (generation %d)", stored.generation)
        else:
            self._state = SessionState.EXPIRED if stored.expired else SessionState.SIGNED_OUT
        self._session: Session | None = None
        self._deadline: tuple[Tokens | None, float | None] = (None, None)

    @property
    def state(self) -> SessionState:
        """The current state."""
        return self._state

    @property
    def session(self) -> Session | None:
        """The verified session, if signed in through this client."""
        return self._session

    @property
    def generation(self) -> int:
        """The store generation of the tokens this client holds."""
        return self._generation

    def _move(self, new: SessionState) -> None:
        # The one place the state changes. Caller holds self._lock.
        if new not in _ALLOWED[self._state]:
            raise NsdkError(
                f"illegal session transition {self._state.value} -> {new.value} (a bug in nsdk)"
            )
        self._state = new

    def _hold(self, stored: StoredSession) -> None:
        # Caller holds self._lock: an active session with the stored pair.
        assert stored.tokens is not None
        self._move(SessionState.ACTIVE)
        self._tokens = stored.tokens
        self._generation = stored.generation

    def _drop(self, state: SessionState, generation: int | None = None) -> None:
        # Caller holds self._lock: no tokens, no session.
        self._move(state)
        self._tokens = None
        self._session = None
        if generation is not None:
            self._generation = generation

    def current(self) -> Tokens:
        """The tokens to use now; NotAuthenticatedError (no request sent) when there are none."""
        with self._lock:
            if self._state is not SessionState.ACTIVE or self._tokens is None:
                raise NotAuthenticatedError(_NOT_AUTHENTICATED[self._state])
            return self._tokens

    def access_token(self) -> str | None:
        """The current access token, or None when there is no active session (never raises)."""
        with self._lock:
            if self._state is not SessionState.ACTIVE or self._tokens is None:
                return None
            return self._tokens.access_token

    def stale(self, access_token: str) -> bool:
        """Whether a 401 for ``access_token`` is explained: it was replaced, or is due to expire.

        A request can carry a token for longer than its lifetime (e.g. while the retry transport
        waits out a 429's Retry-After): a 401 for it says nothing about the current token.
        """
        with self._lock:
            current = self._tokens
        if current is None or current.access_token != access_token:
            return True
        return self.due_for_refresh(current)

    def due_for_refresh(self, tokens: Tokens) -> bool:
        """Whether a JWT access token is within the leeway of its ``exp`` (proactive refresh).

        The leeway is capped at half the token's lifetime, so a short TTL is not refreshed on
        every call. Opaque tokens (no ``exp``) are refreshed reactively only.
        """
        cached = self._deadline  # (tokens, refresh-at): computed once per token pair
        if cached[0] is not tokens:
            cached = (tokens, self._refresh_at(tokens))
            self._deadline = cached
        return cached[1] is not None and self._clock() - self._offset >= cached[1]

    def _refresh_at(self, tokens: Tokens) -> float | None:
        exp = tokens.expires_at
        if exp is None:
            return None
        leeway = self._leeway
        if tokens.issued_at is not None:
            leeway = min(leeway, max(0.0, exp - tokens.issued_at) / 2)
        return exp - leeway

    def usable(self, access_token: str) -> bool:
        """Whether ``access_token`` is the current one and has not expired (store's clock)."""
        with self._lock:
            current = self._tokens
        if current is None or current.access_token != access_token:
            return False
        return current.expires_at is None or self.now() < current.expires_at

    def active(self) -> bool:
        """Whether this client holds an active session (the hot path's only check)."""
        return self._state is SessionState.ACTIVE

    def reloaded(self, stored: StoredSession) -> None:
        """Adopt a peer's pair if this client is signed out or expired (never raises)."""
        with self._lock:
            if stored.tokens is None or self._state not in _RELOADABLE:
                return
            logger.debug(
                "session adopted from the token store (generation %d): another client signed in",
                stored.generation,
            )
            self._hold(stored)
            self._unsaved = None

    def replaced(self, stale: str) -> bool:
        """Whether this client already holds a newer token than ``stale``.

        Checked before the store's critical section: a thread of this client refreshed meanwhile.

        Raises:
            SessionExpiredError: A concurrent caller's refresh was refused while we waited.
            NotAuthenticatedError: The session ended (logout, close) while we waited.
        """
        with self._lock:
            if self._state is SessionState.EXPIRED:
                raise SessionExpiredError(_NOT_AUTHENTICATED[self._state])
            if self._state is not SessionState.ACTIVE or self._tokens is None:
                raise NotAuthenticatedError(_NOT_AUTHENTICATED[self._state])
            return self._tokens.access_token != stale

    def follow(self, stored: StoredSession) -> None:
        """Adopt what the store holds: a peer's pair, or the end of the session a peer recorded.

        Raises:
            SessionExpiredError: A peer's refresh was refused (the store says expired).
            NotAuthenticatedError: A peer signed out (the store holds no tokens).
        """
        with self._lock:
            # A generation below ours: the store lost what it held (restarted empty, deleted).
            lost = stored.generation < self._generation and self._tokens is not None
            if stored.tokens is not None and not lost:
                if stored.generation != self._generation:
                    logger.debug(
                        "session adopted from the token store (generation %d): another client "
                        "sharing it rotated the pair or signed in",
                        stored.generation,
                    )
                self._hold(stored)
                self._unsaved = None
                return
            if self._state is SessionState.CLOSED:
                raise NotAuthenticatedError(_NOT_AUTHENTICATED[self._state])
            self._drop(
                SessionState.EXPIRED if stored.expired or lost else SessionState.SIGNED_OUT,
                stored.generation,
            )
        if lost:
            error = SessionExpiredError(
                f"the session expired: the token store lost it (generation {stored.generation}, "
                "older than this client's: restarted empty, or its record was deleted); "
                "call login() again"
            )
        elif not stored.expired:
            raise NotAuthenticatedError(
                "signed out by another client sharing the token store: call login() again"
            )
        else:
            error = SessionExpiredError(
                "the session expired: another client sharing the token store found its refresh "
                "refused, or an earlier refresh interrupted, and cleared it; call login() again"
            )
        if self._on_expired is not None:
            self._on_expired(error)
        raise error

    def observe_store_clock(self, store_now: float | None) -> None:
        """Measure this host's clock against the store's (None: the store keeps no clock).

        Every client sharing a store then agrees on time however skewed its own clock is:
        refresh records and proactive refresh use ``now()``, the store's time.
        """
        if store_now is not None:
            self._offset = self._clock() - store_now

    def now(self) -> float:
        """The current time on the store's clock (this host's clock when the store has none)."""
        return self._clock() - self._offset

    def in_flight(self) -> RefreshInFlight:
        """The record of a refresh about to be sent now."""
        now = self.now()
        return RefreshInFlight(started_at=now, deadline=now + self._refresh_deadline)

    def may_resend(self, record: RefreshInFlight) -> bool:
        """Whether a refresh whose outcome is unknown may be presented again now.

        Only within the server's reuse interval, counted from when it was first sent (the
        server counts from its rotation, which came later): the server then answers with the
        pair it already issued instead of revoking the family as replay.
        """
        return self.reuse_interval > 0 and self.now() - record.started_at < self.reuse_interval

    def refreshed(self, stored: StoredSession) -> None:
        """Record the pair this client rotated and stored, and tell the application."""
        assert stored.tokens is not None
        logger.debug(
            "refresh done: the new pair is in the token store as generation %d", stored.generation
        )
        with self._lock:
            self._hold(stored)
            self._unsaved = None
        if self._on_refreshed is not None:
            self._on_refreshed(stored.tokens)

    def unsaved(self, expected: int, stored: StoredSession) -> None:
        """Hold a rotated pair the store failed to write over generation ``expected``.

        It is written at the next refresh, if the store is still at that generation.
        """
        assert stored.tokens is not None
        with self._lock:
            self._hold(stored)
            self._unsaved = expected
        if self._on_refreshed is not None:
            self._on_refreshed(stored.tokens)

    def pending_write(self) -> tuple[int, Tokens] | None:
        """A rotated pair still to be stored over generation N (see ``unsaved``), or None."""
        with self._lock:
            if self._unsaved is None or self._tokens is None:
                return None
            return self._unsaved, self._tokens

    def expired(self, cause: str, generation: int) -> SessionExpiredError:
        """Fail closed: clear everything, tell the application, return the error to raise."""
        error = SessionExpiredError(
            f"the session expired: {cause}; local tokens were cleared; call login() again"
        )
        with self._lock:
            self._drop(SessionState.EXPIRED, generation)
        if self._on_expired is not None:
            self._on_expired(error)
        return error

    def signed_in(self, stored: StoredSession) -> None:
        """Record a login's tokens (as stored); the session is verified again (``verified``)."""
        with self._lock:
            self._hold(stored)
            self._unsaved = None
            self._session = None  # an earlier login's user and tenant say nothing of this one

    def verified(self, session: Session) -> None:
        """Record the session verified with ``me``."""
        with self._lock:
            self._session = session

    def signed_out(self, generation: int | None = None) -> None:
        """Clear local state (logout, or a failed scope check)."""
        with self._lock:
            # A closed client stays closed; its local state is cleared all the same.
            closed = self._state is SessionState.CLOSED
            self._drop(SessionState.CLOSED if closed else SessionState.SIGNED_OUT, generation)
            self._unsaved = None

    def closed(self) -> None:
        """The client was closed; tokens stay in the token store for a later client."""
        with self._lock:
            self._drop(SessionState.CLOSED)


#: Extra resends of one request after 401s that a stale token explains (see ``auth_steps``).
MAX_STALE_RESENDS = 3


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _bearer(request: httpx.Request) -> str:
    return str(request.headers.get("Authorization", "")).removeprefix("Bearer ")


def _ours(request: httpx.Request, origin: httpx.URL) -> bool:
    if "nsdk_operation" in request.extensions:
        return True  # a generated call: a relative path on our own base_url, by construction
    return _same_origin(request.url, origin)


def _protected(request: httpx.Request, origin: httpx.URL, op: Operation | None) -> bool:
    # Only requests to our origin for operations that need the token ever carry it.
    if op is not None and not op.authenticated:
        return False
    return _ours(request, origin)


def resign(core: SessionCore, request: httpx.Request, origin: httpx.URL) -> None:
    """Before the retry transport resends: put the current token on a request that carries one.

    A resend after a Retry-After wait would otherwise carry the token it was first sent with,
    which another caller may have rotated, or which may have expired, meanwhile.
    """
    sent = _bearer(request)
    if not sent or not _protected(request, origin, operation_for(request)):
        return
    current = core.access_token()
    if current is not None and current != sent:
        request.headers["Authorization"] = f"Bearer {current}"


#: Why a refresh through ``client.api`` is refused (see ``auth_steps``, step 5).
REFRESH_REFUSED = (
    "a refresh through client.api was refused, and nothing was sent: the client rotates its "
    "tokens itself, inside the token store's refresh critical section, so that no refresh token "
    "is ever presented twice; call client.refresh() (await client.refresh() on an AsyncClient)"
)


def _login_pair(op: Operation, response: httpx.Response) -> Tokens | None:
    # The pair a login answered, parsed as the generated call parses it; None if it does not
    # parse (the generated call then raises its MalformedResponse to the caller).
    try:
        login = parse_success(op.name, response, LoginResponse.from_dict)
    except MalformedResponse:
        return None
    return Tokens(access_token=login.access_token, refresh_token=login.refresh_token)


def auth_steps(
    core: SessionCore, request: httpx.Request, origin: httpx.URL, *, own_refresh: bool = False
) -> Generator[httpx.Request | Refresh | Reload | SignIn | SignOut, httpx.Response | None, None]:
    """The bearer algorithm: the shells send the requests it yields and act on the other steps.

    1. An operation the spec marks unauthenticated (login, refresh) is sent as is.
    2. A request to another origin is sent without the token (the token never leaves its origin).
    3. Without an active session here, the store is read once (a peer may have signed in);
       still none: ``NotAuthenticatedError``, nothing sent.
    4. Otherwise: refresh first if the JWT is about to expire; send with the bearer token;
       on 401, refresh (single-flight) and resend once. A second 401 goes to the caller, unless
       the token it carried is stale (replaced meanwhile, or expired while the request waited
       out a 429): then refresh and resend again, at most ``MAX_STALE_RESENDS`` more times.
       (The retry transport's own resends carry the current token: see ``resign``.)
    5. Session operations to our origin, by their spec role (``x-nsdk-role``), whoever sends
       them (the overlay's methods or a generated call through ``client.api``): a ``login``
       answered with its documented success and a pair that parses signs in (``SignIn``); a
       ``logout`` answered 2xx signs out (``SIGN_OUT``); a ``refresh`` other than the shell's
       own (``own_refresh``, sent inside the store's critical section) is refused with
       ``ConfigurationError`` before anything is sent: presented outside that section, it would
       rotate the pair behind the back of every client sharing the store.
    """
    op = operation_for(request)
    if op is not None and op.role == "refresh" and not own_refresh and _ours(request, origin):
        raise ConfigurationError(REFRESH_REFUSED)
    if _protected(request, origin, op):
        response = yield from _bearer_steps(core, request)
    else:
        response = yield request
    if op is None or op.role == "call" or response is None or not _ours(request, origin):
        return
    if op.role == "login" and response.status_code in op.success_statuses:
        tokens = _login_pair(op, response)
        if tokens is not None:
            yield SignIn(tokens)
    elif op.role == "logout" and response.is_success:
        yield SIGN_OUT


def _bearer_steps(
    core: SessionCore, request: httpx.Request
) -> Generator[httpx.Request | Refresh | Reload, httpx.Response | None, httpx.Response | None]:
    # Steps 3 and 4 of auth_steps; returns the response the caller gets.
    if not core.active():
        yield RELOAD  # not signed in here: a peer sharing the store may be
    tokens = core.current()
    if core.due_for_refresh(tokens):
        logger.debug(
            "refresh needed before %s %s (proactive): the access token expires at exp=%d, "
            "within refresh_leeway",
            request.method,
            request.url.path,
            tokens.expires_at or 0,
        )
        yield Refresh(tokens.access_token, proactive=True)
        tokens = core.current()
    request.headers["Authorization"] = f"Bearer {tokens.access_token}"
    response = yield request
    for resend in range(1 + MAX_STALE_RESENDS):
        if response is None or response.status_code != 401:
            return response
        sent = _bearer(request)  # what the last attempt carried (resends are re-signed)
        if resend and not core.stale(sent):
            return response  # a current, unexpired token refused after a refresh: the caller's
        logger.debug(
            "refresh needed after %s %s answered 401%s; the request is resent once",
            request.method,
            request.url.path,
            " again (its token was replaced or expired meanwhile)" if resend else "",
        )
        yield Refresh(sent)
        tokens = core.current()
        request.headers["Authorization"] = f"Bearer {tokens.access_token}"
        response = yield request
    return response


__all__ = [
    "MAX_STALE_RESENDS",
    "REFRESH_REFUSED",
    "RELOAD",
    "SIGN_OUT",
    "Refresh",
    "Reload",
    "Session",
    "SessionCore",
    "SessionState",
    "SignIn",
    "SignOut",
    "Step",
    "auth_steps",
    "resign",
]
