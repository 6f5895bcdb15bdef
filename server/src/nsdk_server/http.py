"""Cross-cutting HTTP behaviour: request ids, error bodies, the global rate limit, the 500 path.

`RequestContext` is the outermost ASGI layer but CORS (with `--cors-origin`). For every request
it mints an id (`req_` + 24 hex digits), puts it in `scope["nsdk.request_id"]` and in the
`X-Request-ID` header of whatever answer goes out, names the API operation in `scope["nsdk.op"]`
for the layers inside, counts it (with its `User-Agent`, also logged at DEBUG), applies the global
rate limit, and turns any exception into a logged 500 `{detail, request_id}`.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .ratelimit import RateLimiter
from .stats import Stats

__all__ = ["OPERATION_ROUTES", "RequestContext", "error_body", "new_request_id", "send_error"]

logger = logging.getLogger("nsdk_server")

OPERATION_ROUTES: Mapping[tuple[str, str], str] = {
    ("POST", "/api/auth/login"): "login",
    ("POST", "/api/auth/refresh"): "refresh",
    ("GET", "/api/auth/me"): "me",
    ("POST", "/api/auth/logout"): "logout",
}


def new_request_id() -> str:
    """Return a fresh request id, `req_` followed by 24 hex digits."""
    return "req_" + secrets.token_hex(12)


def error_body(detail: str, request_id: str) -> bytes:
    """Return the JSON error body every error response carries."""
    return json.dumps({"detail": detail, "request_id": request_id}).encode()


async def send_error(
    send: Send,
    status: int,
    detail: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send a complete JSON error response through a raw ASGI `send`."""
    body = error_body(detail, request_id)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def client_host(scope: Scope) -> str:
    """Return the client's address (host only) from an ASGI scope."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestContext:
    """Outermost ASGI layer: request id, operation name, global rate limit, 500 safety net."""

    def __init__(self, app: ASGIApp, stats: Stats, global_limit: RateLimiter | None) -> None:
        """Wrap `app`."""
        self.app = app
        self.stats = stats
        self.global_limit = global_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request (other scope types pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        op = OPERATION_ROUTES.get((scope["method"], scope["path"]))
        scope["nsdk.request_id"] = request_id
        scope["nsdk.op"] = op
        started = False
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        if op is not None:
            agent = next((v for k, v in scope["headers"] if k == b"user-agent"), None)
            user_agent = None if agent is None else agent.decode("latin-1")
            self.stats.request(op, user_agent)
            logger.debug(
                "%s %s [%s] User-Agent: %s", scope["method"], scope["path"], request_id, user_agent
            )
        if self.global_limit is not None and not scope["path"].startswith("/_nsdk"):
            wait = self.global_limit.hit(client_host(scope))
            if wait is not None:
                self.stats.bump("rate_limited")
                await send_error(
                    send_with_id, 429, "Rate limit exceeded", request_id, {"Retry-After": str(wait)}
                )
                return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Never a traceback to the client; the log line carries the id the client can quote.
            logger.exception(
                "unhandled error in %s %s [%s]", scope["method"], scope["path"], request_id
            )
            self.stats.bump("server_errors")
            if not started:
                await send_error(send_with_id, 500, "Internal server error", request_id)
            # If the answer had started, returning unfinished makes uvicorn close the connection.
