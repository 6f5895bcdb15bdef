"""What ``Client`` and ``AsyncClient`` share beyond configuration.

The read-only views (``api``, ``state``, ``session``, ``repr``) and the boundary that translates
stray httpx errors.
"""

from __future__ import annotations

import logging
from types import TracebackType

import httpx
from nsdk_api import Client as ApiClient

from ._config import ClientConfig
from ._errors import NsdkError, from_transport
from ._session import Session, SessionState

logger = logging.getLogger("nsdk")


class Boundary:
    """Translates any httpx error that got past the transport into nsdk's tree."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, httpx.HTTPError) and not isinstance(exc, NsdkError):
            raise from_transport(exc, self._what) from exc


class ClientBase:
    """The read-only views of a client: its generated-layer client, state and session."""

    _config: ClientConfig
    _api: ApiClient

    @property
    def api(self) -> ApiClient:
        """The generated-layer client, with this client's auth, refresh and retry behaviour.

        Examples:
            >>> from nsdk_api.api.auth import me  # doctest: +SKIP
            >>> me.sync_detailed(client=client.api).parsed.tenant_id  # doctest: +SKIP
            '2001'
            >>> (await me.asyncio_detailed(client=async_client.api)).parsed  # doctest: +SKIP
        """
        return self._api

    @property
    def state(self) -> SessionState:
        """The session state (``SessionState``)."""
        return self._config.core.state

    @property
    def session(self) -> Session | None:
        """The verified session (user and tenant), or None when signed out."""
        return self._config.core.session

    def __repr__(self) -> str:
        base_url = str(self._config.base_url)
        return f"{type(self).__name__}(base_url={base_url!r}, state={self.state.value!r})"


__all__ = ["Boundary", "ClientBase", "logger"]
