"""Reach the TCP connection behind an ASGI request, to drop it on purpose.

ASGI gives an app no way to close a connection without answering: an app that returns without a
response gets a 500 from uvicorn. Fault injection needs real drops, so the server runs uvicorn's h11
protocol subclassed to register each connection's transport under the peer address that uvicorn
also puts in `scope["client"]`. The fault layer looks the transport up and aborts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["Connection", "ConnectionRegistry", "make_protocol_class"]


@dataclass(slots=True)
class Connection:
    """One live client connection."""

    transport: asyncio.Transport
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class ConnectionRegistry:
    """Maps peer `(host, port)` to its live connection; used from the server's event loop only."""

    def __init__(self) -> None:
        """Start empty."""
        self._by_peer: dict[tuple[str, int], Connection] = {}

    def add(self, peer: tuple[str, int], transport: asyncio.Transport) -> None:
        """Register a new connection."""
        self._by_peer[peer] = Connection(transport)

    def remove(self, peer: tuple[str, int]) -> None:
        """Forget a closed connection and wake whoever waits for its end."""
        conn = self._by_peer.pop(peer, None)
        if conn is not None:
            conn.lost.set()

    def get(self, client: Any) -> Connection | None:
        """Return the connection for an ASGI `scope["client"]` value, if still open."""
        if not client:
            return None
        return self._by_peer.get((str(client[0]), int(client[1])))

    async def abort(self, client: Any) -> bool:
        """Reset the client's connection without sending anything more; True if it was found."""
        conn = self.get(client)
        if conn is None:
            return False
        conn.transport.abort()
        await _wait(conn.lost)
        return True

    async def close(self, client: Any) -> bool:
        """Flush what was written, then close the client's connection; True if it was found."""
        conn = self.get(client)
        if conn is None:
            return False
        conn.transport.close()
        await _wait(conn.lost)
        return True


async def _wait(event: asyncio.Event) -> None:
    # uvicorn only stops expecting a response once connection_lost has run; wait for it (briefly).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=2.0)


def make_protocol_class(registry: ConnectionRegistry) -> type[H11Protocol]:
    """Return an h11 protocol class that records its connections in `registry`."""

    class RegisteringH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answer without delay
            if self.client is not None:
                registry.add(self.client, transport)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self.client is not None:
                registry.remove(self.client)

    return RegisteringH11Protocol
