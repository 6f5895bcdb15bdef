"""openapi.yaml is a valid OpenAPI 3.1 document that says what the guide says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nsdk_api._operations as ops
import pytest
import yaml
from openapi_spec_validator import validate


@pytest.fixture(scope="module")
def spec(repo_root: Path) -> dict[str, Any]:
    """The parsed openapi.yaml."""
    data: dict[str, Any] = yaml.safe_load((repo_root / "openapi.yaml").read_text())
    return data


def _operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }


def test_spec_validates(spec: dict[str, Any]) -> None:
    """openapi-spec-validator accepts the document as OpenAPI 3.1."""
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_guide_endpoints(spec: dict[str, Any]) -> None:
    """The four endpoints of the guide exist with their methods."""
    found = {(m, p) for m, p, _ in _operations(spec).values()}
    assert found == {
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/refresh"),
        ("GET", "/api/auth/me"),
        ("POST", "/api/auth/logout"),
    }


@pytest.mark.parametrize(
    ("op_id", "statuses"),
    [
        ("login", {"200", "400", "401", "429", "500"}),
        ("refresh", {"200", "400", "401", "429", "500"}),
        ("me", {"200", "401", "429", "500"}),
        ("logout", {"204", "401", "429", "500"}),
    ],
)
def test_every_status_documented(spec: dict[str, Any], op_id: str, statuses: set[str]) -> None:
    """Each operation documents exactly the statuses it can return."""
    _, _, op = _operations(spec)[op_id]
    assert set(op["responses"]) == statuses
    assert op["summary"] and op["description"]


def test_security(spec: dict[str, Any]) -> None:
    """me and logout require the bearer scheme; login and refresh do not."""
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    ops_ = _operations(spec)
    assert ops_["me"][2]["security"] == [{"bearerAuth": []}]
    assert ops_["logout"][2]["security"] == [{"bearerAuth": []}]
    assert ops_["login"][2]["security"] == []
    assert ops_["refresh"][2]["security"] == []


def test_rate_limit_documents_retry_after(spec: dict[str, Any]) -> None:
    """The 429 response carries Retry-After and every response carries X-Request-ID."""
    responses = spec["components"]["responses"]
    assert "Retry-After" in responses["TooManyRequests"]["headers"]
    for response in responses.values():
        assert "X-Request-ID" in response["headers"]


def test_emitted_facts_match_spec(spec: dict[str, Any]) -> None:
    """nsdk_api._operations carries the spec's per-operation facts, one entry per operation."""
    expected = _operations(spec)
    assert set(ops.OPERATIONS) == set(expected)
    for op_id, (method, path, op) in expected.items():
        facts = ops.OPERATIONS[op_id]
        assert (facts.method, facts.path) == (method, path)
        assert facts.authenticated == bool(op["security"])
        assert facts.resend_safe == op["x-nsdk-resend-safe"]
        assert facts.role == op["x-nsdk-role"]
        assert {str(s) for s in facts.success_statuses + facts.error_statuses} == set(
            op["responses"]
        )
    assert ops.REQUEST_ID_HEADER == "X-Request-ID"
    assert ops.OPERATIONS["refresh"].resend_safe is False
    assert ops.OPERATIONS["refresh"].role == "refresh"
