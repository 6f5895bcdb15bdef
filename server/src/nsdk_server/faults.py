"""Scripted fault injection: per-operation queues of faults and the ASGI layer that applies them.

A fault entry (JSON, see README) takes effect on the next request of its operation:

- `delay`: sleep that many seconds first, then answer normally or with the rest of the fault;
- `status` (+ `retry_after`, sent verbatim as `Retry-After`) and/or `body`: answer with that instead
  of performing the operation (with `perform: true`, perform it first and discard its answer);
- `body`: `malformed`, `truncated`, `empty`, `html`, `wrong_shape`, `huge` (status defaults to 200
  for a body mode, and the body defaults to the standard error body for status >= 400);
- `drop`: `before` resets the connection without performing the operation; `after` performs it
  (e.g. really rotates the refresh token) and then resets the connection without answering;
- `exception`: raise inside the request, to exercise the server's 500 path;
- `times`: how many consecutive requests the entry applies to (default 1).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .connections import ConnectionRegistry
from .stats import OPERATIONS, Stats

__all__ = ["BODY_MODES", "FaultBook", "FaultInjectedError", "FaultLayer", "FaultSpec"]

BODY_MODES = ("malformed", "truncated", "empty", "html", "wrong_shape", "huge")
_DROPS = ("before", "after")
_FIELDS = {
    "op",
    "status",
    "retry_after",
    "body",
    "delay",
    "drop",
    "perform",
    "exception",
    "times",
    "size",
}
_HUGE_DEFAULT = 5 * 1024 * 1024


class FaultInjectedError(RuntimeError):
    """Raised on purpose by an `exception` fault."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One validated fault entry."""

    op: str
    status: int | None = None
    retry_after: str | None = None
    body: str | None = None
    delay: float = 0.0
    drop: str | None = None
    perform: bool = False
    exception: bool = False
    times: int = 1
    size: int = _HUGE_DEFAULT

    @classmethod
    def from_json(cls, data: Any) -> FaultSpec:
        """Validate one JSON entry.

        Raises:
            ValueError: with a message naming the problem.
        """
        if not isinstance(data, dict):
            raise ValueError("a fault entry must be a JSON object")
        unknown = set(data) - _FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        spec = cls(**data)
        spec._check()
        return spec

    def _check(self) -> None:
        if self.op not in OPERATIONS:
            raise ValueError(f"op must be one of {list(OPERATIONS)}")
        if self.status is not None and (
            type(self.status) is not int or not 200 <= self.status <= 599
        ):
            raise ValueError("status must be an integer from 200 to 599")
        if self.status in (204, 304) and self.body not in (None, "empty"):
            raise ValueError("a 204 or 304 answer cannot carry a body")
        if self.retry_after is not None and not isinstance(self.retry_after, str):
            raise ValueError("retry_after must be a string (sent verbatim)")
        if self.body is not None and self.body not in BODY_MODES:
            raise ValueError(f"body must be one of {list(BODY_MODES)}")
        if not isinstance(self.delay, int | float) or not 0 <= self.delay <= 60:
            raise ValueError("delay must be a number of seconds from 0 to 60")
        if self.drop is not None and self.drop not in _DROPS:
            raise ValueError("drop must be 'before' or 'after'")
        if self.drop and (self.status is not None or self.body or self.exception):
            raise ValueError("drop cannot be combined with status, body or exception")
        if type(self.perform) is not bool or type(self.exception) is not bool:
            raise ValueError("perform and exception must be booleans")
        if self.perform and self.status is None and self.body is None:
            raise ValueError("perform needs a status or body to answer with")
        if type(self.times) is not int or self.times < 1:
            raise ValueError("times must be a positive integer")
        if type(self.size) is not int or not 0 <= self.size <= 64 * 1024 * 1024:
            raise ValueError("size must be an integer from 0 to 64 MiB")

    def to_json(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return asdict(self)


class FaultBook:
    """Per-operation FIFO queues of pending faults (thread-safe)."""

    def __init__(self) -> None:
        """Start with no faults."""
        self._lock = threading.Lock()
        self._queues: dict[str, deque[list[Any]]] = {op: deque() for op in OPERATIONS}

    def add(self, spec: FaultSpec) -> None:
        """Queue a fault after the already queued ones of its operation."""
        with self._lock:
            self._queues[spec.op].append([spec, spec.times])

    def pop(self, op: str) -> FaultSpec | None:
        """Take the fault for the next request of `op`, if any (honouring `times`)."""
        with self._lock:
            queue = self._queues.get(op)
            if not queue:
                return None
            entry = queue[0]
            entry[1] -= 1
            if entry[1] <= 0:
                queue.popleft()
            spec: FaultSpec = entry[0]
            return spec

    def pending(self) -> list[dict[str, Any]]:
        """List queued faults with their remaining count."""
        with self._lock:
            return [
                {**spec.to_json(), "remaining": left}
                for queue in self._queues.values()
                for spec, left in queue
            ]

    def clear(self) -> int:
        """Drop every queued fault; return how many entries there were."""
        with self._lock:
            count = sum(len(queue) for queue in self._queues.values())
            for queue in self._queues.values():
                queue.clear()
            return count


def _render(spec: FaultSpec, request_id: str) -> tuple[int, str, bytes]:
    """Return status, content type and body of a scripted answer."""
    status = spec.status if spec.status is not None else 200
    error = {"detail": f"Injected fault ({status})", "request_id": request_id}
    json_type = "application/json"
    mode = spec.body
    if mode is None or mode == "truncated":
        body = json.dumps(error).encode() if status >= 400 or mode else b""
        return status, json_type, body
    if mode == "malformed":
        return status, json_type, b'{"detail": "Injected malformed JSON", "request_id": '
    if mode == "empty":
        return status, json_type, b""
    if mode == "html":
        page = f"<!DOCTYPE html><html><head><title>{status}</title></head>"
        page += f"<body><h1>{status} Injected HTML error page</h1></body></html>"
        return status, "text/html; charset=utf-8", page.encode()
    if mode == "wrong_shape":
        return status, json_type, b'{"foo": 1}'
    padded = {**error, "padding": "x" * spec.size}  # huge
    return status, json_type, json.dumps(padded).encode()


class FaultLayer:
    """ASGI middleware applying queued faults to API operations (`scope["nsdk.op"]`)."""

    def __init__(
        self, app: ASGIApp, book: FaultBook, registry: ConnectionRegistry, stats: Stats
    ) -> None:
        """Wrap `app`."""
        self.app = app
        self.book = book
        self.registry = registry
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Apply the next fault of the request's operation, if one is queued."""
        op = scope.get("nsdk.op")
        spec = self.book.pop(op) if scope["type"] == "http" and op else None
        if spec is None:
            await self.app(scope, receive, send)
            return
        self.stats.bump("faults_applied")
        if spec.delay:
            await asyncio.sleep(spec.delay)
        if spec.exception:
            raise FaultInjectedError(f"injected exception for {op}")
        if spec.drop == "before":
            await self.registry.abort(scope.get("client"))
            return
        performed = spec.drop == "after" or spec.perform
        if performed:
            await self.app(scope, receive, _discard)
        if spec.drop == "after":
            await self.registry.abort(scope.get("client"))
            return
        if spec.status is None and spec.body is None:
            await self.app(scope, receive, send)  # delay only
            return
        await self._answer(spec, scope, send, unread=None if performed else receive)

    async def _answer(
        self, spec: FaultSpec, scope: Scope, send: Send, unread: Receive | None
    ) -> None:
        """Send the scripted answer; `unread` receives the request body nobody has read yet."""
        status, content_type, body = _render(spec, str(scope.get("nsdk.request_id", "")))
        headers = [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")]
        if spec.retry_after is not None:
            headers.append((b"retry-after", spec.retry_after.encode("latin-1")))
        if spec.body == "truncated":
            declared = len(body) + 64
            headers.append((b"content-length", str(declared).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            if unread is not None:
                await _drain(unread)
            await self.registry.close(scope.get("client"))
            return
        if status in (204, 304):  # no body and no body headers for these (RFC 9110)
            headers = [h for h in headers if h[0] != b"content-type"]
        else:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive) -> None:
    """Read the request body to its end, unless the client has gone.

    Closing a socket whose peer's bytes are still unread makes the kernel answer with a reset
    instead of an orderly close, and the client would see "connection reset" where a cut-short
    body was scripted.
    """
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _discard(message: Message) -> None:
    """An ASGI `send` that throws the performed operation's answer away."""
