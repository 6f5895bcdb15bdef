"""The test control API under `/_nsdk` (mounted only with `--faults`; loopback clients only).

- `POST /_nsdk/faults`: queue one fault entry (a JSON object) or several (a JSON list);
- `GET /_nsdk/faults`: list the queued entries with their remaining counts;
- `DELETE /_nsdk/faults`: drop every queued entry;
- `GET /_nsdk/stats`: the counters of `nsdk_server.stats`;
- `POST /_nsdk/stats/reset`: set the counters back to zero.

It is not part of openapi.yaml.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import FaultBook, FaultSpec
from .stats import Stats

__all__ = ["control_routes"]


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _answer(request: Request, status: int, data: Any) -> Response:
    if status >= 400:
        data = {"detail": data, "request_id": request.scope.get("nsdk.request_id", "")}
    return JSONResponse(data, status_code=status)


def control_routes(book: FaultBook, stats: Stats) -> list[Route]:
    """Return the routes of the control API, bound to the server's fault book and stats."""

    async def faults(request: Request) -> Response:
        if not _is_loopback(request):
            return _answer(request, 403, "The control API only answers loopback clients")
        if request.method == "GET":
            return _answer(request, 200, {"faults": book.pending()})
        if request.method == "DELETE":
            return _answer(request, 200, {"cleared": book.clear()})
        try:
            data = json.loads(await request.body())
            entries = data if isinstance(data, list) else [data]
            specs = [FaultSpec.from_json(entry) for entry in entries]
        except (ValueError, TypeError) as exc:
            return _answer(request, 400, f"Invalid fault entry: {exc}")
        for spec in specs:
            book.add(spec)
        return _answer(request, 200, {"queued": len(specs), "faults": book.pending()})

    async def get_stats(request: Request) -> Response:
        if not _is_loopback(request):
            return _answer(request, 403, "The control API only answers loopback clients")
        return _answer(request, 200, stats.snapshot())

    async def reset_stats(request: Request) -> Response:
        if not _is_loopback(request):
            return _answer(request, 403, "The control API only answers loopback clients")
        stats.reset()
        return _answer(request, 200, stats.snapshot())

    return [
        Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/stats", get_stats, methods=["GET"]),
        Route("/stats/reset", reset_stats, methods=["POST"]),
    ]
