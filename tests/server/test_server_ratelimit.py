"""Rate limits answer 429 with an integer Retry-After and the error body."""

from __future__ import annotations

import time

from nsdk_server.config import RateSpec
from nsdk_server.ratelimit import RateLimiter


def _assert_429(api, response) -> None:
    api.assert_error(response, 429)
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1


def test_login_limit_per_account(nsdk_server_factory, api_for) -> None:
    """The N+1st login for one account in the window is 429; other accounts still pass."""
    handle = nsdk_server_factory(login_account_rate="3/60", user=["b@example.com:pw-b"])
    api = api_for(handle)
    for password in ("demo-password", "wrong", "wrong"):
        assert api.login(password=password).status_code in (200, 401)
    response = api.login()
    _assert_429(api, response)
    assert int(response.headers["retry-after"]) <= 60
    assert api.login("b@example.com", "pw-b").status_code == 200
    assert handle.stats()["rate_limited"] == 1


def test_login_limit_per_address(nsdk_server_factory, api_for) -> None:
    """Logins from one client address are limited whatever account they name."""
    api = api_for(nsdk_server_factory(login_address_rate="2/60"))
    assert api.login("a@example.com", "x").status_code == 401
    assert api.login("b@example.com", "x").status_code == 401
    _assert_429(api, api.login())


def test_global_limit_covers_every_route(nsdk_server_factory, api_for) -> None:
    """The global per-address limit answers 429 on any API route, including unknown ones."""
    api = api_for(nsdk_server_factory(global_rate="3/60"))
    tokens = api.tokens()
    assert api.me(tokens["accessToken"]).status_code == 200
    assert api.client.get("/nope").status_code == 404
    _assert_429(api, api.me(tokens["accessToken"]))
    _assert_429(api, api.logout(tokens["accessToken"]))
    assert api.client.get("/_nsdk/stats").status_code == 200  # the control API is exempt


def test_limit_window_slides() -> None:
    """The limiter refuses with the seconds left, and admits again once the window slid."""
    now = [100.0]
    limiter = RateLimiter(RateSpec(2, 10.0), clock=lambda: now[0])
    assert limiter.hit("k") is None
    now[0] = 104.0
    assert limiter.hit("k") is None
    assert limiter.hit("k") == 6
    assert limiter.hit("other") is None
    now[0] = 110.5
    assert limiter.hit("k") is None
    assert limiter.hit("k") == 4


def test_retry_after_is_at_least_one_second() -> None:
    """Retry-After never says 0, even just before the window frees a slot."""
    now = [0.0]
    limiter = RateLimiter(RateSpec(1, 1.0), clock=lambda: now[0])
    limiter.hit("k")
    now[0] = 0.999
    assert limiter.hit("k") == 1


def test_defaults_do_not_limit_a_busy_suite(api) -> None:
    """The session server takes many logins in a burst without 429."""
    start = time.monotonic()
    for _ in range(30):
        assert api.login().status_code == 200
    assert time.monotonic() - start < 10
