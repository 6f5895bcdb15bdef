"""Every public nsdk exception survives pickling: a worker process's error reaches its parent whole.

``multiprocessing``, ``concurrent.futures.ProcessPoolExecutor`` and task queues pickle the
exception a worker raised; a class that cannot be rebuilt turns into an unpickling error in the
parent, far from its cause. Each class is built with every keyword argument its ``__init__``
takes set to a value other than the default, then round-tripped through every pickle protocol.
"""

from __future__ import annotations

import inspect
import pickle
import pickletools

import httpx
import nsdk
import pytest

SECRET = "sid=pickled-cookie-s3cr3t"

# A value for every keyword argument an nsdk exception takes; a new argument without one here
# fails test_every_keyword_argument_has_a_sample, so it cannot go untested.
SAMPLES: dict[str, object] = {
    "status_code": 503,
    "detail": "the database is down",
    "request_id": "req-7f3a",
    "operation": "me",
    "documented": False,
    "attempt_request_ids": ("req-1", "req-2", "req-7f3a"),
    "headers": httpx.Headers(
        [
            ("Retry-After", "3"),
            ("X-Request-Id", "req-7f3a"),
            ("Set-Cookie", SECRET),
            ("Set-Cookie", "theme=dark"),
        ]
    ),
    "url": "https://api.example.com/v1/auth/me",
    "attempts": 3,
    "elapsed": 1.25,
    "proxy": "http://proxy.internal:3128",
    "proxy_status": 502,
    "store": "/home/user/.config/nsdk/session.json",
    "record_key_id": "key-2025",
    "key_id": "key-2026",
}

EXCEPTIONS = [
    cls
    for name in nsdk.__all__
    if isinstance(cls := getattr(nsdk, name), type) and issubclass(cls, BaseException)
]


def _keywords(cls: type[BaseException]) -> list[str]:
    """The keyword-only arguments of the nearest ``__init__`` nsdk defines (none: Exception's)."""
    owner = next(c for c in cls.__mro__ if "__init__" in vars(c))
    if owner.__module__ != "nsdk":
        return []
    return [
        p.name
        for p in inspect.signature(owner.__init__).parameters.values()
        # (the secret scan wraps NsdkError.__init__ with a private keyword of its own)
        if p.kind is inspect.Parameter.KEYWORD_ONLY and not p.name.startswith("_")
    ]


def _build(cls: type[BaseException]) -> BaseException:
    keywords = {name: SAMPLES[name] for name in _keywords(cls)}
    exc = cls(f"{cls.__name__}: what happened; what to do", **keywords)
    if isinstance(exc, nsdk.RetryableError):
        exc.retry_after = 2.5  # a class attribute otherwise: the instance's value must travel
    exc.add_note("while syncing tenant 2001")
    return exc


def test_the_list_covers_the_whole_tree():
    """Every exception class nsdk exports is in the list, the root and the leaves included."""
    assert len(EXCEPTIONS) == 28
    assert {nsdk.NsdkError, nsdk.APIError, nsdk.ProxyError, nsdk.MalformedResponseError} <= set(
        EXCEPTIONS
    )
    assert all(issubclass(cls, nsdk.NsdkError) for cls in EXCEPTIONS)


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_keyword_argument_has_a_sample(cls: type[BaseException]):
    """Each keyword argument of each class gets a non-default value from SAMPLES."""
    params = inspect.signature(cls).parameters
    for name in _keywords(cls):
        assert name in SAMPLES, f"{cls.__name__}({name}=...) has no sample value"
        assert SAMPLES[name] != params[name].default


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_round_trips_through_pickle(cls: type[BaseException], protocol: int):
    """Same class, message, args, notes and attributes; the pickle names only ``nsdk.<Class>``."""
    exc = _build(cls)
    data = pickle.dumps(exc, protocol=protocol)
    copy = pickle.loads(data)

    assert type(copy) is cls
    assert str(copy) == str(exc)
    assert copy.args == exc.args
    assert copy.__notes__ == ["while syncing tenant 2001"]
    expected = dict(vars(exc))
    for name in _keywords(cls):
        assert getattr(copy, name) == getattr(exc, name) or name == "headers"
    if "headers" in expected:  # every header but the credentials, repeated ones included
        headers = copy.headers
        assert isinstance(headers, httpx.Headers)
        assert headers.multi_items() == [("retry-after", "3"), ("x-request-id", "req-7f3a")]
        assert headers["Retry-After"] == "3"  # still case-insensitive
        expected["headers"] = headers
    assert vars(copy) == expected
    if isinstance(exc, nsdk.RetryableError):
        assert isinstance(copy, nsdk.RetryableError)
        assert copy.retry_after == 2.5
    strings = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str | bytes)]
    assert not any("nsdk." in str(s) for s in strings), strings  # never nsdk._errors
    assert SECRET.encode() not in data


def test_the_original_keeps_its_credential_headers():
    """Pickling leaves the exception it pickled as it was: only the copy goes without them."""
    exc = _build(nsdk.ServerError)
    pickle.dumps(exc)
    assert isinstance(exc, nsdk.APIError)
    assert exc.headers.get_list("Set-Cookie") == [SECRET, "theme=dark"]  # type: ignore[attr-defined]


def test_plain_mapping_headers_lose_credentials_too():
    """Headers given as a dict (an APIError built by hand) are filtered the same way."""
    exc = nsdk.AuthenticationError(
        "me: HTTP 401",
        status_code=401,
        headers={"WWW-Authenticate": "Bearer", "Set-Cookie": SECRET},
    )
    data = pickle.dumps(exc)
    copy = pickle.loads(data)
    assert copy.headers == {"WWW-Authenticate": "Bearer"}
    assert SECRET.encode() not in data


def test_an_error_raised_by_the_client_round_trips():
    """A real 503 from client.me() (headers from httpx, attempt ids from retries) pickles whole."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/login"):
            body = {"accessToken": "a1", "refreshToken": "r1", "userId": "1005", "tenantId": "2001"}
            return httpx.Response(200, json=body)
        return httpx.Response(
            503,
            json={"detail": "maintenance"},
            headers={"X-Request-Id": "req-503", "Set-Cookie": SECRET},
        )

    client = nsdk.Client(
        "https://api.example.com",
        transport=httpx.MockTransport(handler),
        retry=nsdk.RetryPolicy(max_attempts=1),
    )
    with client, pytest.raises(nsdk.ServerError) as caught:
        client.login(email="user@example.com", password="pw")
        client.me()
    data = pickle.dumps(caught.value)
    copy = pickle.loads(data)
    assert type(copy) is nsdk.ServerError
    assert (str(copy), copy.status_code, copy.request_id, copy.detail, copy.operation) == (
        str(caught.value),
        503,
        "req-503",
        "maintenance",
        "me",
    )
    assert copy.attempt_request_ids == ("req-503",)
    assert "set-cookie" not in copy.headers
    assert SECRET.encode() not in data
