"""Overlay fixtures: a scripted fake server behind MockTransport, one driver for both clients.

``FakeServer`` plays the API by the spec (login, one-time refresh rotation, me, logout) and records
every request as ``(operation, token)``: the bearer token for protected calls, the refresh token
sent in the body for refresh, None for login. Tests override answers per operation with
``script`` (consumed in order) or ``on`` (a persistent hook). ``Driver`` runs the same scenario
code against ``nsdk.Client`` and ``nsdk.AsyncClient``: every method is awaitable in both modes.
Clock, sleep and random are injected, so nothing really sleeps.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import nsdk
import pytest
from nsdk_api.api.auth import me as me_op

BASE_URL = "https://api.example.com"
EMAIL = "user@example.com"
PASSWORD = "pw-Hunter2-never-logged"
USER_ID = "1005"
TENANT_ID = "2001"
T0 = 1_700_000_000.0
PATHS = {
    "/api/auth/login": "login",
    "/api/auth/refresh": "refresh",
    "/api/auth/me": "me",
    "/api/auth/logout": "logout",
}

# An answer: a status (spec-shaped error body), (status, headers), a dict (200 JSON), an
# httpx.Response, an httpx exception class (raised), a callable returning one, or None (the spec).
Outcome = Any


def make_jwt(**claims: Any) -> str:
    """An unsigned JWT (header.payload.signature) with ``claims``; the client never verifies it."""

    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def error_response(status: int, request_id: str, **headers: str) -> httpx.Response:
    """A spec-shaped error answer: the Error body and the X-Request-ID header."""
    body = {"detail": f"simulated {status}", "request_id": request_id}
    return httpx.Response(status, json=body, headers={"X-Request-ID": request_id, **headers})


class FakeClock:
    """An injected clock: Unix time that only moves when a test (or a recorded sleep) moves it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Call:
    """One request as the server saw it."""

    op: str
    method: str
    path: str
    authorization: str | None
    token: str | None
    request_id: str


class FakeServer:
    """The API by the spec, thread-safe, with scripted overrides; records every request."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.scripts: dict[str, deque[Outcome]] = defaultdict(deque)
        self.hooks: dict[str, Callable[[httpx.Request], Any]] = {}
        self.generation = 0
        self.access: str | None = None
        self.refresh_token: str | None = None
        self.labels: dict[str, str] = {}
        self.jwt_ttl: float | None = None  # set: access tokens are JWTs with iat/exp
        self.token_prefix = ""  # makes issued tokens easy to find in secret scans
        self.issued: list[str] = []
        self.me_body = {"userId": USER_ID, "tenantId": TENANT_ID, "email": EMAIL}

    # --- test controls -------------------------------------------------------------------
    def script(self, op: str, *outcomes: Outcome) -> None:
        """Answer the next requests for ``op`` with ``outcomes``, in order, then by the spec."""
        self.scripts[op].extend(outcomes)

    def on(self, op: str, hook: Callable[[httpx.Request], Any]) -> None:
        """Ask ``hook`` (sync or async) for every ``op`` answer; None falls through to the spec."""
        self.hooks[op] = hook

    def expire_access(self) -> None:
        """Server-side expiry of the current access token (the refresh token stays valid)."""
        self.access = None

    @property
    def seq(self) -> list[tuple[str, str | None]]:
        """The request sequence as ``(operation, token label)``."""
        return [(c.op, c.token) for c in self.calls]

    def label(self, token: str) -> str:
        """The short name (``access-2``) of a token the server issued."""
        return self.labels.get(token, token)

    # --- the HTTP side -------------------------------------------------------------------
    def handler(self, request: httpx.Request) -> httpx.Response:
        """The sync MockTransport handler (async hooks must not really suspend)."""
        out = self._pick(request)
        if callable(out) and not _is_exc_class(out):
            out = out(request)
            if inspect.isawaitable(out):
                out = _drive(out)
        return self._resolve(request, out)

    async def ahandler(self, request: httpx.Request) -> httpx.Response:
        """The async MockTransport handler."""
        out = self._pick(request)
        if callable(out) and not _is_exc_class(out):
            out = out(request)
            if inspect.isawaitable(out):
                out = await out
        return self._resolve(request, out)

    def _pick(self, request: httpx.Request) -> Outcome:
        same_origin = str(request.url).startswith(BASE_URL + "/")
        op = PATHS.get(request.url.path, request.url.path) if same_origin else str(request.url)
        auth = request.headers.get("Authorization")
        if op == "refresh":
            token: str | None = json.loads(request.content)["refreshToken"]
            assert auth is None, "refresh must not carry the bearer token"
        elif op == "login":
            token = None
            assert auth is None, "login must not carry the bearer token"
        else:
            token = auth.removeprefix("Bearer ") if auth else None
        with self.lock:
            rid = f"req-{len(self.calls) + 1}"
            request.extensions = {**request.extensions, "test_rid": rid}
            self.calls.append(
                Call(op, request.method, request.url.path, auth, token and self.label(token), rid)
            )
            if self.scripts[op]:
                return self.scripts[op].popleft()
        return self.hooks.get(op)

    def _resolve(self, request: httpx.Request, out: Outcome) -> httpx.Response:
        rid = request.extensions["test_rid"]
        if out is None:
            return self._by_spec(request, rid)
        if _is_exc_class(out):
            raise out(f"simulated {out.__name__}", request=request)
        if isinstance(out, int):
            return error_response(out, rid)
        if isinstance(out, tuple):
            return error_response(out[0], rid, **out[1])
        if isinstance(out, dict):
            return httpx.Response(200, json=out, headers={"X-Request-ID": rid})
        assert isinstance(out, httpx.Response), out
        out.headers.setdefault("X-Request-ID", rid)
        return out

    def _issue(self) -> tuple[str, str]:
        self.generation += 1
        g, prefix = self.generation, self.token_prefix
        access = f"{prefix}access-{g}"
        if self.jwt_ttl is not None:
            now = self.clock()
            access = make_jwt(sub=USER_ID, jti=access, iat=now, exp=now + self.jwt_ttl)
        self.access, self.refresh_token = access, f"{prefix}refresh-{g}"
        self.labels |= {access: f"access-{g}", self.refresh_token: f"refresh-{g}"}
        self.issued += [access, self.refresh_token]
        return access, self.refresh_token

    def _by_spec(self, request: httpx.Request, rid: str) -> httpx.Response:
        ok = {"X-Request-ID": rid}
        op = PATHS.get(request.url.path)
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            if op == "login":
                access, refresh = self._issue()
                body = {"accessToken": access, "refreshToken": refresh}
                body |= {"userId": USER_ID, "tenantId": TENANT_ID}
                return httpx.Response(200, json=body, headers=ok)
            if op == "refresh":
                if json.loads(request.content)["refreshToken"] != self.refresh_token:
                    return error_response(401, rid)
                access, refresh = self._issue()
                return httpx.Response(
                    200, json={"accessToken": access, "refreshToken": refresh}, headers=ok
                )
            if op in ("me", "logout") and (self.access is None or bearer != self.access):
                return error_response(401, rid)
            if op == "me":
                return httpx.Response(200, json=self.me_body, headers=ok)
            if op == "logout":
                self.access = self.refresh_token = None
                return httpx.Response(204, headers=ok)
        return httpx.Response(404, headers=ok)


def _is_exc_class(out: object) -> bool:
    return isinstance(out, type) and issubclass(out, BaseException)


def _drive(awaitable: Awaitable[Any]) -> Any:
    # Runs an async hook to completion inside the sync handler; it may await only sync-driver
    # calls, which never suspend.
    coro = awaitable.__await__()
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("an async hook suspended inside the sync handler")


class Driver:
    """One scenario API over Client or AsyncClient: every method is awaitable in both modes."""

    def __init__(self, client: nsdk.Client | nsdk.AsyncClient, server: FakeServer) -> None:
        self.client = client
        self.server = server
        self.is_async = isinstance(client, nsdk.AsyncClient)
        self.password = PASSWORD

    async def _run(self, value: Any) -> Any:
        return await value if self.is_async else value

    async def login(self, **kwargs: Any) -> nsdk.Session:
        """``client.login`` with the test user's credentials unless overridden."""
        kwargs = {"email": EMAIL, "password": PASSWORD, **kwargs}
        return await self._run(self.client.login(**kwargs))

    async def me(self) -> Any:
        """``client.me()``."""
        return await self._run(self.client.me())

    async def refresh(self) -> nsdk.Tokens:
        """``client.refresh()``."""
        return await self._run(self.client.refresh())

    async def logout(self) -> bool:
        """``client.logout()``."""
        return await self._run(self.client.logout())

    async def api_me(self) -> Any:
        """The generated call ``me.sync_detailed`` / ``me.asyncio_detailed`` via ``client.api``."""
        if self.is_async:
            return await me_op.asyncio_detailed(client=self.client.api)
        return me_op.sync_detailed(client=self.client.api)

    async def raw(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request built by hand on the generated layer's httpx client (sync or async)."""
        if self.is_async:
            return await self.client.api.get_async_httpx_client().request(method, url, **kwargs)
        return self.client.api.get_httpx_client().request(method, url, **kwargs)

    async def raw_get(self, url: str) -> httpx.Response:
        """``raw("GET", url)``."""
        return await self.raw("GET", url)

    @property
    def state(self) -> nsdk.SessionState:
        """The client's session state."""
        return self.client.state


@pytest.fixture
def jwt() -> Callable[..., str]:
    """Build an unsigned JWT from claims (``make_jwt``)."""
    return make_jwt


@pytest.fixture
def clock() -> FakeClock:
    """The injected clock, starting at T0."""
    return FakeClock()


class ClockedStore(nsdk.MemoryTokenStore):
    """A memory store with a clock of its own, ``behind`` the client's (as Redis's TIME).

    It records every write it accepts, and ``restart_empty()`` loses all (a store restarted).
    """

    def __init__(self, client_clock: Callable[[], float], behind: float = 50.0) -> None:
        super().__init__()
        self.client_clock = client_clock
        self.behind = behind
        self.writes: list[nsdk.StoredSession] = []

    def now(self) -> float:
        return self.client_clock() - self.behind

    def compare_and_set(
        self, expected: int, new: nsdk.StoredSession, lease: object | None = None
    ) -> bool:
        written = super().compare_and_set(expected, new, lease)
        if written:
            self.writes.append(new)
        return written

    def restart_empty(self) -> None:
        self._record.value = nsdk.StoredSession()


@pytest.fixture
def clocked_store(clock: FakeClock) -> Callable[..., ClockedStore]:
    """Build a ``ClockedStore`` on the injected clock (``behind=`` seconds, default 50)."""
    return lambda behind=50.0: ClockedStore(clock, behind)


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait the clients asked for, in order."""
    return []


@pytest.fixture
def server(clock: FakeClock) -> FakeServer:
    """A fresh fake API server."""
    return FakeServer(clock)


@pytest.fixture
def client_factory(
    server: FakeServer, clock: FakeClock, sleeps: list[float]
) -> Iterator[Callable[..., Driver]]:
    """Build a Driver of ``kind`` ('sync' or 'async') wired to the fake server and injections."""
    made: list[nsdk.Client] = []

    def record(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    async def arecord(seconds: float) -> None:
        record(seconds)

    def factory(kind: str, **kwargs: Any) -> Driver:
        kwargs.setdefault("base_url", BASE_URL)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("random", lambda: 0.25)
        if kind == "sync":
            kwargs.setdefault("transport", httpx.MockTransport(server.handler))
            kwargs.setdefault("sleep", record)
            client = nsdk.Client(**kwargs)
            made.append(client)
            return Driver(client, server)
        kwargs.setdefault("transport", httpx.MockTransport(server.ahandler))
        kwargs.setdefault("sleep", arecord)
        return Driver(nsdk.AsyncClient(**kwargs), server)

    yield factory
    for client in made:
        client.close()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which client a scenario runs against."""
    return str(request.param)


@pytest.fixture
def make(kind: str, client_factory: Callable[..., Driver]) -> Callable[..., Driver]:
    """Build a Driver for the current ``kind`` with extra client arguments."""
    return lambda **kwargs: client_factory(kind, **kwargs)


@pytest.fixture
async def signed_in(make: Callable[..., Driver], server: FakeServer) -> Driver:
    """A signed-in Driver (tokens access-1/refresh-1); the server's log starts empty."""
    drv = make()
    await drv.login()
    server.calls.clear()
    return drv


@pytest.fixture
def new_york() -> Iterator[None]:
    """The process's local zone set to America/New_York (UTC-5 in November), then restored."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        assert time.localtime(0).tm_hour == 19  # the zone really applies (1969-12-31 19:00)
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
