"""Every payload-shape problem on login and refresh is a 400 with the error body."""

from __future__ import annotations

import json

import pytest

JSON = "application/json"

LOGIN_BAD = [
    pytest.param(b'{"email": "user@example.com", "password": ', JSON, id="invalid-json"),
    pytest.param(b"", JSON, id="empty-body"),
    pytest.param(b"[]", JSON, id="array"),
    pytest.param(b'"user@example.com"', JSON, id="string"),
    pytest.param(b"null", JSON, id="null"),
    pytest.param(b"42", JSON, id="number"),
    pytest.param(b'{"password": "demo-password"}', JSON, id="missing-email"),
    pytest.param(b'{"email": "user@example.com"}', JSON, id="missing-password"),
    pytest.param(b"{}", JSON, id="empty-object"),
    pytest.param(b'{"email": 1, "password": "demo-password"}', JSON, id="email-number"),
    pytest.param(b'{"email": "user@example.com", "password": null}', JSON, id="password-null"),
    pytest.param(b'{"email": ["a"], "password": "x"}', JSON, id="email-array"),
    pytest.param(b'{"email": "", "password": "demo-password"}', JSON, id="empty-email"),
    pytest.param(b'{"email": "user@example.com", "password": ""}', JSON, id="empty-password"),
    pytest.param(
        b'{"email": "user@example.com", "password": "demo-password", "otp": "1"}',
        JSON,
        id="extra-field",
    ),
    pytest.param(
        b'{"email": "user@example.com", "password": NaN}', JSON, id="non-standard-constant"
    ),
    pytest.param(b'{"email": "\xff", "password": "x"}', JSON, id="invalid-utf8"),
    pytest.param(b'{"email": "user@example.com", "password": "demo-password"}', None, id="no-ct"),
    pytest.param(
        b'{"email": "user@example.com", "password": "demo-password"}', "text/plain", id="text"
    ),
    pytest.param(
        b"email=user%40example.com&password=demo-password",
        "application/x-www-form-urlencoded",
        id="form",
    ),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, JSON, id="deeply-nested"),
    pytest.param(
        json.dumps({"email": "a@b.c", "password": "x" * 70_000}).encode(), JSON, id="too-large"
    ),
]

REFRESH_BAD = [
    pytest.param(b"{", JSON, id="invalid-json"),
    pytest.param(b"[]", JSON, id="array"),
    pytest.param(b"{}", JSON, id="missing-token"),
    pytest.param(b'{"refreshToken": ""}', JSON, id="empty-token"),
    pytest.param(b'{"refreshToken": 12}', JSON, id="number-token"),
    pytest.param(b'{"refreshToken": "abc", "x": 1}', JSON, id="extra-field"),
    pytest.param(b'{"refresh_token": "abc"}', JSON, id="wrong-name"),
    pytest.param(b'{"refreshToken": "abc"}', "text/plain", id="text"),
    pytest.param(b'{"refreshToken": "abc"}', None, id="no-ct"),
]


def _post(client, path: str, body: bytes, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(path, content=body, headers=headers)


@pytest.mark.parametrize(("body", "content_type"), LOGIN_BAD)
def test_login_bad_payload_is_400(api, client, body: bytes, content_type: str | None) -> None:
    """A login payload of the wrong shape or content type is answered 400, never 401 or 500."""
    api.assert_error(_post(client, "/api/auth/login", body, content_type), 400)


@pytest.mark.parametrize(("body", "content_type"), REFRESH_BAD)
def test_refresh_bad_payload_is_400(api, client, body: bytes, content_type: str | None) -> None:
    """A refresh payload of the wrong shape or content type is answered 400."""
    api.assert_error(_post(client, "/api/auth/refresh", body, content_type), 400)


def test_content_type_parameters_are_accepted(api, client) -> None:
    """`application/json; charset=utf-8` counts as JSON."""
    body = json.dumps({"email": "user@example.com", "password": "demo-password"}).encode()
    response = _post(client, "/api/auth/login", body, "Application/JSON; charset=utf-8")
    assert response.status_code == 200


def test_bad_refresh_payload_is_not_replay(api, client, server) -> None:
    """A 400 on refresh consumes nothing: the token still rotates afterwards."""
    tokens = api.tokens()
    bad = json.dumps({"refreshToken": tokens["refreshToken"], "extra": 1}).encode()
    api.assert_error(_post(client, "/api/auth/refresh", bad, JSON), 400)
    assert api.refresh(tokens["refreshToken"]).status_code == 200
    assert server.stats()["replays"] == 0
