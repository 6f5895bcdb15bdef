"""Our templates, on inline mini-specs: round trips, typed errors, malformed bodies, facts."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

ERROR = {"$ref": "#/components/schemas/Error"}
RID = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}


def _error_response(
    description: str, extra_headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**RID, **(extra_headers or {})},
        "content": {"application/json": {"schema": ERROR}},
    }


def _ok(schema: str) -> dict[str, Any]:
    return {
        "description": "ok",
        "headers": RID,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


MINI_SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Mini", "version": "1"},
    "paths": {
        "/widgets/{widgetId}": {
            "get": {
                "operationId": "getWidget",
                "summary": "Get a widget.",
                "tags": ["widgets"],
                "security": [{"bearerAuth": []}],
                "x-nsdk-role": "call",
                "x-nsdk-resend-safe": True,
                "parameters": [
                    {
                        "name": "widgetId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _ok("Widget"),
                    "404": _error_response("no such widget"),
                    "429": _error_response(
                        "slow down",
                        {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                    ),
                },
            }
        },
        "/widgets": {
            "post": {
                "operationId": "createWidget",
                "summary": "Create a widget.",
                "tags": ["widgets"],
                "security": [],
                "x-nsdk-role": "call",
                "x-nsdk-resend-safe": False,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}
                    },
                },
                "responses": {
                    "201": _ok("Widget"),
                    "204": {"description": "nothing", "headers": RID},
                    "409": _error_response("conflict"),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "headers": {
            "X-Request-ID": {"required": True, "schema": {"type": "string"}},
            "Retry-After": {"required": True, "schema": {"type": "string"}},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["detail", "request_id"],
                "properties": {"detail": {"type": "string"}, "request_id": {"type": "string"}},
            },
            "Widget": {
                "type": "object",
                "required": ["id", "name", "price", "active", "secret"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "price": {"type": "number"},
                    "active": {"type": "boolean"},
                    "secret": {"type": "string", "format": "password"},
                    "note": {"type": "string"},
                },
            },
        },
    },
}

WIDGET = {"id": 7, "name": "w", "price": 2.5, "active": True, "secret": "s3cr3t-value"}


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory, generator_cli: Callable[..., Any]) -> ModuleType:
    """The package generated from MINI_SPEC, imported under a unique name (generated once)."""
    tmp = tmp_path_factory.mktemp("mini")
    spec = tmp / "mini.yaml"
    spec.write_text(yaml.safe_dump(MINI_SPEC, sort_keys=False))
    result = generator_cli("--spec", str(spec), "--dest", str(tmp / "mini_api"))
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp))
    try:
        return importlib.import_module("mini_api")
    finally:
        sys.path.remove(str(tmp))


def _client(pkg: ModuleType, handler: Callable[[httpx.Request], httpx.Response]) -> Any:
    return pkg.Client(base_url="https://api.test", transport=httpx.MockTransport(handler))


def _respond(
    status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        return httpx.Response(
            status, content=content, headers={"X-Request-ID": "req_1", **(headers or {})}
        )

    return handler


def _get(mini: ModuleType, handler: Callable[[httpx.Request], httpx.Response]) -> Any:
    api = importlib.import_module(f"{mini.__name__}.api.widgets.get_widget")
    return api.sync_detailed(widget_id="a/b", client=_client(mini, handler))


def test_model_round_trip(mini: ModuleType) -> None:
    """from_dict(to_dict(x)) == x for the generated model, with and without optional fields."""
    widget_cls = importlib.import_module(f"{mini.__name__}.models").Widget
    for data in (WIDGET, {**WIDGET, "note": "n"}):
        w = widget_cls.from_dict(data)
        assert widget_cls.from_dict(w.to_dict()) == w
        assert w.to_dict() == data


def test_secret_fields_stay_out_of_repr(mini: ModuleType) -> None:
    """A `format: password` field is not in the model's repr."""
    w = importlib.import_module(f"{mini.__name__}.models").Widget.from_dict(WIDGET)
    assert "s3cr3t-value" not in repr(w)
    assert "name='w'" in repr(w)


def test_success_is_parsed_and_request_tagged(mini: ModuleType) -> None:
    """A 200 gives the parsed model; the request names its operation and quotes path params."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _respond(200, WIDGET)(request)

    response = _get(mini, handler)
    assert response.parsed.name == "w"
    assert response.request_id == "req_1"
    assert seen[0].extensions["nsdk_operation"] == "get_widget"
    assert seen[0].url.raw_path == b"/widgets/a%2Fb"


@pytest.mark.parametrize("status", [404, 429])
def test_documented_error_raises_typed_error(mini: ModuleType, status: int) -> None:
    """Each documented error status raises ErrorStatus with status, detail and request_id."""
    errors = importlib.import_module(f"{mini.__name__}.errors")
    body = {"detail": "nope", "request_id": "req_body"}
    with pytest.raises(errors.ErrorStatus) as info:
        _get(mini, _respond(status, body, {"Retry-After": "3"}))
    assert (info.value.status_code, info.value.detail, info.value.request_id) == (
        status,
        "nope",
        "req_body",
    )
    assert info.value.operation == "get_widget"


def test_documented_error_with_unparseable_body_keeps_status(mini: ModuleType) -> None:
    """A documented error status with an HTML body still raises ErrorStatus (detail None)."""
    errors = importlib.import_module(f"{mini.__name__}.errors")
    with pytest.raises(errors.ErrorStatus) as info:
        _get(mini, _respond(404, raw=b"<html>bad gateway</html>"))
    assert info.value.detail is None
    assert info.value.request_id == "req_1"


def test_undocumented_status_is_reported(mini: ModuleType) -> None:
    """A status the spec does not document raises UnexpectedStatus, never returns None."""
    errors = importlib.import_module(f"{mini.__name__}.errors")
    with pytest.raises(errors.UnexpectedStatus) as info:
        _get(mini, _respond(418, {"secret": "tok"}))
    assert info.value.status_code == 418
    assert "tok" not in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'{"id": 1}',
        b'{"id": "7", "name": "w", "price": 1, "active": true, "secret": "x"}',
        b'{"id": 7, "name": 5, "price": 1, "active": true, "secret": "x"}',
        b'{"id": true, "name": "w", "price": 1, "active": true, "secret": "x"}',
        b"\xff\xfe",
    ],
)
def test_malformed_success_body_raises_dedicated_error(mini: ModuleType, raw: bytes) -> None:
    """A 200 body that is not JSON or misses/mistypes fields raises MalformedResponse only."""
    errors = importlib.import_module(f"{mini.__name__}.errors")
    with pytest.raises(errors.MalformedResponse) as info:
        _get(mini, _respond(200, raw=raw))
    assert info.value.status_code == 200
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_number_accepts_integer_json(mini: ModuleType) -> None:
    """A JSON integer is a valid `number` (price 1 parses as 1.0)."""
    response = _get(mini, _respond(200, {**WIDGET, "price": 1}))
    assert response.parsed.price == 1.0


def test_bodiless_success_returns_none(mini: ModuleType) -> None:
    """A documented 204 returns parsed None; a 201 returns the model."""
    create = importlib.import_module(f"{mini.__name__}.api.widgets.create_widget")
    widget = importlib.import_module(f"{mini.__name__}.models").Widget.from_dict(WIDGET)
    assert create.sync(client=_client(mini, _respond(204)), body=widget) is None
    assert create.sync(client=_client(mini, _respond(201, WIDGET)), body=widget) == widget


def test_error_hook_replaces_generated_errors(mini: ModuleType) -> None:
    """Client.error_hook turns the generated error into the caller's exception, chained."""

    class Mine(Exception):
        pass

    api = importlib.import_module(f"{mini.__name__}.api.widgets.get_widget")
    client = mini.Client(
        base_url="https://api.test",
        transport=httpx.MockTransport(_respond(404, {"detail": "d", "request_id": "r"})),
        error_hook=lambda exc: Mine(exc.status_code),
    )
    with pytest.raises(Mine) as info:
        api.sync(widget_id="x", client=client)
    assert info.value.args == (404,)


async def test_async_call_parses(mini: ModuleType) -> None:
    """The async variant parses the same way."""
    api = importlib.import_module(f"{mini.__name__}.api.widgets.get_widget")

    async def handler(request: httpx.Request) -> httpx.Response:
        return _respond(200, WIDGET)(request)

    client = mini.Client(base_url="https://api.test", async_transport=httpx.MockTransport(handler))
    widget = await api.asyncio(widget_id="x", client=client)
    assert widget.id == 7


def test_emitted_facts_match_mini_spec(mini: ModuleType) -> None:
    """_operations carries the mini-spec's facts: auth, resend safety, statuses, Retry-After."""
    ops = importlib.import_module(f"{mini.__name__}._operations")
    get, create = ops.OPERATIONS["get_widget"], ops.OPERATIONS["create_widget"]
    assert (get.method, get.path, get.authenticated, get.resend_safe) == (
        "GET",
        "/widgets/{widgetId}",
        True,
        True,
    )
    assert (create.authenticated, create.resend_safe) == (False, False)
    assert get.error_statuses == (404, 429) and get.retry_after_statuses == (429,)
    assert create.success_statuses == (201, 204)
    request = httpx.Request("GET", "https://api.test/v1/widgets/abc")
    assert ops.operation_for(request) is get


def test_convention_break_is_a_readable_error(
    tmp_path: Any, generator_cli: Callable[..., Any]
) -> None:
    """A spec whose error schema lacks request_id fails generation with a message, not bad code."""
    spec = json.loads(json.dumps(MINI_SPEC))
    del spec["components"]["schemas"]["Error"]["properties"]["request_id"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = generator_cli("--spec", str(path), "--dest", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "error schema needs detail and request_id" in result.stderr
