"""Schemathesis hooks for the conformance test (loaded through SCHEMATHESIS_HOOKS).

Bearer auth for `me` and `logout`: a fresh login with the demo credentials for every generated
case (no caching), so a `logout` in one case cannot revoke the token of the next one.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis


@schemathesis.auth(refresh_interval=None)
class FreshBearer:
    """Signs in before each case and sends the access token as a bearer credential."""

    def get(self, case: Any, context: Any) -> str:
        base_url = os.environ["NSDK_CONFORMANCE_URL"]
        response = httpx.post(
            f"{base_url}/api/auth/login",
            json={"email": "user@example.com", "password": "demo-password"},
            trust_env=False,
        )
        response.raise_for_status()
        return str(response.json()["accessToken"])

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
