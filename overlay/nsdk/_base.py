"""What ``Client`` and ``AsyncClient`` share beyond configuration.

The read-only views (``api``, ``state``, ``session``, ``tokens``, ``base_url``, ``repr``),
``with_options`` (a view of the client with other per-request options), and the boundary that
translates stray httpx errors.
"""

from __future__ import annotations

import copy
import logging
import math
from types import TracebackType
from typing import Self

import httpx
from nsdk_api import Client as ApiClient

from ._config import ClientConfig
from ._errors import ConfigurationError, NotAuthenticatedError, NsdkError, from_transport
from ._retry import RetryPolicy
from ._session import Session, SessionState
from ._tokens import Tokens

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


def _got(value: object) -> str:
    # A wrong argument in a message: short plain values as they are, anything else by type.
    if isinstance(value, int | float | str) and len(repr(value)) <= 40:
        return repr(value)
    return f"a {type(value).__name__}"


def _checked_options(
    timeout: object, retry: object
) -> tuple[httpx.Timeout | float | None, RetryPolicy | None]:
    # Checked at run time for callers without a type checker (None: keep the client's).
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(
            f"retry must be an nsdk.RetryPolicy, or None (keep the client's), got {_got(retry)}"
        )
    if timeout is None or isinstance(timeout, httpx.Timeout):
        return timeout, retry
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        seconds = float(timeout)
        if math.isfinite(seconds) and seconds > 0:
            return seconds, retry
    raise ConfigurationError(
        "timeout must be a number of seconds > 0, an httpx.Timeout, or None (keep the "
        f"client's), got {_got(timeout)}"
    )


class ClientBase:
    """The read-only views of a client, and ``with_options``; shared by both flavours."""

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
        """The verified session (user and tenant), or None when signed out.

        Set by ``login`` (verified with ``me``). A session this client did not sign in itself
        (resumed from a token store when it was built, or a peer's login it adopted) has tokens
        but no ``Session`` here until this client signs in: ``state`` is then ``ACTIVE``,
        ``tokens`` set and ``session`` None.
        """
        return self._config.core.session

    @property
    def tokens(self) -> Tokens | None:
        """The token pair this client holds now, or None without an active session.

        Available from the moment ``login`` stored the pair (so the initial pair reaches the
        application: ``on_tokens_refreshed`` is called for rotations only), and for a session
        resumed from a token store. It changes with every rotation: at once after a refresh by
        this client; for a pair another client sharing the store rotated, once this client
        adopts it (when it next needs a refresh, proactive or after a 401, or at
        ``reload_session()``). Reading it performs no I/O: until then it is the pair this client
        last saw, and the store holds the newer one. None when signed out, expired or closed.

        ``Tokens`` never shows a token in its ``repr``; the attributes are the secrets
        themselves: never log them.

        Examples:
            >>> session = client.login(email=email, password=password)  # doctest: +SKIP
            >>> client.tokens  # doctest: +SKIP
            Tokens(access_token=***, refresh_token=***, expires_at=1714564860.0)
            >>> client.logout()  # doctest: +SKIP
            True
            >>> client.tokens is None  # doctest: +SKIP
            True
        """
        try:
            return self._config.core.current()
        except NotAuthenticatedError:
            return None

    @property
    def base_url(self) -> httpx.URL:
        """The API's base URL this client sends to: the argument, else ``$NSDK_API_BASE_URL``.

        Validated at construction (absolute ``http(s)``, no credentials, ``https://`` unless
        loopback or ``allow_insecure_http``). An ``httpx.URL``; it compares equal to its string.

        Examples:
            >>> nsdk.Client("https://api.example.com").base_url  # doctest: +SKIP
            URL('https://api.example.com')
        """
        return self._config.base_url

    def with_options(
        self, *, timeout: httpx.Timeout | float | None = None, retry: RetryPolicy | None = None
    ) -> Self:
        """A view of this client whose requests use another timeout or retry policy.

        The view is a client of the same flavour sharing everything but those two options: the
        session (``state``, ``session``, ``tokens``), the single-flight refresh, the token store
        and the connection pool. A refresh is the session's, so it is sent once for the client
        and all its views, with the client's own timeout and retry policy (the budget of the
        refresh in flight is computed from them): a short per-call timeout cannot cut a refresh
        short and cost the session. The view's options apply to each request the view sends,
        through its methods and through ``view.api``; unchanged options are the client's.

        A view is cheap (no connections of its own) and needs no closing: close the client.
        Closing a view (or leaving a ``with`` block on it) closes the session for the client
        too, as ``close`` does; the connections stay the client's.

        Args:
            timeout: httpx timeout for each attempt: seconds above 0, or an ``httpx.Timeout``.
                None keeps the client's.
            retry: The retry policy for the view's requests. None keeps the client's.

        Raises:
            ConfigurationError: ``timeout`` or ``retry`` is not of an accepted kind.

        Examples:
            One attempt of at most 2 s per phase for this call; ``client.me()`` keeps its own:

            >>> never = nsdk.RetryPolicy.no_retries()
            >>> fast = client.with_options(timeout=2.0, retry=never)  # doctest: +SKIP
            >>> fast.me()  # doctest: +SKIP
            >>> patient = httpx.Timeout(60.0, connect=5.0)
            >>> slow = client.with_options(timeout=patient)  # doctest: +SKIP
        """
        timeout, retry = _checked_options(timeout, retry)
        config = copy.copy(self._config)  # shares the session core and the store
        if timeout is not None:
            config.timeout = timeout
        if retry is not None:
            config.retry = retry
        view = copy.copy(self)  # shares the auth flow: one single-flight refresh
        view._config = config
        view._api = self._view_api(config)
        return view

    def _view_api(self, config: ClientConfig) -> ApiClient:
        # The generated-layer client of a with_options view (flavour-specific).
        raise NotImplementedError

    def __repr__(self) -> str:
        base_url = str(self._config.base_url)
        return f"{type(self).__name__}(base_url={base_url!r}, state={self.state.value!r})"


__all__ = ["Boundary", "ClientBase", "logger"]
