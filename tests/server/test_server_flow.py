"""The auth guide's flow on the reference server: login, me, refresh, replay, logout, expiry."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

EMAIL = "user@example.com"
PASSWORD = "demo-password"


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_guide_flow(api) -> None:
    """Login, me, refresh, me with the new token, logout: the guide's recommended flow works."""
    login = api.login()
    assert login.status_code == 200
    body = login.json()
    assert set(body) == {"accessToken", "refreshToken", "userId", "tenantId"}
    assert (body["userId"], body["tenantId"]) == ("1005", "2001")
    me = api.me(body["accessToken"])
    assert me.status_code == 200
    assert me.json() == {"userId": "1005", "tenantId": "2001", "email": EMAIL}
    rotated = api.refresh(body["refreshToken"])
    assert rotated.status_code == 200
    pair = rotated.json()
    assert set(pair) == {"accessToken", "refreshToken"}
    assert pair["refreshToken"] != body["refreshToken"]
    assert api.me(pair["accessToken"]).status_code == 200
    logout = api.logout(pair["accessToken"])
    assert logout.status_code == 204
    assert logout.content == b""
    assert logout.headers["x-request-id"].startswith("req_")


def test_access_token_claims(api) -> None:
    """Access tokens are HS256 JWTs with sub, tid, iat, exp, jti and the family claim."""
    token = api.tokens()["accessToken"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    claims = _claims(token)
    assert {"sub", "tid", "iat", "exp", "jti", "fam"} <= set(claims)
    assert (claims["sub"], claims["tid"]) == ("1005", "2001")
    assert claims["exp"] - claims["iat"] in (300, 301)  # exp = ceil(now + ttl), iat = floor(now)


@pytest.mark.parametrize(
    ("email", "password"),
    [(EMAIL, "wrong-password"), ("nobody@example.com", PASSWORD), ("USER@example.com", "x")],
)
def test_wrong_credentials_are_401(api, email: str, password: str) -> None:
    """Wrong password and unknown user get the same 401 error answer."""
    body = api.assert_error(api.login(email, password), 401)
    assert body["detail"] == "Unauthorized"


def test_email_is_case_insensitive(api) -> None:
    """The account lookup ignores the case of the email."""
    assert api.login("User@Example.COM", PASSWORD).status_code == 200


def test_rotation_makes_old_refresh_token_one_time(api, server) -> None:
    """Each refresh rotates the pair within the family; stats count the rotations."""
    first = api.tokens()
    second = api.refresh(first["refreshToken"]).json()
    third = api.refresh(second["refreshToken"]).json()
    fam = {_claims(t["accessToken"])["fam"] for t in (first, second, third)}
    assert len(fam) == 1
    stats = server.stats()
    assert stats["refresh_requests"] == 2
    assert stats["refresh_ok"] == 2
    assert stats["replays"] == 0


def test_replay_revokes_the_whole_family(api, server) -> None:
    """Presenting a rotated refresh token is 401 and revokes every token of its family."""
    first = api.tokens()
    second = api.refresh(first["refreshToken"]).json()
    api.assert_error(api.refresh(first["refreshToken"]), 401)  # replay
    api.assert_error(api.refresh(second["refreshToken"]), 401)  # newest refresh token is dead
    api.assert_error(api.me(second["accessToken"]), 401)  # so is the family's access token
    api.assert_error(api.me(first["accessToken"]), 401)
    stats = server.stats()
    assert (stats["replays"], stats["families_revoked"]) == (1, 1)
    other = api.tokens()  # other families are untouched
    assert api.me(other["accessToken"]).status_code == 200


def test_unknown_refresh_token_is_401(api) -> None:
    """A refresh token the server never issued is rejected with 401."""
    api.assert_error(api.refresh("never-issued"), 401)


def test_logout_revokes_access_and_refresh(api, server) -> None:
    """After logout the access token and the family's refresh token are rejected."""
    tokens = api.tokens()
    assert api.logout(tokens["accessToken"]).status_code == 204
    response = api.me(tokens["accessToken"])
    api.assert_error(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    api.assert_error(api.refresh(tokens["refreshToken"]), 401)
    api.assert_error(api.logout(tokens["accessToken"]), 401)
    assert server.stats()["replays"] == 0  # a revoked token is not counted as replay


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-jwt",
        "Basic dXNlcjpwYXNz",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMDA1In0.",
    ],
)
def test_me_rejects_missing_or_malformed_tokens(api, client, authorization: str | None) -> None:
    """me answers 401 with a Bearer challenge for missing or malformed credentials."""
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/api/auth/me", headers=headers)
    api.assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    if authorization:
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_me_rejects_forged_signature(api) -> None:
    """A token signed with another key is rejected."""
    claims = _claims(api.tokens()["accessToken"])
    forged = jwt.encode(claims, "not-the-secret-but-long-enough-for-hs256", algorithm="HS256")
    api.assert_error(api.me(forged), 401)


def test_access_token_expires_after_ttl(nsdk_server_factory, api_for) -> None:
    """With --access-ttl 1 a token works at once and is rejected 2.1 s later (exp rounds up)."""
    api = api_for(nsdk_server_factory(access_ttl=1))
    tokens = api.tokens()
    assert api.me(tokens["accessToken"]).status_code == 200
    time.sleep(2.1)
    response = api.me(tokens["accessToken"])
    api.assert_error(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert api.refresh(tokens["refreshToken"]).status_code == 200  # refresh still works


def test_refresh_token_expires(nsdk_server_factory, api_for) -> None:
    """A refresh token past --refresh-ttl is rejected (without counting as replay)."""
    handle = nsdk_server_factory(refresh_ttl=0.3)
    api = api_for(handle)
    tokens = api.tokens()
    time.sleep(0.4)
    api.assert_error(api.refresh(tokens["refreshToken"]), 401)
    assert handle.stats()["replays"] == 0


def test_restart_with_db_keeps_sessions(nsdk_server_factory, api_for, tmp_path) -> None:
    """With --db and the same --secret, tokens issued before a restart still work after it."""
    options = {"db": str(tmp_path / "state.sqlite3"), "secret": "restart-test-secret-32-bytes!!"}
    before = nsdk_server_factory(**options)
    tokens = api_for(before).tokens()
    before.process.terminate()
    before.process.wait(10)
    api = api_for(nsdk_server_factory(**options))
    assert api.me(tokens["accessToken"]).status_code == 200
    rotated = api.refresh(tokens["refreshToken"])
    assert rotated.status_code == 200
    api.assert_error(api.refresh(tokens["refreshToken"]), 401)  # still one-time across restarts


def test_unknown_user_costs_one_hash_like_a_known_one(monkeypatch) -> None:
    """Unknown emails still run scrypt once (dummy hash), so timing does not reveal accounts."""
    from nsdk_server.config import DEFAULT_USER
    from nsdk_server.users import UserDirectory

    directory = UserDirectory([DEFAULT_USER], scrypt_n=4)
    calls = []
    original = directory._hash
    monkeypatch.setattr(directory, "_hash", lambda pw, salt: calls.append(1) or original(pw, salt))
    assert directory.authenticate("nobody@example.com", PASSWORD) is None
    assert directory.authenticate(EMAIL, "wrong") is None
    assert directory.authenticate(EMAIL, PASSWORD) is not None
    assert len(calls) == 3


def test_refresh_tokens_are_stored_hashed(nsdk_server_factory, api_for, tmp_path) -> None:
    """The database holds only SHA-256 hashes of refresh tokens, never the tokens."""
    import hashlib
    import sqlite3

    db = tmp_path / "state.sqlite3"
    api = api_for(nsdk_server_factory(db=str(db)))
    token = api.tokens()["refreshToken"]
    with sqlite3.connect(db) as conn:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM refresh_tokens")]
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert token not in stored
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert token.encode() not in raw
