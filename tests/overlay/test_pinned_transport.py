"""The retry transports pinned down where a mutation run found them loose (issue 16).

An undecodable body (its request id, its response released), transport failures of requests the
spec does not know, responses of retried attempts released, and ``close()`` / ``aclose()``
closing the wrapped transport (but not from a ``with_policy`` view).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import nsdk
import pytest
from nsdk._transport import AsyncRetryTransport, RetryTransport

if TYPE_CHECKING:
    from .conftest import Driver, FakeServer

BASE_URL = "https://api.example.com"


class Recorder:
    """Answers from a list (responses or exceptions to raise); keeps every response it gave."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.given: list[httpx.Response] = []
        self.closed = 0

    def answer(self, request: httpx.Request) -> httpx.Response:
        out = self.answers.pop(0)
        if isinstance(out, Exception):
            raise out
        out.headers.setdefault("X-Request-ID", f"rid-{len(self.given) + 1}")
        self.given.append(out)
        return out


class SyncInner(httpx.BaseTransport):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.recorder.answer(request)

    def close(self) -> None:
        self.recorder.closed += 1


class AsyncInner(httpx.AsyncBaseTransport):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.recorder.answer(request)

    async def aclose(self) -> None:
        self.recorder.closed += 1


def _send(kind: str, recorder: Recorder, url: str, method: str = "GET", **options: Any) -> Any:
    """Send one request through a retry shell of ``kind`` around ``recorder``; its response."""
    policy = options.pop("policy", nsdk.RetryPolicy(jitter=0.0))
    request = httpx.Request(method, url)
    if kind == "sync":
        shell = RetryTransport(
            SyncInner(recorder),
            policy,
            sleep=lambda s: None,
            clock=lambda: 0.0,
            random=lambda: 0.0,
            **options,
        )
        return shell.handle_request(request)

    async def asleep(seconds: float) -> None:
        return None

    ashell = AsyncRetryTransport(
        AsyncInner(recorder),
        policy,
        sleep=asleep,
        clock=lambda: 0.0,
        random=lambda: 0.0,
        **options,
    )
    return asyncio.run(ashell.handle_async_request(request))


KINDS = ["sync", "async"]


def bad_gzip(rid: str) -> httpx.Response:
    """A 200 claiming gzip whose bytes are not gzip."""
    headers = {"Content-Encoding": "gzip", "X-Request-ID": rid}
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(b"not gzip"))


@pytest.mark.parametrize("kind", KINDS)
def test_undecodable_body_names_its_request_id_and_is_released(kind: str):
    """A 503, then a body that does not decode: APIConnectionError with both request ids.

    Every response is released.
    """
    recorder = Recorder(httpx.Response(503), bad_gzip("rid-bad"))
    with pytest.raises(nsdk.APIConnectionError) as info:
        _send(kind, recorder, f"{BASE_URL}/api/auth/me")
    error = info.value
    assert type(error) is nsdk.APIConnectionError
    assert error.request_id == "rid-bad"
    assert error.attempt_request_ids == ("rid-1", "rid-bad")
    assert (error.operation, error.url, error.attempts) == ("me", f"{BASE_URL}/api/auth/me", 2)
    assert str(error) == (
        f"me: the response body of GET {BASE_URL}/api/auth/me could not be decoded "
        "(DecodingError: a broken Content-Encoding); report it to the API's operators "
        "(request_id=rid-bad)"
    )
    assert [r.is_closed for r in recorder.given] == [True, True]


@pytest.mark.parametrize("kind", KINDS)
def test_decoding_error_raised_by_the_transport_itself(kind: str):
    """A DecodingError from the wrapped transport (no response yet) is translated too."""
    recorder = Recorder(httpx.DecodingError("bad bytes"))
    with pytest.raises(nsdk.APIConnectionError) as info:
        _send(kind, recorder, f"{BASE_URL}/api/auth/me")
    assert info.value.request_id is None
    assert info.value.attempt_request_ids == ()


@pytest.mark.parametrize("kind", KINDS)
def test_failure_of_an_unknown_operation_is_named_by_method_and_path(kind: str):
    """A request the spec does not know: the error names its method and path, no operation."""
    recorder = Recorder(*[httpx.ConnectError("refused")] * 2)
    policy = nsdk.RetryPolicy(max_attempts=2, jitter=0.0)
    with pytest.raises(nsdk.APIConnectionError) as info:
        _send(kind, recorder, f"{BASE_URL}/api/things?secret=1", policy=policy)
    error = info.value
    assert error.operation is None
    assert error.url == f"{BASE_URL}/api/things"
    assert str(error) == (
        f"GET /api/things: no usable response to GET {BASE_URL}/api/things after 2 attempts "
        "in 0 s (ConnectError: refused); check the network and base_url"
    )
    assert error.attempts == 2


@pytest.mark.parametrize("kind", KINDS)
def test_retried_responses_are_released(kind: str):
    """Each answer that is resent (a 503, a 429) is closed; the last one is read and returned."""
    recorder = Recorder(
        httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)
    )
    response = _send(kind, recorder, f"{BASE_URL}/api/auth/me")
    assert response.status_code == 200
    assert [r.is_closed for r in recorder.given] == [True, True, True]
    assert response.extensions["nsdk_attempt_request_ids"] == ("rid-1", "rid-2", "rid-3")


@pytest.mark.parametrize("kind", KINDS)
def test_first_final_answer_carries_no_attempt_ids(kind: str):
    """A first answer nothing retries is handed over as it is (its own header is the id)."""
    recorder = Recorder(httpx.Response(401))
    response = _send(kind, recorder, f"{BASE_URL}/api/auth/me")
    assert response.status_code == 401
    assert "nsdk_attempt_request_ids" not in response.extensions


def test_close_closes_the_inner_transport_but_not_through_a_view():
    """close() closes the wrapped transport once; a with_policy view's close() does not."""
    recorder = Recorder()
    shell = RetryTransport(
        SyncInner(recorder), nsdk.RetryPolicy(), sleep=lambda s: None, clock=float, random=float
    )
    shell.with_policy(nsdk.RetryPolicy.no_retries()).close()
    assert recorder.closed == 0
    shell.close()
    assert recorder.closed == 1


async def test_aclose_closes_the_inner_transport_but_not_through_a_view():
    """aclose() closes the wrapped transport once; a with_policy view's aclose() does not."""
    recorder = Recorder()

    async def asleep(seconds: float) -> None:
        return None

    shell = AsyncRetryTransport(
        AsyncInner(recorder), nsdk.RetryPolicy(), sleep=asleep, clock=float, random=float
    )
    await shell.with_policy(nsdk.RetryPolicy.no_retries()).aclose()
    assert recorder.closed == 0
    await shell.aclose()
    assert recorder.closed == 1


def test_client_close_closes_its_transport():
    """nsdk.Client.close() closes the transport it was given."""
    recorder = Recorder()
    nsdk.Client(BASE_URL, transport=SyncInner(recorder)).close()
    assert recorder.closed == 1


async def test_async_client_aclose_closes_its_transport():
    """nsdk.AsyncClient.aclose() closes the transport it was given."""
    recorder = Recorder()
    await nsdk.AsyncClient(BASE_URL, transport=AsyncInner(recorder)).aclose()
    assert recorder.closed == 1


async def test_sleep_returning_a_value_names_it(
    client_factory: Callable[..., Driver], server: FakeServer
):
    """An AsyncClient sleep that returns a plain value: the error names what it returned."""
    drv = client_factory("async", sleep=lambda seconds: seconds)
    await drv.login()
    server.script("me", 503)
    with pytest.raises(nsdk.ConfigurationError) as info:
        await drv.me()
    assert str(info.value) == (
        "sleep must return an awaitable for AsyncClient (like asyncio.sleep), got 0.125 from it"
    )
