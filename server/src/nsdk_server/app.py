"""The Starlette application: the four operations of openapi.yaml and how the layers stack.

Layers, outermost first: `CORSMiddleware` (only with `--cors-origin`), `RequestContext` (request
id, global rate limit, 500 safety net), `FaultLayer` (only with faults enabled), Starlette routing,
the endpoints below.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NoReturn

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from .config import ServerConfig
from .connections import ConnectionRegistry
from .control import control_routes
from .faults import FaultBook, FaultLayer
from .http import RequestContext, client_host, error_body
from .ratelimit import RateLimiter
from .stats import Stats
from .store import RotateOutcome, Store, hash_token
from .tokens import AccessClaims, TokenService
from .users import UserDirectory

__all__ = ["ServerApp", "create_app"]

logger = logging.getLogger("nsdk_server")

_LOGIN_FIELDS = frozenset({"email", "password"})
_REFRESH_FIELDS = frozenset({"refreshToken"})
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_NO_TOKEN = {"WWW-Authenticate": "Bearer"}


@dataclass(slots=True)
class ServerApp:
    """The ASGI app plus the parts the runner and tests need to reach."""

    asgi: ASGIApp
    config: ServerConfig
    registry: ConnectionRegistry
    stats: Stats
    faults: FaultBook
    store: Store


def _error(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = error_body(detail, str(request.scope.get("nsdk.request_id", "")))
    return Response(
        body,
        status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        media_type="application/json",
    )


class _BadPayload(Exception):
    """The request payload does not have the documented shape (answered with 400)."""


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


async def _read_object(request: Request, fields: frozenset[str], limit: int) -> dict[str, str]:
    """Read a JSON body whose keys are exactly `fields`, each a non-empty string.

    Raises:
        _BadPayload: on the wrong content type, an oversized, non-UTF-8 or invalid JSON body, or
            the wrong shape.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise _BadPayload("Content-Type must be application/json")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BadPayload("Request body too large")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks).decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _BadPayload("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _BadPayload("Request body must be a JSON object")
    if set(data) != fields:
        raise _BadPayload(f"Request body must have exactly the fields {sorted(fields)}")
    if not all(isinstance(value, str) and value for value in data.values()):
        raise _BadPayload(f"Fields {sorted(fields)} must be non-empty strings")
    return data


def _bearer(request: Request) -> str | None:
    """Return the bearer token of the Authorization header, '' if malformed, None if absent."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def create_app(config: ServerConfig, *, clock: Callable[[], float] = time.time) -> ServerApp:
    """Build the server for a configuration (hashes the seeded passwords: takes a moment).

    Args:
        config: the configuration.
        clock: the tokens' wall clock, seconds since the epoch (injected by in-process tests).
    """
    store = Store(config.db_path)
    users = UserDirectory(config.users, scrypt_n=config.scrypt_n)
    tokens = TokenService(
        store,
        config.secret,
        access_ttl=config.access_ttl,
        refresh_ttl=config.refresh_ttl,
        refresh_reuse_interval=config.refresh_reuse_interval,
        clock=clock,
    )
    stats = Stats()
    book = FaultBook()
    registry = ConnectionRegistry()
    account_limit = RateLimiter(config.login_account_rate) if config.login_account_rate else None
    address_limit = RateLimiter(config.login_address_rate) if config.login_address_rate else None
    global_limit = RateLimiter(config.global_rate) if config.global_rate else None

    def limited(request: Request, wait: int) -> Response:
        stats.bump("rate_limited")
        return _error(request, 429, "Rate limit exceeded", {"Retry-After": str(wait)})

    def tenant_of(user_id: str) -> str | None:
        user = users.by_id(user_id)
        return user.tenant_id if user else None

    async def login(request: Request) -> Response:
        if address_limit and (wait := address_limit.hit(client_host(request.scope))):
            return limited(request, wait)
        try:
            data = await _read_object(request, _LOGIN_FIELDS, config.max_body_bytes)
        except _BadPayload as exc:
            return _error(request, 400, f"Invalid request payload: {exc}")
        if account_limit and (wait := account_limit.hit(data["email"].lower())):
            return limited(request, wait)
        user = await run_in_threadpool(users.authenticate, data["email"], data["password"])
        if user is None:
            stats.bump("login_failed")
            return _error(request, 401, "Unauthorized")
        pair = tokens.login(user.user_id, user.tenant_id)
        stats.bump("login_ok")
        return JSONResponse(
            {
                "accessToken": pair.access_token,
                "refreshToken": pair.refresh_token,
                "userId": user.user_id,
                "tenantId": user.tenant_id,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def refresh(request: Request) -> Response:
        try:
            data = await _read_object(request, _REFRESH_FIELDS, config.max_body_bytes)
        except _BadPayload as exc:
            return _error(request, 400, f"Invalid request payload: {exc}")
        # Rotation and counting run with no await in between: on the one event loop, the
        # presentation counts follow the order in which the store decided.
        result, pair = tokens.rotate(data["refreshToken"], tenant_of)
        reused = pair is not None and result.outcome is RotateOutcome.REUSED
        stats.refresh_presented(
            hash_token(data["refreshToken"]),
            reused=reused,
            replay=result.outcome is RotateOutcome.REPLAY,
        )
        if result.outcome is RotateOutcome.REPLAY:
            stats.bump("replays")
            stats.bump("families_revoked")
            logger.warning(
                "refresh token replay: family %s revoked [%s]",
                result.family_id,
                request.scope.get("nsdk.request_id"),
            )
        if pair is None:
            stats.bump("refresh_failed")
            return _error(request, 401, "Unauthorized")
        if reused:
            logger.info(
                "refresh token presented again within the reuse interval: family %s [%s]",
                result.family_id,
                request.scope.get("nsdk.request_id"),
            )
        else:
            stats.bump("refresh_ok")
        return JSONResponse(
            {"accessToken": pair.access_token, "refreshToken": pair.refresh_token},
            headers={"Cache-Control": "no-store"},
        )

    def authenticate(request: Request) -> AccessClaims | Response:
        token = _bearer(request)
        if token is None:
            return _error(request, 401, "Unauthorized", _NO_TOKEN)
        claims = tokens.verify(token) if token else None
        return claims or _error(request, 401, "Unauthorized", _INVALID_TOKEN)

    async def me(request: Request) -> Response:
        claims = authenticate(request)
        if isinstance(claims, Response):
            return claims
        user = users.by_id(claims.user_id)
        if user is None:
            return _error(request, 401, "Unauthorized", _INVALID_TOKEN)
        return JSONResponse(
            {"userId": user.user_id, "tenantId": claims.tenant_id, "email": user.email}
        )

    async def logout(request: Request) -> Response:
        claims = authenticate(request)
        if isinstance(claims, Response):
            return claims
        tokens.logout(claims)
        stats.bump("logouts")
        return Response(status_code=204)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(request, exc.status_code, exc.detail, dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette calls this, answers, then re-raises so RequestContext logs the exception.
        return _error(request, 500, "Internal server error")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    routes: list[Route | Mount] = [
        Route("/api/auth/login", login, methods=["POST"]),
        Route("/api/auth/refresh", refresh, methods=["POST"]),
        Route("/api/auth/me", me, methods=["GET"]),
        Route("/api/auth/logout", logout, methods=["POST"]),
    ]
    if config.faults:
        routes.append(Mount("/_nsdk", routes=control_routes(book, stats)))
    router = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    inner: ASGIApp = FaultLayer(router, book, registry, stats) if config.faults else router
    asgi: ASGIApp = RequestContext(inner, stats, global_limit)
    if config.cors_origins:
        # Outermost, so preflights are answered before rate limits and faults, and every answer
        # (errors too) carries the CORS headers a browser needs to show it to the page.
        asgi = CORSMiddleware(
            asgi,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After", "WWW-Authenticate"],
        )
    return ServerApp(asgi, config, registry, stats, book, store)
